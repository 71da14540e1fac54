"""BDD100K 100k images with their weather / scene / time-of-day attributes."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd

from deqlib.sources.base import SOURCES, DatasetLayoutError, _FileListSource, _require_root


BDD100K_ATTRIBUTES = ("weather", "scene", "timeofday")
_BDD100K_LAYOUT = """  <root>/images/100k/{train,val,test}/*.jpg
  <root>/labels/det_20/det_<split>.json                  (optional; or labels/bdd100k_labels_images_<split>.json,
                                                          or one JSON per image in labels/100k/<split>/)"""


@SOURCES.register("bdd100k", summary="BDD100K 100k images with weather / scene / time of day")
class BDD100KSource(_FileListSource):
    """BDD100K 100k images (``<root>/images/100k/<split>/*.jpg``), with weather / scene / time of day.

    Parameters
    ----------
    root : path
    split : {'train', 'val', 'test'}, default='train'
    labels_file : path or False, optional
        A label JSON list (``[{"name": "<file>.jpg", "attributes": {...}}, ...]``) or a folder of
        per-image JSON files; a relative path is looked up in ``root`` first, then in the current folder. Default: ``labels/det_20/det_<split>.json``, with images it lacks
        filled from ``labels/bdd100k_labels_images_<split>.json`` (then ``labels/100k/<split>/``).
        No label file warns; a file that labels none of the images raises (a file of another
        split); some unlabelled images warn. ``False``: no labels, on purpose, without a warning.
    max_images : int, optional
    seed : int, default=0

    Notes
    -----
    Sample id: the file stem (``'0a0a0b1a-7c39d841'``). Metadata: ``weather``, ``scene`` and
    ``timeofday`` (``None`` for images without labels, e.g. the test split).
    """

    name = "bdd100k"
    download_hint = ("Download BDD100K (100K images and the detection labels) from https://bdd-data.berkeley.edu/ "
                     "and put or link it at data/raw/bdd100k (images/100k/<split>/, "
                     "labels/det_20/det_<split>.json).")

    def __init__(self, root, split: str = "train", labels_file=None, max_images: int | None = None, seed: int = 0):
        self.root, self.split = _require_root(root, "bdd100k", _BDD100K_LAYOUT, self.download_hint), split
        self._use_image_folder(self.root / "images" / "100k" / split, _BDD100K_LAYOUT, "BDD100K images", max_images,
                               seed)
        candidates = [self.root / "labels" / "det_20" / f"det_{split}.json",
                      self.root / "labels" / f"bdd100k_labels_images_{split}.json",
                      self.root / "labels" / "100k" / split]
        if labels_file is False:  # no labels, on purpose
            self.labels_file, self.labels_files = None, []
        elif labels_file is not None:
            given = Path(labels_file).expanduser()
            # a relative path names a file in the dataset root (as the CLI help's example
            # labels_file=labels/det_20/det_train.json), else one in the current folder
            self.labels_file = next((p for p in ((self.root / given, given) if not given.is_absolute() else (given,))
                                     if p.exists()), given)
            if not self.labels_file.exists():
                where = (f"in the dataset root {self.root} nor in the current folder {Path.cwd()}"
                         if not given.is_absolute() else "")
                raise DatasetLayoutError(
                    f"labels file {given} not found{' ' + where if where else ''}. Expected layout:\n{_BDD100K_LAYOUT}")
            self.labels_files = [self.labels_file]
        else:
            self.labels_files = [c for c in candidates if c.exists()]
            self.labels_file = self.labels_files[0] if self.labels_files else None
        self._attributes: dict[str, dict] = {}
        for path in self.labels_files:  # det_20 first; the 2018 file fills images det_20 leaves out
            for sample_id, attributes in self._read_attributes(path).items():
                self._attributes.setdefault(sample_id, attributes)
            if all(i in self._attributes for i in self._ids):
                break
        self._check_labels(labels_file, candidates)

    def _check_labels(self, labels_file, candidates) -> None:
        """Say so before anything is embedded when the images have no or too few labels."""
        if labels_file is False or self.split == "test":  # the test split has no labels
            return
        labelled = sum(i in self._attributes for i in self._ids)
        if not self.labels_files:
            warnings.warn(f"BDD100K {self.split}: no label file, so the {len(self._ids)} images have no weather / "
                          f"scene / time of day (cluster alignment needs them). Looked for "
                          f"{', '.join(str(c) for c in candidates)}; pass labels_file=<file> (CLI: --source-option "
                          "labels_file=...), or labels_file=False to go without labels", stacklevel=3)
        elif labelled == 0:
            raise DatasetLayoutError(
                f"{', '.join(map(str, self.labels_files))} label none of the {len(self._ids)} images of "
                f"{self.root / 'images' / '100k' / self.split} (e.g. {self._ids[0]!r}): a label file of another "
                f"split? Pass labels_file= the {self.split} labels (expected {candidates[0].name} or "
                f"{candidates[1].name}), or labels_file=False to go without labels")
        elif labelled < len(self._ids):
            warnings.warn(f"BDD100K {self.split}: {len(self._ids) - labelled} of {len(self._ids)} images have no "
                          f"labels in {', '.join(map(str, self.labels_files))}; their attributes are None",
                          stacklevel=3)

    def _read_attributes(self, path: Path) -> dict[str, dict]:
        if path.is_dir():  # one JSON per image (the older per-image format)
            entries = []
            for sample_id in self._ids:
                item = path / f"{sample_id}.json"
                if item.is_file():
                    entries.append(json.loads(item.read_text()) | {"name": f"{sample_id}.jpg"})
        else:
            try:
                with open(path, encoding="utf-8") as handle:
                    entries = json.load(handle)
            except ValueError as exc:
                raise ValueError(f"{path} is not valid JSON ({exc}); re-download the BDD100K labels") from None
            if isinstance(entries, dict) and "frames" in entries:  # a Scalabel dataset object
                entries = entries["frames"]
            if not isinstance(entries, list):
                raise ValueError(f"{path} is not a BDD100K label list "
                                 "([{\"name\": ..., \"attributes\": {...}}, ...])")
        return {Path(e["name"]).stem: (e.get("attributes") or {}) for e in entries if isinstance(e, dict) and "name" in e}

    def metadata(self) -> pd.DataFrame:
        table = self._base_table()
        for attribute in BDD100K_ATTRIBUTES:
            table[attribute] = pd.Series([self._attributes.get(i, {}).get(attribute) for i in self._ids],
                                         dtype=object)
        return table


