"""The source contract and what every source shares: errors, decoding, subsampling, base classes.

:class:`ImageSource` is the interface (``sample_ids``, ``load``, ``metadata``, ``fingerprint``);
:class:`SubsetSource` a fixed selection of another source; ``_FileListSource`` the base of
sources whose samples are image files. Table-backed sources (one row per sample read from the
dataset's own index tables) derive from :class:`deqlib.sources.table.TableSource`.

:data:`SOURCES` is the registry of source kinds; each dataset module registers its class beside
its code (``@SOURCES.register("kitti", summary=...)``) and gives it a ``download_hint``.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from deqlib.registry import Registry

#: Source kinds by name: ``open_source(kind, ...)`` and the CLI's ``--source`` read it.
SOURCES = Registry("source")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class ImageLoadError(OSError):
    """An image that cannot be read or decoded (corrupt, truncated, missing); the message names it."""


class DatasetLayoutError(FileNotFoundError):
    """A dataset root, split list or table is missing; the message shows the expected layout."""


# ----------------------------------------------------------------------------------------------
# decoding


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB.

    * 16-bit (``I;16*``) maps the full 16-bit range onto 8 bits (``v / 257``), the same scale
      for every image so that brightness stays comparable across a dataset; 32-bit ``I`` is
      taken as 8-bit when it fits in 0..255 and as 16-bit when it fits in 0..65535, else
      stretched from its min to its max. Float ``F`` in [0, 1] is scaled by 255, else stretched.
    * Transparent images (``RGBA``, ``LA``, ``PA``, palette with transparency) are composited on
      white, so transparent pixels do not turn into whatever colour they happen to store.
    * Everything else (``L``, ``1``, ``P``, ``CMYK``, ``YCbCr``, ...) uses PIL's conversion.
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I;16") or mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if mode == "F" and low >= 0 and high <= 1:
            values = values * 255.0
        elif mode == "I" and low >= 0 and high <= 255:
            pass
        elif mode != "F" and low >= 0 and high <= 65535:
            values = values / 257.0
        else:  # out-of-range ints or floats: stretch (a constant image becomes black)
            values = np.zeros_like(values) if high <= low else (values - low) / (high - low) * 255.0
        gray = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))
        return gray.convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


_EXIF_ORIENTATION = 0x0112


def _decode(opened: Image.Image, draft: tuple[int, int] | None) -> Image.Image:
    if draft is not None and opened.format == "JPEG":
        # JPEG DCT scaling: decode straight to >= the draft size, several times faster.
        opened.draft("RGB", tuple(int(v) for v in draft))
    opened.load()
    image = opened
    if opened.getexif().get(_EXIF_ORIENTATION, 1) != 1:  # photos taken rotated
        image = ImageOps.exif_transpose(opened)
    return to_rgb(image)


def _open_image_file(path: Path, draft: tuple[int, int] | None = None) -> Image.Image:
    try:
        with Image.open(path) as opened:
            return _decode(opened, draft)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise ImageLoadError(f"cannot read image {path}: {type(exc).__name__}: {exc}") from exc


def _open_image_bytes(data: bytes, where: str, draft: tuple[int, int] | None = None) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as opened:
            return _decode(opened, draft)
    except (OSError, SyntaxError, ValueError, EOFError, TypeError, Image.DecompressionBombError) as exc:
        raise ImageLoadError(f"cannot decode image {where}: {type(exc).__name__}: {exc}") from exc


# ----------------------------------------------------------------------------------------------
# shared helpers


def _select(n_total: int, max_images: int | None, seed: int, strata: np.ndarray | None = None) -> np.ndarray:
    """Sorted positions of a deterministic subsample of ``max_images`` (stratified when ``strata``
    is given: each stratum keeps its share, largest remainders get the leftover places)."""
    if max_images is not None:
        if isinstance(max_images, bool) or int(max_images) != max_images or max_images < 1:
            raise ValueError(f"max_images must be a positive integer or None, got {max_images!r}")
        max_images = int(max_images)
    if max_images is None or max_images >= n_total:
        return np.arange(n_total)
    rng = np.random.default_rng(seed)
    if strata is None:
        return np.sort(rng.choice(n_total, size=max_images, replace=False))
    values, counts = np.unique(strata, return_counts=True)
    share = counts / n_total * max_images
    quota = np.floor(share).astype(int)
    for i in np.argsort(-(share - quota), kind="stable")[: max_images - quota.sum()]:
        quota[i] += 1
    chosen = [rng.choice(np.flatnonzero(strata == v), size=q, replace=False) for v, q in zip(values, quota)]
    return np.sort(np.concatenate(chosen))


def _require_root(root, kind: str, layout: str, hint: str = "") -> Path:
    """``root`` as a Path; a missing root raises with the expected layout and how to get the data."""
    get_it = f"\n{hint}" if hint else ""
    if root is None:
        raise DatasetLayoutError(f"the {kind} source needs root=<dataset folder>. Expected layout:\n{layout}{get_it}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetLayoutError(f"{kind} root {root} is not a folder. Expected layout:\n{layout}{get_it}")
    return root


def _utf8_text(name: str) -> str:
    """A file name as UTF-8 text: bytes that are not UTF-8 (``os.fsdecode`` surrogates) become
    ``\\xNN``, as in the embedding cache's index. Parquet, JSON and pandas' string columns need
    UTF-8, so a folder with one Latin-1 name could otherwise not be written to a bank at all."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _require_unique(ids: Sequence[str], what: str) -> None:
    if len(set(ids)) != len(ids):
        seen, repeated = set(), []
        for sample_id in ids:
            if sample_id in seen and sample_id not in repeated:
                repeated.append(sample_id)
            seen.add(sample_id)
        raise ValueError(f"{what}: sample ids must be unique, these repeat: {repeated[:5]}")


def _stat_digest(digest, paths: Iterable[Path]) -> None:
    """Feed path, size and modification time of each file (``-1`` when missing) into ``digest``."""
    for path in paths:
        try:
            stat = os.stat(path)
            line = f"{path}\t{stat.st_size}\t{stat.st_mtime_ns}\n"
        except OSError:
            line = f"{path}\t-1\n"
        digest.update(line.encode("utf-8", "surrogateescape"))  # non-UTF-8 file names hash too


# ----------------------------------------------------------------------------------------------
# base classes


class ImageSource:
    """A list of images with ids and metadata (the contract in ``docs/ARCHITECTURE.md``).

    Subclasses set ``name``, ``root`` and ``split`` and implement ``sample_ids``, ``load`` and
    ``metadata``; ``fingerprint``, ``subset`` and ``describe`` come with the base class.
    """

    name: str = "images"
    root: Path | None = None
    split: str | None = None
    #: How to get the dataset (where to download it, where to put it); error messages and
    #: ``deq embed --help`` show it. Registered kinds must set it (the contract test checks).
    download_hint: str = ""
    #: The folder under ``data/raw/`` where the workbook looks for this dataset when no root is
    #: given (the dataset notebooks); None: the kind's own name.
    data_folder: str | None = None

    @property
    def sample_ids(self) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.sample_ids)

    def load(self, index: int, draft: tuple[int, int] | None = None) -> Image.Image:  # pragma: no cover
        """Image ``index`` as RGB; ``draft=(w, h)`` lets JPEG decode at a reduced scale >= (w, h)."""
        raise NotImplementedError

    def metadata(self) -> pd.DataFrame:  # pragma: no cover - abstract
        """One row per sample, same order: ``sample_id``, ``location``, dataset attributes."""
        raise NotImplementedError

    def fingerprint(self) -> str:
        """Stable 16-hex hash of what the source lists (ids and locations), for cache keys."""
        digest = hashlib.sha256(f"{self.name}|{self.split}".encode())
        table = self.metadata()
        for sample_id, location in zip(table["sample_id"], table["location"]):
            digest.update(f"{sample_id}\t{location}\n".encode())
        return digest.hexdigest()[:16]

    def subset(self, indices: Sequence[int]) -> "SubsetSource":
        """The samples at ``indices`` (in that order) as a source of their own."""
        return SubsetSource(self, indices)

    def describe(self) -> str:
        """One line: kind, number of images, split and root."""
        split = f", split {self.split!r}" if self.split else ""
        where = f", {self.root}" if self.root else ""
        return f"{self.name}: {len(self):,} images{split}{where}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


class SubsetSource(ImageSource):
    """A fixed selection of another source's samples, in the given order.

    Parameters
    ----------
    parent : ImageSource
    indices : sequence of int
        Positions in ``parent`` (each in ``[0, len(parent))``, no repeats).
    """

    def __init__(self, parent: ImageSource, indices: Sequence[int]):
        self.parent = parent
        self.indices = [int(i) for i in indices]
        if any(not 0 <= i < len(parent) for i in self.indices):
            raise IndexError(f"subset indices must lie in [0, {len(parent)})")
        if len(set(self.indices)) != len(self.indices):
            raise ValueError("subset indices must not repeat (sample ids must stay unique)")
        # getattr: any object with the source interface can be subset, not only ImageSource subclasses
        self.name = getattr(parent, "name", type(parent).__name__)
        self.root, self.split = getattr(parent, "root", None), getattr(parent, "split", None)
        ids = parent.sample_ids
        self._ids = [ids[i] for i in self.indices]

    @property
    def sample_ids(self) -> list[str]:
        return self._ids

    def load(self, index: int, draft=None) -> Image.Image:
        return self.parent.load(self.indices[index], draft=draft)

    def metadata(self) -> pd.DataFrame:
        return self.parent.metadata().iloc[self.indices].reset_index(drop=True)

    def fingerprint(self) -> str:
        digest = hashlib.sha256(self.parent.fingerprint().encode())
        digest.update(",".join(map(str, self.indices)).encode())
        return digest.hexdigest()[:16]


class _FileListSource(ImageSource):
    """A source whose samples are image files (folder, KITTI, Waymo extracted, BDD100K)."""

    _ids: list[str]
    _files: list[Path]

    @property
    def sample_ids(self) -> list[str]:
        return self._ids

    @property
    def sample_files(self) -> list[Path]:
        """The file of each sample, as the operating system names it (``metadata()["location"]``
        is the same path as UTF-8 text, with ``\\xNN`` for bytes that are not UTF-8)."""
        return self._files

    def load(self, index: int, draft=None) -> Image.Image:
        return _open_image_file(self._files[index], draft)

    def _use_image_folder(self, folder: Path, layout: str, what: str, max_images: int | None, seed: int) -> None:
        """Every .jpg/.jpeg/.png in ``folder`` (sorted; id = file stem), then the seeded subsample.

        Raises ``DatasetLayoutError`` showing ``layout`` when there are none, and when two files
        share a stem (``what`` names them in the message)."""
        files = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if not files:
            raise DatasetLayoutError(f"no images in {folder}. Expected layout:\n{layout}")
        self._files, self._ids = files, [f.stem for f in files]
        _require_unique(self._ids, f"{what} in {folder}")
        self._keep(max_images, seed)

    def _keep(self, max_images: int | None, seed: int) -> None:
        keep = _select(len(self._files), max_images, seed)
        self._ids = [self._ids[i] for i in keep]
        self._files = [self._files[i] for i in keep]

    def _base_table(self) -> pd.DataFrame:
        return pd.DataFrame({"sample_id": list(self._ids), "location": [_utf8_text(str(f)) for f in self._files]})

    def metadata(self) -> pd.DataFrame:
        return self._base_table()

    def fingerprint(self) -> str:
        """Hash of ids, paths, sizes and modification times (a changed file changes it)."""
        digest = hashlib.sha256(f"{self.name}|{self.split}|{self.root}".encode())
        digest.update("\n".join(self._ids).encode())
        _stat_digest(digest, self._files)
        return digest.hexdigest()[:16]


def _check_split_entries(entries: list[str], path: Path) -> list[str]:
    """Split-list entries must be plain ids: no folder parts, no ``..``, not absolute."""
    for number, entry in enumerate(entries, start=1):
        if "/" in entry or "\\" in entry or entry in (".", "..") or os.path.isabs(entry):
            raise DatasetLayoutError(
                f"{path}, line {number}: {entry!r} is not an image id: a split list holds plain ids such as "
                "'000123' (no folders, '..' or absolute paths, which would read files outside the dataset root). "
                "Fix that line")
    return entries


def _read_split_list(candidates: Sequence[Path], layout: str) -> list[str]:
    for path in candidates:
        if path.is_file():
            return _check_split_entries([line.strip() for line in path.read_text().splitlines() if line.strip()], path)
    raise DatasetLayoutError(
        f"split list not found; looked for {' and '.join(map(str, candidates))}. Expected layout:\n{layout}")

