"""KITTI object detection (left colour camera) and its per-class instance counts (Table 1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from deqlib.sources.base import (
    SOURCES, DatasetLayoutError, _FileListSource, _read_split_list, _require_root, _require_unique)


KITTI_CLASSES = ("Car", "Van", "Truck", "Pedestrian", "Person_sitting", "Cyclist", "Tram", "Misc")
_KITTI_LAYOUT = """  <root>/training/image_2/<6-digit id>.png
  <root>/training/label_2/<6-digit id>.txt        (object labels: class counts, has_<class>)
  <root>/testing/image_2/<6-digit id>.png         (split 'test')
  <root>/ImageSets/{train,val,trainval,test}.txt   or   <root>/mv3d_kitti_splits/<split>.txt"""


def _kitti_objects(label_file: Path) -> list[str]:
    """Object types in one ``label_2`` file (``DontCare`` excluded); [] when there is no file."""
    try:
        text = label_file.read_text()
    except FileNotFoundError:
        return []
    types = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 15 and fields[0] != "DontCare":  # 15 fields (16 with a score)
            types.append(fields[0])
    return types


def _kitti_id(entry: str) -> str:
    return f"{int(entry):06d}" if entry.isdigit() else entry


@SOURCES.register("kitti", summary="KITTI object detection, left colour camera (image_2)")
class KittiSource(_FileListSource):
    """KITTI object detection, left colour camera (``image_2``).

    Parameters
    ----------
    root : path
        The KITTI object folder (layout below).
    split : str or None, default='train'
        ``None``: every image of ``training/image_2``; otherwise the list
        ``ImageSets/<split>.txt`` or ``mv3d_kitti_splits/<split>.txt`` (the DD3D fork's folder),
        in its order. ``'test'`` reads ``testing/image_2``.
    max_images : int, optional
        Seeded subsample of this many images (in split order).
    seed : int, default=0

    Notes
    -----
    Sample ids are the 6-digit image ids the DD3D fork keys its bank by (``'000123'``).
    Metadata: ``n_<class>`` (objects per class) and ``has_<class>`` for :data:`KITTI_CLASSES`,
    ``n_objects`` and ``has_labels``, from ``label_2`` (``DontCare`` excluded).

    Layout::

      <root>/training/image_2/<6-digit id>.png
      <root>/training/label_2/<6-digit id>.txt
      <root>/ImageSets/{train,val,trainval,test}.txt  or  <root>/mv3d_kitti_splits/<split>.txt
    """

    name = "kitti"
    download_hint = ("Download the KITTI 3D object detection data (left colour images and training labels) from "
                     "https://www.cvlibs.net/datasets/kitti/eval_object.php and put or link it at data/raw/kitti, "
                     "with the train/val split lists in ImageSets/ (or mv3d_kitti_splits/ as the DD3D fork uses).")

    def __init__(self, root, split: str | None = "train", max_images: int | None = None, seed: int = 0):
        self.root, self.split = _require_root(root, "kitti", _KITTI_LAYOUT, self.download_hint), split
        folder = self.root / ("testing" if split == "test" else "training")
        if not (folder / "image_2").is_dir():
            raise DatasetLayoutError(f"KITTI folder {folder / 'image_2'} not found. Expected layout:\n{_KITTI_LAYOUT}")
        if split is None:
            ids = sorted(p.stem for p in (folder / "image_2").glob("*.png"))
        else:
            ids = [_kitti_id(i) for i in _read_split_list(
                [self.root / "ImageSets" / f"{split}.txt", self.root / "mv3d_kitti_splits" / f"{split}.txt"],
                _KITTI_LAYOUT)]
        _require_unique(ids, f"KITTI split {split!r}")
        self._ids, self._files = ids, [folder / "image_2" / f"{i}.png" for i in ids]
        if not any(f.is_file() for f in self._files):
            raise DatasetLayoutError(f"none of the {len(ids)} images of KITTI split {split!r} is in "
                                     f"{folder / 'image_2'}. Expected layout:\n{_KITTI_LAYOUT}")
        self._label_dir = folder / "label_2"
        self._keep(max_images, seed)
        self._objects: list[list[str]] | None = None  # parsed on first metadata() call

    def objects(self) -> list[list[str]]:
        """Object types per sample from ``label_2`` (``DontCare`` excluded), in sample order."""
        if self._objects is None:
            self._objects = [_kitti_objects(self._label_dir / f"{i}.txt") for i in self._ids]
        return self._objects

    def metadata(self) -> pd.DataFrame:
        table = self._base_table()
        objects = self.objects()
        for cls in KITTI_CLASSES:
            counts = np.array([types.count(cls) for types in objects], dtype=np.int64)
            table[f"n_{cls}"] = counts
            table[f"has_{cls}"] = counts > 0
        table["n_objects"] = np.array([len(types) for types in objects], dtype=np.int64)
        table["has_labels"] = [(self._label_dir / f"{i}.txt").is_file() for i in self._ids]
        return table


def kitti_class_counts(root, split: str | None = None) -> pd.Series:
    """Object instances per class in ``training/label_2`` (``DontCare`` excluded): Table 1 of the paper.

    Parameters
    ----------
    root : path
        The KITTI object folder.
    split : str, optional
        ``None`` counts every label file; a split name counts the files of that split's ids.

    Returns
    -------
    pandas.Series
        Instances per class (index ``class``, name ``instances``), most frequent first.
    """
    root = _require_root(root, "kitti", _KITTI_LAYOUT, KittiSource.download_hint)
    # testing/ reuses the ids of training/, so the test split must never read training labels
    label_dir = root / ("testing" if split == "test" else "training") / "label_2"
    if not label_dir.is_dir():
        raise DatasetLayoutError(f"KITTI labels {label_dir} not found. Expected layout:\n{_KITTI_LAYOUT}")
    if split is None:
        files = sorted(label_dir.glob("*.txt"))
    else:
        ids = [_kitti_id(i) for i in _read_split_list(
            [root / "ImageSets" / f"{split}.txt", root / "mv3d_kitti_splits" / f"{split}.txt"], _KITTI_LAYOUT)]
        files = [label_dir / f"{i}.txt" for i in ids]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise DatasetLayoutError(f"{len(missing)} label files of split {split!r} are missing from {label_dir} "
                                     f"(e.g. {missing[:3]}); labels exist for the training images only")
    types = [t for f in files for t in _kitti_objects(f)]
    counts = pd.Series(types, dtype=object).value_counts().sort_index()
    counts = counts.sort_values(ascending=False, kind="stable").astype(np.int64)
    counts.index.name, counts.name = "class", "instances"
    return counts


