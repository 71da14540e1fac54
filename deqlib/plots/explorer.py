"""The HTML explorer: every point of a run in 3-D, searchable and filterable, with thumbnails on hover.

Output of :func:`write_explorer`::

    <name>.html          the page: deck.gl (inlined, MIT, vendored in deqlib/plots/static/) and the
                         point data (coordinates, clusters, likelihoods, metadata) as base64 arrays
    <name>_files/        thumbnail sprite sheets (JPEG), loaded by the page only when a point in
                         that sheet is hovered or a gallery needs it

Both open from the file system, offline, without a server or GPU (deck.gl draws with WebGL,
which browsers emulate in software when there is no GPU). Why deck.gl: it draws and picks
200,000 points in software WebGL, its standalone bundle is 2 MB (plotly.js: 4.6 MB) and it is
maintained by the OpenJS Foundation's vis.gl (``benchmarks/explorer/`` has the measurements,
``docs/explorer.md`` the comparison).

The page offers: search by sample id; filters by cluster, by numeric ranges (likelihood, weight,
cluster size, the stability spread ``likelihood_std`` when the bank has it, numeric metadata)
and by metadata value; colour by cluster, likelihood, weight, spread or any metadata column,
with a legend; a cluster list (rarest first) whose rows open a gallery of the cluster's images.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from deqlib import __version__
from deqlib._atomic import atomic_path, write_text_atomic

__all__ = [
    "DECKGL_VERSION",
    "NOISE_COLOR",
    "cluster_palette",
    "explorer_summary",
    "samples_from_bank",
    "script_json",
    "stratified_subset",
    "thumbnail_data_uri",
    "thumbnail_tile",
    "write_explorer",
    "write_sprite_sheets",
]

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
DECKGL_VERSION = "9.4.0"
DECKGL_FILE = STATIC / f"deck.gl-{DECKGL_VERSION}.min.js"
TEMPLATE_FILE = STATIC / "explorer.html"

#: Noise points: mid grey. Every cluster colour is saturated (see :func:`cluster_palette`), so no
#: cluster can be mistaken for noise.
NOISE_COLOR = (140, 140, 140)

#: Per-sample columns the page knows by name; any other column of ``samples`` is metadata.
_CORE_COLUMNS = ("sample_id", "x", "y", "z", "cluster_id", "cluster_size", "likelihood")
_KNOWN_NUMERIC = ("likelihood", "weight", "cluster_size", "likelihood_std")
_SKIPPED = ("location", "raw_cluster_id", "is_noise", "largest_cluster_size")
#: Categorical metadata with more distinct values than this are searchable text, not a dropdown.
_MAX_CATEGORIES = 500


def cluster_palette(n_clusters: int) -> np.ndarray:
    """``n_clusters`` distinct, saturated RGB colours (uint8, shape ``(n, 3)``), none grey-like.

    Hues step by the golden angle, so neighbouring cluster ids get far-apart hues and the colours
    never repeat; saturation and brightness cycle through a few levels to multiply the number of
    distinguishable colours. Every colour has a channel spread (max - min) of at least 90 of 255,
    while :data:`NOISE_COLOR` has none: noise is distinct from every cluster at any cluster count.
    """
    import colorsys

    if n_clusters < 0:
        raise ValueError(f"n_clusters must be >= 0, got {n_clusters}")
    golden = (math.sqrt(5) - 1) / 2
    levels = [(0.90, 0.92), (0.65, 0.75), (0.95, 0.62), (0.70, 0.95)]  # (saturation, value) pairs
    colours = np.empty((n_clusters, 3), dtype=np.uint8)
    for i in range(n_clusters):
        hue = (0.05 + i * golden) % 1.0
        saturation, value = levels[i % len(levels)]
        colours[i] = np.round(np.array(colorsys.hsv_to_rgb(hue, saturation, value)) * 255)
    return colours


def stratified_subset(cluster_ids, max_points: int, seed: int = 0, min_per_cluster: int = 5) -> np.ndarray:
    """Sorted row indices of at most ``max_points`` rows that keep every cluster visible.

    Each cluster (noise, ``-1``, counts as one group) first keeps ``min(size, min_per_cluster)``
    members (fewer per cluster when there are too many clusters for that); the rest of the budget
    is shared in proportion to cluster size. Rows are drawn at random with ``seed``.

    Raises
    ------
    ValueError
        When ``max_points`` is smaller than the number of clusters: some cluster would vanish.
    """
    labels = np.asarray(cluster_ids)
    n = len(labels)
    if max_points >= n:
        return np.arange(n)
    groups, inverse, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    if max_points < len(groups):
        raise ValueError(f"max_points={max_points} is below the number of clusters ({len(groups)}): every "
                         f"cluster must keep a point; pass max_points >= {len(groups)} or None (all points)")
    floor = min(min_per_cluster, max_points // len(groups))
    quota = np.minimum(sizes, floor)
    left = max_points - quota.sum()
    spare = sizes - quota
    if left > 0 and spare.sum() > 0:
        share = spare * (left / spare.sum())
        extra = np.floor(share).astype(int)
        order = np.argsort(-(share - extra), kind="stable")  # largest remainders get the leftover points
        extra[order[: left - extra.sum()]] += 1
        quota += np.minimum(extra, spare)
    rng = np.random.default_rng(seed)
    keep = [rng.choice(np.flatnonzero(inverse == g), size=q, replace=False) for g, q in enumerate(quota) if q]
    return np.sort(np.concatenate(keep))


def thumbnail_tile(sizes, height: int = 72, max_width: int = 320) -> tuple[int, int]:
    """Tile ``(width, height)`` for thumbnails of images of the given ``(width, height)`` sizes.

    The tile has the images' median aspect ratio, so wide driving frames stay wide (a KITTI frame,
    1242 x 375, gets 238 x 72 at the default height); it is never taller than the images
    themselves (a 28 x 28 Fashion-MNIST image stays 28 x 28: the page enlarges it without blur).
    """
    sizes = np.asarray(sizes, dtype=float).reshape(-1, 2)
    if len(sizes) == 0 or (sizes <= 0).any():
        raise ValueError("thumbnail_tile needs at least one image size with positive width and height")
    aspect = float(np.median(sizes[:, 0] / sizes[:, 1]))
    tile_h = int(max(8, min(height, np.median(sizes[:, 1]))))
    tile_w = int(max(8, min(max_width, round(tile_h * aspect))))
    return tile_w, tile_h


def thumbnail_data_uri(image, size: int = 56, quality: int = 80) -> str:
    """A ``data:image/jpeg;base64,...`` URI of ``image`` shrunk to fit ``size`` x ``size``."""
    thumb = image.convert("RGB")
    thumb.thumbnail((size, size))
    buffer = io.BytesIO()
    thumb.save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _sheet_grid(tile: tuple[int, int], max_side: int = 2048, max_tiles: int = 32) -> tuple[int, int]:
    return max(1, min(max_tiles, max_side // tile[0])), max(1, min(max_tiles, max_side // tile[1]))


def write_sprite_sheets(images, folder: str | Path, tile: tuple[int, int], quality: int = 80,
                        progress: bool = False, total: int | None = None) -> dict:
    """Paste ``images`` (an iterable of PIL images, in order) into JPEG sprite sheets in ``folder``.

    Each image is shrunk to fit ``tile`` (aspect kept, centred on white). Sheets hold up to
    ``cols x rows`` tiles (at most 2048 px a side); image ``i`` is tile ``i % per_sheet`` of sheet
    ``i // per_sheet``, row-major. Each sheet is written atomically. Returns the layout the page
    reads: ``tile_w, tile_h, cols, rows, per_sheet, sheets`` (file names, in order).
    ``total`` is the number of images, for the progress bar (default: ``len(images)`` when
    ``images`` has a length; a generator has none, and the bar would read "n/?").
    """
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tile_w, tile_h = tile
    cols, rows = _sheet_grid(tile)
    per_sheet = cols * rows
    names: list[str] = []
    sheet = None
    count = 0

    def flush(sheet, used):
        used_rows = math.ceil(used / cols)
        name = f"sheet_{len(names):05d}.jpg"
        with atomic_path(folder / name) as tmp:
            sheet.crop((0, 0, cols * tile_w, used_rows * tile_h)).save(tmp, format="JPEG", quality=quality)
        names.append(name)

    iterator = images
    if progress:
        from tqdm.auto import tqdm

        if total is None and hasattr(images, "__len__"):
            total = len(images)
        iterator = tqdm(images, desc="explorer thumbnails", unit="img", mininterval=1.0, total=total)
    for image in iterator:
        slot = count % per_sheet
        if slot == 0:
            if sheet is not None:
                flush(sheet, per_sheet)
            sheet = Image.new("RGB", (cols * tile_w, rows * tile_h), (255, 255, 255))
        thumb = image.convert("RGB")
        thumb.thumbnail((tile_w, tile_h))
        x0 = (slot % cols) * tile_w + (tile_w - thumb.width) // 2
        y0 = (slot // cols) * tile_h + (tile_h - thumb.height) // 2
        sheet.paste(thumb, (x0, y0))
        count += 1
    if sheet is not None:
        flush(sheet, count - per_sheet * (len(names)))
    return {"tile_w": tile_w, "tile_h": tile_h, "cols": cols, "rows": rows, "per_sheet": per_sheet,
            "sheets": names, "count": count}


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def _column_payload(values: pd.Series) -> dict | None:
    """One column for the page: numeric as float32, text/categorical as codes + categories."""
    if pd.api.types.is_bool_dtype(values):
        values = values.map({True: "true", False: "false"})
    if pd.api.types.is_numeric_dtype(values):
        data = values.to_numpy(dtype=np.float64)
        finite = data[np.isfinite(data)]
        if len(finite) == 0:
            return None
        return {"kind": "num", "data": _b64(data.astype(np.float32)),
                "min": float(finite.min()), "max": float(finite.max())}
    codes, categories = pd.factorize(values.astype("string"), sort=True)  # missing -> -1
    return {"kind": "cat", "data": _b64(codes.astype(np.int32)), "categories": [str(c) for c in categories],
            "dropdown": len(categories) <= _MAX_CATEGORIES}


def _image_sizes(source, positions: np.ndarray, n: int = 25) -> list[tuple[int, int]]:
    picks = positions[np.linspace(0, len(positions) - 1, num=min(n, len(positions))).astype(int)]
    return [source.load(int(p)).size for p in picks]


def samples_from_bank(bank, source=None, eta: float | None = None, gamma: float | None = None) -> pd.DataFrame:
    """The per-sample table the explorer and the exporters read, from a :class:`~deqlib.bank.LikelihoodBank`.

    Adds ``weight`` (eq. 4 with ``eta``, ``gamma``; default: the values the bank was made with,
    else deqlib's defaults) when the bank has none, and the source's metadata columns (merged on
    ``sample_id``). Raises ``ValueError`` naming the fix when the bank has no coordinates.
    """
    from deqlib.weights import DEFAULT_ETA, DEFAULT_GAMMA, gfl_weight

    table = bank.table.copy()
    if "cluster_id" not in table.columns:  # a bank of a signal without clusters (e.g. knn-density)
        # colour by the clusterer's labels that `deq analyze` keeps beside it (noise: -1, size 1), else by none
        raw = table["raw_cluster_id"].to_numpy(dtype=np.int64) if "raw_cluster_id" in table.columns \
            else np.full(len(table), -1, dtype=np.int64)
        _, inverse, counts = np.unique(raw, return_inverse=True, return_counts=True)
        table["cluster_id"] = raw
        table["cluster_size"] = np.where(raw < 0, 1, counts[inverse.ravel()])
    if not {"x", "y", "z"} <= set(table.columns):
        raise ValueError("the bank has no 3-D coordinates (columns x, y, z): write it with `deq analyze` "
                         "or AnalysisResult.write, which store them")
    if "weight" not in table.columns:
        eta = eta if eta is not None else float(bank.metadata.get("eta", DEFAULT_ETA))
        gamma = gamma if gamma is not None else float(bank.metadata.get("gamma", DEFAULT_GAMMA))
        table["weight"] = gfl_weight(table["likelihood"].to_numpy(), eta=eta, gamma=gamma)
    if source is not None:
        meta = source.metadata().copy()
        meta["sample_id"] = meta["sample_id"].astype(str)
        meta = meta.drop(columns=[c for c in meta.columns if c != "sample_id" and c in table.columns])
        table = table.merge(meta, on="sample_id", how="left", validate="one_to_one")
    return table


def write_explorer(samples: pd.DataFrame, source, path: str | Path, thumb_height: int = 72,
                   max_points: int | None = None, seed: int = 0, title: str | None = None,
                   marker_size: float = 2.0, quality: int = 80, progress: bool = False,
                   lod_points: int = 15_000, thumb_size: int | None = None, gallery_page: int = 200) -> Path:
    """Write the explorer for ``samples`` (``AnalysisResult.samples`` or a bank table) to ``path``.

    Parameters
    ----------
    samples : DataFrame
        One row per sample with ``sample_id, x, y, z, cluster_id, cluster_size, likelihood``;
        optional ``weight``, ``likelihood_std`` (stability spread); every other column (except
        ``location, raw_cluster_id, is_noise, largest_cluster_size``) is metadata the page can
        filter and colour by.
    source : ImageSource
        Where thumbnails are read, by sample id.
    path : path
        The HTML file (written atomically). Thumbnails go to ``<stem>_files/`` beside it.
    thumb_height : int, default=72
        Thumbnail height in pixels (never above the images' own height); the width follows the
        images' median aspect ratio (:func:`thumbnail_tile`).
    max_points : int or None, default=None
        None shows every point. Otherwise a seeded subset stratified by cluster
        (:func:`stratified_subset`): every cluster keeps members; the title says how many are shown.
    seed : int, default=0
        Seed of the subset.
    title : str, optional
        Page title (default: "DatasetEquity explorer: N of M samples").
    marker_size : float, default=2.0
        Point radius in pixels (noise points are drawn at 70% of it).
    quality : int, default=80
        JPEG quality of the sprite sheets.
    progress : bool, default=False
        A progress bar while thumbnails are written.
    lod_points : int, default=15000
        Level of detail: when more than 1.5 x this many points are shown, only about this many
        (stratified: every cluster keeps up to 20 members) are drawn while the view moves;
        software WebGL takes seconds per frame of 200,000 points (``benchmarks/explorer/``).
    thumb_size : int, optional
        Deprecated alias of ``thumb_height`` (the old explorer's longest side).
    gallery_page : int, default=200
        Images per gallery page (galleries of a cluster or of the shown points are paged).

    Returns
    -------
    Path
        ``path``.
    """
    missing = [c for c in _CORE_COLUMNS if c not in samples.columns]
    if missing:
        raise ValueError(f"the samples table is missing column(s) {missing}; write_explorer needs "
                         f"{list(_CORE_COLUMNS)} (AnalysisResult.samples, or a bank written with coordinates)")
    coords = samples[["x", "y", "z"]].to_numpy(dtype=np.float64)
    if not np.isfinite(coords).all():
        bad = np.flatnonzero(~np.isfinite(coords).all(axis=1))
        raise ValueError(f"{len(bad)} samples have non-finite coordinates, e.g. "
                         f"{samples['sample_id'].iloc[bad[:3]].tolist()}: they could not be drawn; re-run the reduction")
    if thumb_size is not None:
        thumb_height = thumb_size
    path = Path(path)
    shown = samples
    if max_points is not None and len(samples) > max_points:
        shown = samples.iloc[stratified_subset(samples["cluster_id"].to_numpy(), max_points, seed=seed)]
    shown = shown.reset_index(drop=True)
    position = {str(sid): i for i, sid in enumerate(source.sample_ids)}
    ids = shown["sample_id"].astype(str)
    absent = [sid for sid in ids if sid not in position]
    if absent:
        raise ValueError(f"{len(absent)} sample ids are not in the source {source!r}, e.g. {absent[:3]}: "
                         "pass the source the analysis was run on")
    positions = np.array([position[s] for s in ids], dtype=np.int64)
    cluster = shown["cluster_id"].to_numpy(dtype=np.int64)
    # Sprite order: by cluster, so a cluster's gallery reads few sheets; hover may read any.
    thumb_order = np.argsort(cluster, kind="stable")
    thumb_index = np.empty(len(shown), dtype=np.uint32)
    thumb_index[thumb_order] = np.arange(len(shown), dtype=np.uint32)
    tile = thumbnail_tile(_image_sizes(source, positions), height=thumb_height)
    folder = path.with_name(path.stem + "_files")
    if folder.exists():
        shutil.rmtree(folder)  # stale sheets of an earlier, larger run would be served otherwise
    draft = (tile[0] * 2, tile[1] * 2)
    logger.info("explorer: %d thumbnails of %dx%d px into %s", len(shown), tile[0], tile[1], folder)
    layout = write_sprite_sheets((source.load(int(positions[i]), draft=draft) for i in thumb_order), folder,
                                 tile, quality=quality, progress=progress, total=len(thumb_order))

    labels = np.unique(cluster)
    real = labels[labels >= 0]
    columns = {}
    for name in shown.columns:
        if name in ("sample_id", "x", "y", "z", "cluster_id") or name in _SKIPPED:
            continue
        payload = _column_payload(shown[name])
        if payload is not None:
            columns[name] = payload
    n_categories = max([len(c["categories"]) for c in columns.values() if c["kind"] == "cat"], default=0)
    palette = cluster_palette(max(len(real), min(n_categories, 1000), 1))  # cluster rank -> colour
    xyz = shown[["x", "y", "z"]].to_numpy(dtype=np.float32)
    heading = title or f"DatasetEquity explorer: {len(shown):,} of {len(samples):,} samples"
    data = {
        "n": len(shown), "total": len(samples), "xyz": _b64(xyz), "cluster": _b64(cluster.astype(np.int32)),
        "ids": ids.tolist(), "columns": columns, "known": [c for c in _KNOWN_NUMERIC if c in columns],
        "clusterIds": real.tolist(), "palette": palette.tolist(), "noiseColor": list(NOISE_COLOR),
        "thumbs": {"folder": folder.name, "index": _b64(thumb_index), **{k: layout[k] for k in (
            "tile_w", "tile_h", "cols", "per_sheet", "sheets")}},
        "markerSize": marker_size, "version": __version__, "lodPoints": int(lod_points), "name": path.stem,
        "galleryPage": int(gallery_page),
        "params": {"thumb_height": thumb_height, "max_points": max_points, "seed": seed, "quality": quality,
                   "marker_size": marker_size, "lod_points": int(lod_points), "gallery_page": int(gallery_page),
                   "deqlib": __version__, "deck.gl": DECKGL_VERSION},
    }
    deckgl = DECKGL_FILE.read_text(encoding="utf-8").replace("</script", "<\\/script")  # (a test: no "<!--")
    parts = {"__TITLE__": html.escape(heading), "/*__DECKGL__*/": deckgl, "/*__DATA__*/": script_json(data)}
    # One pass: a title or an id that happens to contain a placeholder is never substituted again.
    page = re.sub("|".join(re.escape(k) for k in parts), lambda m: parts[m.group(0)],
                  TEMPLATE_FILE.read_text(encoding="utf-8"))
    return write_text_atomic(path, page)


#: Characters that must not appear raw in JSON inlined in a ``<script>`` element: ``<`` starts
#: ``</script>`` and ``<!--`` (which makes the HTML parser hide the rest of the page inside the script),
#: ``>`` and ``&`` complete them, U+2028/U+2029 end a line in older JavaScript engines.
_SCRIPT_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def script_json(value) -> str:
    """``value`` as JSON that is safe inside an HTML ``<script>`` element, whatever its strings hold.

    Every ``<``, ``>``, ``&``, U+2028 and U+2029 is written as a JSON ``\\uXXXX`` escape, which a
    JSON or JavaScript parser reads back as the same character while the HTML parser sees no markup.
    """
    # ensure_ascii: ids made from non-UTF-8 file names hold lone surrogates, which only an escape can carry
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=True)
    return re.sub("[<>&\u2028\u2029]", lambda m: _SCRIPT_UNSAFE[m.group(0)], text)


def explorer_summary(path: str | Path) -> str:
    """One line: where the explorer is and its size on disk (page + thumbnail folder)."""
    path = Path(path)
    folder = path.with_name(path.stem + "_files")
    sheets = sorted(folder.glob("*.jpg")) if folder.is_dir() else []
    thumbs = sum(f.stat().st_size for f in sheets)
    return (f"{path}: page {path.stat().st_size / 1e6:.1f} MB + thumbnails {thumbs / 1e6:.1f} MB "
            f"({len(sheets)} sprite sheets in {folder.name}/)")
