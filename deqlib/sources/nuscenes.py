"""nuScenes front-camera key frames, read from the JSON tables (no devkit needed)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
from PIL import Image

from deqlib.sources.base import SOURCES, DatasetLayoutError, _open_image_file, _require_root
from deqlib.sources.table import TableSource


_NUSCENES_LAYOUT = """  <root>/<version>/{sample,sample_data,calibrated_sensor,sensor,scene}.json
      (version: v1.0-trainval, v1.0-mini)
  <root>/samples/CAM_FRONT/*.jpg   (key-frame images)"""
_NUSCENES_TABLES = ("sample", "sample_data", "calibrated_sensor", "sensor", "scene")

# The two v1.0-mini scene lists, as in nuscenes-devkit python-sdk/nuscenes/utils/splits.py
# (nutonomy/nuscenes-devkit, commit 0334132b). The trainval lists (700 + 150 scenes) come from
# the installed devkit instead of being copied here.
NUSCENES_MINI_SPLITS = {
    "mini_train": ("scene-0061", "scene-0553", "scene-0655", "scene-0757", "scene-0796", "scene-1077",
                   "scene-1094", "scene-1100"),
    "mini_val": ("scene-0103", "scene-0916"),
}
_NUSCENES_SPLITS_BY_VERSION = {"mini": ("mini_train", "mini_val"), "trainval": ("train", "val"), "test": ("test",)}
# Every split name the devkit accepts for a version (create_splits_scenes), plus mini's train/val aliases.
_NUSCENES_VALID_SPLITS = {"mini": ("train", "val", "mini_train", "mini_val"),
                          "trainval": ("train", "val", "train_detect", "train_track"), "test": ("test",)}


def nuscenes_split_scenes(version: str, split: str) -> frozenset[str]:
    """Scene names of a nuScenes split.

    ``split`` is a devkit split name (``train``, ``val``, ``test``, ``mini_train``,
    ``mini_val``); for a mini version ``train`` / ``val`` mean ``mini_train`` / ``mini_val``.
    The mini lists are built in; the others need ``nuscenes-devkit``.
    """
    flavour = version.rsplit("-", 1)[-1]
    name = f"mini_{split}" if flavour == "mini" and split in ("train", "val") else split
    allowed = _NUSCENES_SPLITS_BY_VERSION.get(flavour)
    if allowed is not None and name not in allowed and name in {s for v in _NUSCENES_SPLITS_BY_VERSION.values()
                                                                 for s in v}:
        raise ValueError(f"nuScenes split {split!r} does not belong to version {version!r}; "
                         f"choose one of {list(allowed)} or None (every scene)")
    known = _NUSCENES_VALID_SPLITS.get(flavour)
    if known is not None and split not in known:  # a typo or another dataset's name: no devkit can help
        raise ValueError(f"unknown nuScenes split {split!r} for {version}; valid: {list(known)}, "
                         "or None for every scene (CLI: --split none)")
    if name in NUSCENES_MINI_SPLITS:
        return frozenset(NUSCENES_MINI_SPLITS[name])
    try:
        from nuscenes.utils.splits import create_splits_scenes
    except ImportError:
        raise DatasetLayoutError(
            f"nuScenes split {split!r} of {version} needs the official scene lists from nuscenes-devkit: "
            "`pip install nuscenes-devkit` (the JSON tables are read without it), "
            "or pass split=None for every front-camera key frame") from None
    splits = create_splits_scenes()
    if name not in splits:
        raise ValueError(f"unknown nuScenes split {split!r}; nuscenes-devkit knows {sorted(splits)}")
    return frozenset(splits[name])


@SOURCES.register("nuscenes", summary="nuScenes CAM_FRONT key frames from the JSON tables")
class NuScenesSource(TableSource):
    """nuScenes front-camera (``CAM_FRONT``) key frames, read from the JSON tables (no devkit needed).

    Parameters
    ----------
    root : path
        The nuScenes folder (``<root>/<version>/*.json``, ``<root>/samples/...``).
    version : str, optional
        ``'v1.0-trainval'``, ``'v1.0-mini'``, ...; default: ``v1.0-trainval`` if present, else
        ``v1.0-mini``.
    split : str or None, default='train'
        ``None``: every scene. Otherwise a devkit split (``'train'``, ``'val'``; a mini version
        maps them to ``mini_train`` / ``mini_val``, built in; the trainval lists need
        ``nuscenes-devkit``).
    max_images : int, optional
        Seeded subsample of this many frames (in scene and time order).
    seed : int, default=0
    channel : str, default='CAM_FRONT'
        Camera channel to list.

    Notes
    -----
    Sample ids are sample tokens, as the BEVFormer fork keys its bank. Frames are ordered by
    scene name, then time. Metadata: ``scene_name``, ``scene_description``, ``timestamp``
    (microseconds), ``sample_data_token``, and ``night`` / ``rain`` flags read from the scene
    description.
    """

    name = "nuscenes"
    download_hint = ("Download nuScenes (v1.0-trainval or v1.0-mini: metadata and the CAM_FRONT sample images) "
                     "from https://www.nuscenes.org/download and put or link it at data/raw/nuscenes. The "
                     "train/val split by scene needs `pip install nuscenes-devkit`; split=None uses every scene.")

    def __init__(self, root, version: str | None = None, split: str | None = "train",
                 max_images: int | None = None, seed: int = 0, channel: str = "CAM_FRONT"):
        self.root = _require_root(root, "nuscenes", _NUSCENES_LAYOUT, self.download_hint)
        if version is None:
            version = next((v for v in ("v1.0-trainval", "v1.0-mini") if (self.root / v).is_dir()), "v1.0-trainval")
        self.version, self.split, self.channel = version, split, channel
        self._read_table("scene")  # a wrong version fails here, naming the versions found, before the split check
        wanted = nuscenes_split_scenes(version, split) if split is not None else None  # before the big tables
        tables = {name: self._read_table(name) for name in _NUSCENES_TABLES}
        sensors = {s["token"] for s in tables["sensor"] if s.get("channel") == channel}
        if not sensors:
            raise ValueError(f"no sensor with channel {channel!r} in {self.root / version / 'sensor.json'}")
        calibrated = {c["token"] for c in tables["calibrated_sensor"] if c["sensor_token"] in sensors}
        samples = {s["token"]: s for s in tables["sample"]}
        scenes = {s["token"]: s for s in tables["scene"]}
        rows = []
        for record in tables["sample_data"]:
            if not record.get("is_key_frame") or record["calibrated_sensor_token"] not in calibrated:
                continue
            sample = samples[record["sample_token"]]
            scene = scenes[sample["scene_token"]]
            if wanted is not None and scene["name"] not in wanted:
                continue
            rows.append((record["sample_token"], str(self.root / record["filename"]), scene["name"],
                         scene.get("description", ""), int(sample["timestamp"]), record["token"]))
        del tables
        if not rows:
            raise DatasetLayoutError(f"no {channel} key frames in {self.root / version} for split {split!r}. "
                                     f"Expected layout:\n{_NUSCENES_LAYOUT}")
        rows.sort(key=lambda r: (r[2], r[4], r[0]))
        table = self._select_rows(pd.DataFrame(rows, columns=[
            "sample_id", "location", "scene_name", "scene_description", "timestamp", "sample_data_token"]),
            max_images, seed)
        if not any(os.path.isfile(p) for p in table["location"]):
            raise DatasetLayoutError(f"the tables list {len(table)} {channel} images but none is under {self.root} "
                                     f"(e.g. {table['location'].iat[0]}): download the key-frame blobs. "
                                     f"Expected layout:\n{_NUSCENES_LAYOUT}")
        description = table["scene_description"].str.lower()
        table["night"] = description.str.contains("night")
        table["rain"] = description.str.contains("rain")
        self._set_table(table, table["location"].tolist(), f"nuScenes {channel}")

    def _read_table(self, name: str) -> list[dict]:
        path = self.root / self.version / f"{name}.json"
        if not path.is_file():
            found = sorted(p.name for p in self.root.glob("v*") if (p / f"{name}.json").is_file())
            if found and self.version not in found:
                raise DatasetLayoutError(f"nuScenes {self.version} is not in {self.root}: found {', '.join(found)}; "
                                         f"pass version={found[0]!r} (CLI: --source-option version={found[0]})")
            raise DatasetLayoutError(f"nuScenes table {path} not found. Expected layout:\n{_NUSCENES_LAYOUT}")
        with open(path, encoding="utf-8") as handle:  # streamed: sample_data.json is large
            return json.load(handle)

    def _identity(self) -> str:
        return f"{self.name}|{self.version}|{self.split}|{self.channel}"

    def load(self, index: int, draft=None) -> Image.Image:
        return _open_image_file(Path(self._files[index]), draft)


