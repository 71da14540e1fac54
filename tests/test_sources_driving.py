"""KITTI, nuScenes, Waymo (extracted and v2 Parquet) and BDD100K loaders on tiny trees in their real layouts."""

import pickle
import sys

import pandas as pd
import pytest

from deqlib.sources import DatasetLayoutError, ImageLoadError, kitti_class_counts, open_source
from layouts import (make_bdd100k_tree, make_kitti_tree, make_nuscenes_tree, make_waymo_folder_tree,
                     make_waymo_parquet_tree)


def test_kitti_ids_splits_and_class_counts(tmp_path):
    root = make_kitti_tree(tmp_path / "kitti", n_images=14)
    train = open_source("kitti", root=root, split="train")
    assert train.sample_ids == [f"{i:06d}" for i in range(7)]
    assert open_source("kitti", root=root, split="val").sample_ids[0] == "000007"
    assert len(open_source("kitti", root=root, split=None)) == 14
    meta = train.metadata()
    assert meta.n_Car.tolist() == [1, 2, 1, 2, 1, 2, 1]
    assert meta.has_Pedestrian.tolist() == [True, False, False, True, False, False, True]
    counts = kitti_class_counts(root)
    assert counts.to_dict() == {"Car": 21, "Pedestrian": 5, "Cyclist": 2}  # DontCare excluded
    assert train.load(0).size == (124, 38)


def test_kitti_dd3d_split_folder_and_missing_split(tmp_path):
    root = make_kitti_tree(tmp_path / "kitti", split_folder="mv3d_kitti_splits")
    assert len(open_source("kitti", root=root, split="trainval")) == 14
    with pytest.raises(DatasetLayoutError, match="ImageSets"):
        open_source("kitti", root=root, split="test")
    with pytest.raises(DatasetLayoutError, match="training/image_2"):
        open_source("kitti", root=tmp_path / "empty")


def test_kitti_corrupt_png_is_a_load_error(tmp_path):
    root = make_kitti_tree(tmp_path / "kitti")
    (root / "training" / "image_2" / "000003.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(ImageLoadError, match="000003.png"):
        open_source("kitti", root=root, split="train").load(3)


def test_nuscenes_front_key_frames_only_by_sample_token(tmp_path):
    root = make_nuscenes_tree(tmp_path / "nuscenes", n_scenes=2, samples_per_scene=6)
    source = open_source("nuscenes", root=root, version="v1.0-mini", split=None)
    assert len(source) == 12  # sweeps and CAM_BACK filtered out
    assert source.sample_ids[:2] == ["sample-0-0", "sample-0-1"]
    meta = source.metadata()
    assert set(meta.scene_name) == {"scene-0061", "scene-0103"}
    assert meta.location.str.contains("samples/CAM_FRONT/").all()
    assert meta.night.tolist() == [False] * 6 + [True] * 6
    assert source.load(0).size == (160, 90)
    assert source.load(0, draft=(40, 23)).width < 160  # JPEG draft mode decodes at a reduced scale


def test_nuscenes_split_needs_devkit_or_says_how(tmp_path, monkeypatch):
    root = make_nuscenes_tree(tmp_path / "nuscenes")
    monkeypatch.setitem(sys.modules, "nuscenes", None)  # devkit not installed
    with pytest.raises(DatasetLayoutError, match="pip install nuscenes-devkit"):
        open_source("nuscenes", root=root, version="v1.0-mini", split="train")
    with pytest.raises(DatasetLayoutError, match="sample.json"):
        open_source("nuscenes", root=root, version="v1.0-trainval", split=None)


def test_waymo_extracted_folder(tmp_path):
    root = make_waymo_folder_tree(tmp_path / "waymo", n_images=5)
    source = open_source("waymo", root=root)
    assert source.sample_ids == [f"{i:07d}" for i in range(5)] and source.load(2).size == (192, 128)


def test_waymo_v2_parquet_front_camera_lazy_decode(tmp_path):
    root = make_waymo_parquet_tree(tmp_path / "waymo", n_segments=2, frames=6, row_group_size=4)
    source = open_source("waymo-parquet", root=root)
    assert len(source) == 12  # 2 segments x 6 frames, front camera of 5
    first = source.sample_ids[0]
    assert first.startswith("10017090168044687777_6380_000_6400_000_1510593600000000_") and first.endswith("_1")
    images = [source.load(i) for i in range(len(source))]
    assert all(image.size == (192, 128) and image.mode == "RGB" for image in images)
    clone = pickle.loads(pickle.dumps(source))  # workers get no cached bytes, and still decode
    assert clone._cache is None and clone.load(5).size == (192, 128)
    meta = source.metadata()
    assert meta.timestamp_micros.is_monotonic_increasing or meta.segment.nunique() == 2


def test_bdd100k_attributes_and_unlabelled_image(tmp_path):
    root = make_bdd100k_tree(tmp_path / "bdd", n_images=12)
    source = open_source("bdd100k", root=root, split="train")
    meta = source.metadata()
    assert len(meta) == 12
    assert meta.timeofday.tolist()[:7] == ["daytime"] * 6 + ["night"]
    assert meta.weather.iloc[0] == "rainy" and pd.isna(meta.timeofday.iloc[-1])
    with pytest.raises(DatasetLayoutError, match="images/100k"):
        open_source("bdd100k", root=root, split="val")


def test_max_images_is_seeded_and_stable(tmp_path):
    root = make_bdd100k_tree(tmp_path / "bdd", n_images=12)
    a = open_source("bdd100k", root=root, max_images=5, seed=1).sample_ids
    assert a == open_source("bdd100k", root=root, max_images=5, seed=1).sample_ids and len(a) == 5
