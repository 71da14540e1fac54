"""TensorBoard's Embedding Projector: the run as tensor, metadata and sprite files plus ``projector_config.pbtxt``.

``tensorboard --logdir <folder>`` then shows the points in its "Projector" tab, with search,
colour-by and isolate over the metadata columns, and each point's thumbnail from the sprite.
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

__all__ = ["MAX_SPRITE_SIDE", "write_projector"]

#: The projector refuses sprites larger than this on a side (WebGL texture limit it assumes).
MAX_SPRITE_SIDE = 8192


def _tsv_cell(value) -> str:
    if isinstance(value, (float, np.floating)):
        return "" if not np.isfinite(value) else f"{value:.6g}"
    return " ".join(str(value).split())  # tabs and newlines would break the table


def write_projector(samples: pd.DataFrame, source, folder: str | Path, vectors: np.ndarray | None = None,
                    thumb_size: int = 48, max_points: int | None = None, seed: int = 0,
                    tensor_name: str = "deqlib") -> Path:
    """Write the Embedding Projector files for ``samples`` into ``folder``.

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
        The embeddings to project (row i belongs to ``samples`` row i). Default: the run's 3-D
        t-SNE coordinates ``x, y, z``, which the projector shows as they are with "PCA".
    thumb_size : int, default=48
        Largest thumbnail side; shrunk so the square sprite fits 8192 px.
    max_points : int, optional
        Export a subset stratified by cluster (:func:`deqlib.plots.explorer.stratified_subset`).
    seed : int, default=0
        Seed of that subset.

    Returns
    -------
    Path
        ``folder``.
    """
    from deqlib.plots.explorer import stratified_subset

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    keep = np.arange(len(samples))
    if max_points is not None and len(samples) > max_points:
        keep = stratified_subset(samples["cluster_id"].to_numpy(), max_points, seed=seed)
    table = samples.iloc[keep].reset_index(drop=True)
    full = samples[["x", "y", "z"]].to_numpy() if vectors is None else np.asarray(vectors)
    if full.ndim != 2 or len(full) != len(samples):
        raise ValueError(f"vectors has shape {full.shape} for {len(samples)} samples: pass one row per sample")
    tensor = full[keep].astype(np.float32)
    # TSV, not raw float32: TensorBoard tries the file as text first, and raw bytes can happen to decode.
    write_text_atomic(folder / "tensors.tsv", "\n".join("\t".join(f"{v:.6g}" for v in row) for row in tensor) + "\n")
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
    config = (f'embeddings {{\n  tensor_name: "{tensor_name}"\n  tensor_path: "tensors.tsv"\n'
              f'  tensor_shape: {tensor.shape[0]}\n  tensor_shape: {tensor.shape[1]}\n'
              f'  metadata_path: "metadata.tsv"\n{sprite}}}\n')
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
