"""TensorBoard's Embedding Projector: the run's real embedding vectors and its 3-D map, with metadata and sprite.

``tensorboard --logdir <folder>`` then shows the points in its "Projector" tab, with search,
colour-by and isolate over the metadata columns, and each point's thumbnail from the sprite. Two
tensors share the metadata and sprite (pick one in the projector's "DATA" panel):

* the **embedding** (first, shown on opening): the vectors the analysis clustered, or a PCA of them
  to ``pca_dims`` dimensions (default 50) when they have more. The projector's nearest neighbours
  and its own PCA, t-SNE and UMAP then run on the real space, not on the 3-D map;
* the **t-SNE 3-D map** of the run (``x, y, z``), as the explorer draws it.

The projector's own limits apply: its sprite is at most 8192 x 8192 px (thumbnails shrink to
fit), it runs its t-SNE on at most 10,000 points and it slows down near 100,000 points: pass
``max_points`` (a subset stratified by cluster) for larger runs. Writing needs no TensorBoard.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from deqlib._atomic import atomic_path, write_text_atomic
from deqlib.export import browse_columns

__all__ = ["DEFAULT_PCA_DIMS", "MAX_SPRITE_SIDE", "align_vectors", "pca_project", "write_projector"]

#: The projector refuses sprites larger than this on a side (WebGL texture limit it assumes).
MAX_SPRITE_SIDE = 8192
#: Embeddings with more dimensions are exported as their PCA to this many (TSV stays small: a
#: 70,000 x 1280 float table would be about 700 MB of text for the browser to parse).
DEFAULT_PCA_DIMS = 50


def _tsv_cell(value) -> str:
    if isinstance(value, (float, np.floating)):
        return "" if not np.isfinite(value) else f"{value:.6g}"
    return " ".join(str(value).split())  # tabs and newlines would break the table


def _pbtxt(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def pca_project(vectors: np.ndarray, dims: int) -> tuple[np.ndarray, float]:
    """``vectors`` (n, d) projected on their first ``dims`` principal axes, and the share of variance kept.

    Deterministic (an eigendecomposition of the d x d covariance, no random solver); each axis is
    signed so that its largest loading is positive. ``dims >= d`` returns the centred vectors' full
    rotation (share 1.0).
    """
    X = np.asarray(vectors, dtype=np.float64)
    if X.ndim != 2 or len(X) < 2:
        raise ValueError(f"pca_project needs at least 2 vectors in a 2-d array, got shape {X.shape}")
    if int(dims) < 1:
        raise ValueError(f"dims must be >= 1, got {dims}")
    centred = X - X.mean(axis=0)
    values, axes = np.linalg.eigh(centred.T @ centred / (len(X) - 1))
    order = np.argsort(values)[::-1][: min(int(dims), X.shape[1])]
    axes = axes[:, order]
    axes *= np.sign(axes[np.abs(axes).argmax(axis=0), np.arange(axes.shape[1])])
    total = float(values.clip(min=0).sum())
    kept = float(values[order].clip(min=0).sum() / total) if total > 0 else 1.0
    return centred @ axes, kept


def align_vectors(sample_ids, vector_ids, vectors, where: str = "the vectors") -> np.ndarray:
    """Rows of ``vectors`` (one per ``vector_ids``) in the order of ``sample_ids``, matched by id.

    Raises ``ValueError`` naming some ids when a sample has no vector, ``vector_ids`` repeat an id, or
    their count differs from the rows'.
    """
    vectors = np.asarray(vectors)
    vector_ids = [str(s) for s in vector_ids]
    if vectors.ndim != 2 or len(vectors) != len(vector_ids):
        raise ValueError(f"{where}: {len(vector_ids)} sample ids for vectors of shape {vectors.shape}; "
                         "they must match one to one")
    row = {}
    for i, sample_id in enumerate(vector_ids):
        if row.setdefault(sample_id, i) != i:
            raise ValueError(f"{where}: sample id {sample_id!r} has more than one vector")
    missing = [s for s in map(str, sample_ids) if s not in row]
    if missing:
        raise ValueError(f"{where}: {len(missing)} of the run's samples have no vector, e.g. {missing[:3]}; pass the "
                         "vectors the run was made from")
    return vectors[[row[str(s)] for s in sample_ids]]


def _write_tensor(path: Path, tensor: np.ndarray) -> None:
    # TSV, not raw float32: TensorBoard tries the file as text first, and raw bytes can happen to decode.
    write_text_atomic(path, "\n".join("\t".join(f"{v:.6g}" for v in row) for row in tensor) + "\n")


def write_projector(samples: pd.DataFrame, source, folder: str | Path, vectors: np.ndarray | None = None,
                    thumb_size: int = 48, max_points: int | None = None, seed: int = 0,
                    tensor_name: str = "deqlib", pca_dims: int | None = DEFAULT_PCA_DIMS) -> Path:
    """Write the Embedding Projector files for ``samples`` into ``folder``.

    Files: ``embedding.tsv`` (when ``vectors`` are given), ``tsne3d.tsv``, ``metadata.tsv``,
    ``sprite.png`` (when ``source`` is given) and ``projector_config.pbtxt``, which lists the
    embedding first and names what each tensor holds.

    Parameters
    ----------
    samples : DataFrame
        ``sample_id, x, y, z`` and the run's columns (``cluster_id``, ``likelihood``, ...);
        every column but bookkeeping becomes a metadata column.
    source : ImageSource or None
        Thumbnails for the sprite (None: no sprite).
    folder : path
        Output folder (the ``--logdir``).
    vectors : array (n_samples, dim), optional
        The embedding vectors the run was made from (row i belongs to ``samples`` row i). None
        writes only the 3-D map, and the projector's neighbours are then those of the map.
    thumb_size : int, default=48
        Largest thumbnail side; shrunk so the square sprite fits 8192 px.
    max_points : int, optional
        Export a subset stratified by cluster (:func:`deqlib.plots.explorer.stratified_subset`).
    seed : int, default=0
        Seed of that subset.
    tensor_name : str, default="deqlib"
        Prefix of the tensors' names in the projector.
    pca_dims : int or None, default=50
        Vectors with more dimensions are exported as their PCA to this many (:func:`pca_project`,
        fitted on the exported rows; the tensor's name gives the share of variance kept). None
        exports the vectors as they are.

    Returns
    -------
    Path
        ``folder``.
    """
    from deqlib.plots.explorer import stratified_subset

    if pca_dims is not None and int(pca_dims) < 1:
        raise ValueError(f"pca_dims must be >= 1 or None (the vectors as they are), got {pca_dims}")
    full = None
    if vectors is not None:
        full = np.asarray(vectors)
        if full.ndim != 2 or len(full) != len(samples):
            raise ValueError(f"vectors has shape {full.shape} for {len(samples)} samples: pass one row per sample")
        bad = ~np.isfinite(full).all(axis=1)
        if bad.any():
            raise ValueError(f"{int(bad.sum())} embedding vectors hold NaN or infinite values, e.g. of "
                             f"{samples['sample_id'].iloc[np.flatnonzero(bad)[:3]].tolist()}: the projector cannot "
                             "draw them; re-embed those samples")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    keep = np.arange(len(samples))
    if max_points is not None and len(samples) > max_points:
        keep = stratified_subset(samples["cluster_id"].to_numpy(), max_points, seed=seed)
    table = samples.iloc[keep].reset_index(drop=True)
    tensors = []  # (file, name, array), the embedding first: the projector opens the first one
    if full is not None:
        embedding = full[keep].astype(np.float64)
        dim = embedding.shape[1]
        if pca_dims is not None and dim > int(pca_dims) and len(embedding) > 1:
            embedding, kept = pca_project(embedding, int(pca_dims))
            name = f"{tensor_name}: embedding, PCA-{embedding.shape[1]} of {dim}-d ({100 * kept:.1f}% of variance)"
        else:
            name = f"{tensor_name}: embedding, {dim}-d"
        tensors.append(("embedding.tsv", name, embedding.astype(np.float32)))
    tensors.append(("tsne3d.tsv", f"{tensor_name}: t-SNE 3-D map", table[["x", "y", "z"]].to_numpy(np.float32)))
    for file, _, tensor in tensors:
        _write_tensor(folder / file, tensor)
    columns = browse_columns(table)
    lines = ["\t".join(columns)] + ["\t".join(_tsv_cell(v) for v in row)
                                    for row in table[columns].itertuples(index=False)]
    write_text_atomic(folder / "metadata.tsv", "\n".join(lines) + "\n")
    sprite = ""
    if source is not None:
        per_side = math.ceil(math.sqrt(len(table)))
        position = {str(s): i for i, s in enumerate(source.sample_ids)}
        native = max(source.load(position.get(str(table["sample_id"].iloc[0]), 0)).size)
        side = max(1, min(thumb_size, native, MAX_SPRITE_SIDE // per_side))  # never upscaled
        if side < 4:
            raise ValueError(f"{len(table)} thumbnails do not fit the projector's 8192 px sprite: "
                             f"pass max_points (e.g. 100000) or source=None")
        missing = [s for s in table["sample_id"] if str(s) not in position]
        if missing:
            raise ValueError(f"{len(missing)} sample ids are not in the source, e.g. {missing[:3]}")
        images = (source.load(position[str(s)], draft=(side * 2, side * 2)) for s in table["sample_id"])
        _square_sprite(images, folder / "sprite.png", side, per_side)
        sprite = (f'  sprite {{\n    image_path: "sprite.png"\n    single_image_dim: {side}\n'
                  f'    single_image_dim: {side}\n  }}\n')
    config = "".join(f'embeddings {{\n  tensor_name: {_pbtxt(name)}\n  tensor_path: "{file}"\n'
                     f'  tensor_shape: {tensor.shape[0]}\n  tensor_shape: {tensor.shape[1]}\n'
                     f'  metadata_path: "metadata.tsv"\n{sprite}}}\n' for file, name, tensor in tensors)
    write_text_atomic(folder / "projector_config.pbtxt", config)
    return folder


def _square_sprite(images, path: Path, side: int, per_side: int) -> None:
    """The projector's sprite: a square PNG grid, image i at row i // per_side, column i % per_side."""
    from PIL import Image

    sprite = Image.new("RGB", (per_side * side, per_side * side), (255, 255, 255))
    for i, image in enumerate(images):
        thumb = image.convert("RGB")
        thumb.thumbnail((side, side))
        row, col = divmod(i, per_side)
        sprite.paste(thumb, (col * side + (side - thumb.width) // 2, row * side + (side - thumb.height) // 2))
    with atomic_path(path) as tmp:
        sprite.save(tmp, format="PNG")
