"""Apple's Embedding Atlas: the run as one Parquet table with 2-D coordinates, the run's columns and images.

Open it with ``embedding-atlas TABLE.parquet --x x --y y --image image`` (the ``embedding-atlas``
package, optional): a 2-D map with search, cross-filtering on every column (cluster, likelihood,
weight, metadata), density contours and each point's image. Embedding Atlas is 2-D: ``x, y`` are
the first two axes of the run's 3-D t-SNE (``z`` is kept as a column). Writing needs no Embedding Atlas.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from deqlib._atomic import atomic_path
from deqlib.export import browse_columns

__all__ = ["ATLAS_COMMAND", "write_atlas_table"]

#: How to open the table (the columns this module writes).
ATLAS_COMMAND = "embedding-atlas {path} --x x --y y --image image"


def _jpeg(image, size: tuple[int, int], quality: int) -> bytes:
    thumb = image.convert("RGB")
    thumb.thumbnail(size)
    buffer = io.BytesIO()
    thumb.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def write_atlas_table(samples: pd.DataFrame, source, path: str | Path, thumb_height: int = 72,
                      quality: int = 80) -> Path:
    """Write ``samples`` as an Embedding Atlas table at ``path`` (Parquet, atomically).

    Columns: ``x, y, z`` (t-SNE), the run's columns (``sample_id, cluster_id, cluster_size,
    likelihood, weight``, ``likelihood_std`` when present), metadata, and ``image``: a struct
    ``{bytes, path}`` holding a JPEG thumbnail of ``thumb_height`` px (width by the images' aspect
    ratio), the image format Embedding Atlas displays. ``source=None`` leaves images out.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from deqlib.plots.explorer import thumbnail_tile

    columns = ["x", "y", "z"] + browse_columns(samples)
    table = samples[columns].reset_index(drop=True).copy()
    table["cluster_label"] = [("noise" if c < 0 else f"cluster {c}") for c in table["cluster_id"]]
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    if source is not None:
        position = {str(s): i for i, s in enumerate(source.sample_ids)}
        missing = [s for s in table["sample_id"] if str(s) not in position]
        if missing:
            raise ValueError(f"{len(missing)} sample ids are not in the source {source!r}, e.g. {missing[:3]}: "
                             "pass the source the analysis was run on")
        first = [source.load(position[str(s)]).size for s in table["sample_id"][:25]]
        tile = thumbnail_tile(first, height=thumb_height)
        data = [_jpeg(source.load(position[str(s)], draft=(tile[0] * 2, tile[1] * 2)), tile, quality)
                for s in table["sample_id"]]
        images = pa.StructArray.from_arrays(
            [pa.array(data, type=pa.binary()), pa.array([f"{s}.jpg" for s in table["sample_id"]])],
            names=["bytes", "path"])
        arrow = arrow.append_column("image", images)
    with atomic_path(path) as tmp:
        pq.write_table(arrow, tmp)
    return Path(path)
