"""Waymo Open Dataset front camera: frames extracted to files, or the v2 Parquet release."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from deqlib.sources.base import (
    SOURCES, DatasetLayoutError, ImageLoadError, _FileListSource, _open_image_bytes, _require_root, _require_unique)
from deqlib.sources.table import TableSource


@SOURCES.register("waymo", summary="Waymo front-camera frames extracted to files (image_0/)")
class WaymoFolderSource(_FileListSource):
    """Waymo front-camera images already extracted to files (a KITTI-style conversion, as the
    official analysis used): ``<root>/<split>/image_0/*.jpg``; sample id: the file stem.

    Parameters
    ----------
    root : path
    split : str, default='training'
        The split folder (``training``, ``validation``, ``testing``).
    max_images : int, optional
    seed : int, default=0
    """

    name = "waymo"
    download_hint = ("Download the Waymo Open Dataset from https://waymo.com/open/download/ and extract the "
                     "front-camera frames to data/raw/waymo/training/image_0/ (or read the v2 Parquet release "
                     "directly with the 'waymo-parquet' source).")

    def __init__(self, root, split: str | None = "training", max_images: int | None = None, seed: int = 0):
        layout = ("  <root>/<split>/image_0/*.jpg   (split: training, validation; image_0 = FRONT camera,\n"
                  "                                  extracted from the TFRecords or the v2 Parquet files)")
        self.root, self.split = _require_root(root, "waymo", layout, self.download_hint), split
        self._use_image_folder(self.root / (split or "training") / "image_0", layout, "Waymo images", max_images, seed)


WAYMO_V2_KEYS = ("key.segment_context_name", "key.frame_timestamp_micros", "key.camera_name")
WAYMO_V2_IMAGE = "[CameraImageComponent].image"
WAYMO_V2_STATS = {"[StatsComponent].time_of_day": "time_of_day", "[StatsComponent].weather": "weather",
                  "[StatsComponent].location": "city"}
WAYMO_CAMERAS = {"FRONT": 1, "FRONT_LEFT": 2, "FRONT_RIGHT": 3, "SIDE_LEFT": 4, "SIDE_RIGHT": 5}
WAYMO_FRONT_CAMERA = WAYMO_CAMERAS["FRONT"]
_WAYMO_V2_LAYOUT = """  <root>/<split>/camera_image/<segment context name>.parquet   (split: training, validation)
  <root>/<split>/stats/<segment context name>.parquet          (optional: time of day, weather, city)
  columns: key.segment_context_name, key.frame_timestamp_micros, key.camera_name, [CameraImageComponent].image"""


@SOURCES.register("waymo-parquet", summary="Waymo v2 Parquet release, one camera (front by default)")
class WaymoParquetSource(TableSource):
    """Waymo Open Dataset v2 Parquet release, one camera (front by default), JPEG decoded on load.

    Parameters
    ----------
    root : path
        The v2 folder (``<root>/<split>/camera_image/*.parquet``).
    split : str or None, default='training'
        ``None`` reads ``<root>/camera_image`` directly.
    max_images : int, optional
    seed : int, default=0
    camera : int or str, default=1
        ``key.camera_name`` to keep: 1 / ``'FRONT'`` (see :data:`WAYMO_CAMERAS`).

    Notes
    -----
    Only the key columns are read up front. A sample's JPEG bytes are read from its row group
    when it is loaded (the images of this camera in that row group are kept until another
    group is needed, since frames are loaded in order), so 200,000 frames never sit in memory.
    Sample id: ``<segment context name>_<frame timestamp micros>_<camera>``, ordered by segment
    and time. Metadata: ``segment``, ``timestamp_micros``, ``camera``, and ``time_of_day``,
    ``weather``, ``city`` when the ``stats`` component is present.
    """

    name = "waymo-parquet"
    data_folder = "waymo"  # the v2 Parquet release sits beside the extracted frames
    download_hint = ("Download the Waymo Open Dataset v2 (Parquet: the camera_image component, optionally stats) "
                     "from https://waymo.com/open/download/ and put or link it at data/raw/waymo "
                     "(<split>/camera_image/*.parquet).")

    def __init__(self, root, split: str | None = "training", max_images: int | None = None, seed: int = 0,
                 camera: int | str = WAYMO_FRONT_CAMERA):
        import pyarrow.parquet as pq

        self.root, self.split = _require_root(root, "waymo-parquet", _WAYMO_V2_LAYOUT, self.download_hint), split
        if isinstance(camera, str):
            if camera.upper() not in WAYMO_CAMERAS:
                raise ValueError(f"unknown Waymo camera {camera!r}; choose one of {list(WAYMO_CAMERAS)}")
            camera = WAYMO_CAMERAS[camera.upper()]
        self.camera = int(camera)
        split_dir = self.root / split if split else self.root
        files = sorted((split_dir / "camera_image").glob("*.parquet"))
        if not files:
            raise DatasetLayoutError(f"no Parquet files in {split_dir / 'camera_image'}. "
                                     f"Expected layout:\n{_WAYMO_V2_LAYOUT}")
        parts = []
        for file_index, path in enumerate(files):
            parquet = pq.ParquetFile(path)
            missing = [c for c in (*WAYMO_V2_KEYS, WAYMO_V2_IMAGE) if c not in parquet.schema_arrow.names]
            if missing:
                raise DatasetLayoutError(f"{path} lacks the v2 camera_image column(s) {missing}. "
                                         f"Expected layout:\n{_WAYMO_V2_LAYOUT}")
            for group in range(parquet.num_row_groups):
                keys = parquet.read_row_group(group, columns=list(WAYMO_V2_KEYS))
                offsets = np.flatnonzero(self._camera_mask(keys["key.camera_name"], path))
                if len(offsets):
                    parts.append(pd.DataFrame({
                        "segment": keys["key.segment_context_name"].take(offsets).to_pylist(),
                        "timestamp_micros": keys["key.frame_timestamp_micros"].take(offsets).to_numpy(),
                        "_file": file_index, "_group": group, "_offset": offsets}))
        if not parts:
            raise DatasetLayoutError(f"no rows with key.camera_name == {self.camera} in {split_dir / 'camera_image'}")
        table = pd.concat(parts, ignore_index=True).sort_values(["segment", "timestamp_micros"], kind="stable")
        table = self._select_rows(table, max_images, seed)
        table.insert(0, "sample_id", [f"{segment}_{stamp}_{self.camera}"
                                      for segment, stamp in zip(table["segment"], table["timestamp_micros"])])
        table.insert(1, "location", [f"{files[f]}#rg{g}:{o}" for f, g, o in
                                     zip(table["_file"], table["_group"], table["_offset"])])
        table["camera"] = self.camera
        _require_unique(table["sample_id"].tolist(), f"Waymo v2 camera {self.camera}")  # before the stats join
        self._where = table[["_file", "_group", "_offset"]].to_numpy(dtype=np.int64)
        self._set_table(self._join_stats(table.drop(columns=["_file", "_group", "_offset"]), split_dir / "stats"),
                        files, f"Waymo v2 camera {self.camera}")
        self._cache: tuple | None = None  # ((file, group), {offset: jpeg bytes}) of the last group read

    def _camera_mask(self, column, path: Path) -> np.ndarray:
        """Rows of this camera. The v2 schema stores ``key.camera_name`` as an integer; files
        re-saved by other tools may hold its name (``'FRONT'``) or the number as text."""
        import pyarrow as pa

        if pa.types.is_integer(column.type):
            return (column.to_numpy(zero_copy_only=False) == self.camera)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type) \
                or pa.types.is_dictionary(column.type):
            names = {name for name, number in WAYMO_CAMERAS.items() if number == self.camera}
            values = pd.Series(column.to_pylist(), dtype=object).astype(str).str.strip().str.upper()
            return values.isin(names | {str(self.camera)}).to_numpy()
        raise DatasetLayoutError(f"{path}: key.camera_name has type {column.type}; expected integers "
                                 f"(1 = FRONT, as in the v2 release) or camera names. Expected layout:\n{_WAYMO_V2_LAYOUT}")

    @staticmethod
    def _join_stats(table: pd.DataFrame, stats_dir: Path) -> pd.DataFrame:
        """Add time of day, weather and city from the v2 ``stats`` component when it is there."""
        import pyarrow.parquet as pq

        files = sorted(stats_dir.glob("*.parquet"))
        if not files:
            return table
        keys = list(WAYMO_V2_KEYS[:2])
        frames = []
        for path in files:
            names = pq.ParquetFile(path).schema_arrow.names
            columns = keys + [c for c in WAYMO_V2_STATS if c in names]
            if all(k in names for k in keys):
                frames.append(pq.read_table(path, columns=columns).to_pandas())
        if not frames:
            return table
        stats = pd.concat(frames, ignore_index=True).rename(columns={
            keys[0]: "segment", keys[1]: "timestamp_micros", **WAYMO_V2_STATS})
        stats = stats.drop_duplicates(["segment", "timestamp_micros"])
        return table.merge(stats, on=["segment", "timestamp_micros"], how="left", validate="one_to_one")

    def _identity(self) -> str:
        return f"{self.name}|{self.split}|{self.camera}"

    def _image_bytes(self, index: int) -> bytes:
        import pyarrow as pa
        import pyarrow.parquet as pq

        file_index, group, offset = (int(v) for v in self._where[index])
        if self._cache is None or self._cache[0] != (file_index, group):
            column = pq.ParquetFile(self._files[file_index]).read_row_group(group, columns=[WAYMO_V2_IMAGE]).column(0)
            same_group = (self._where[:, 0] == file_index) & (self._where[:, 1] == group)
            wanted = np.unique(self._where[same_group, 2])
            # keep only this camera's images of the group: a fifth of the bytes of a 5-camera group
            images = column.take(pa.array(wanted)).to_pylist()
            self._cache = ((file_index, group), dict(zip(wanted.tolist(), images)))
        return self._cache[1][offset]

    def load(self, index: int, draft=None) -> Image.Image:
        where = self._table["location"].iat[index]
        try:
            data = self._image_bytes(index)
        except OSError as exc:  # unreadable Parquet file or row group
            raise ImageLoadError(f"cannot read {where}: {type(exc).__name__}: {exc}") from exc
        if data is None:
            raise ImageLoadError(f"cannot decode image {where}: the image cell is empty")
        return _open_image_bytes(data, where, draft)

    def __getstate__(self):
        return {**self.__dict__, "_cache": None}  # never ship cached JPEG bytes to workers



