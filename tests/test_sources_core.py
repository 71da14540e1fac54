"""Fashion-MNIST and folder sources: ids, subsampling, metadata, mode conversion, bad input."""

import gzip
import pickle

import numpy as np
import pytest
from PIL import Image

from deqlib.sources import (DatasetLayoutError, FashionMNISTSource, ImageLoadError, open_source, to_rgb)


def _write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_fmnist(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 10)):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 255, size=(n, 28, 28)))
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return tmp_path


def test_real_debian_fashion_mnist_counts_and_labels():
    source = open_source("fashion-mnist", split="test")
    assert len(source) == 10_000 and source.sample_ids[:2] == ["test-00000", "test-00001"]
    meta = source.metadata()
    assert meta.label.value_counts().tolist() == [1000] * 10
    assert meta.class_name[0] == "Ankle boot"  # the first test image of Fashion-MNIST is an ankle boot
    image = source.load(0)
    assert image.mode == "RGB" and image.size == (28, 28)


def test_stratified_seeded_subsample(tiny_fmnist):
    a = FashionMNISTSource(tiny_fmnist, split="all", max_images=20, seed=3)
    b = FashionMNISTSource(tiny_fmnist, split="all", max_images=20, seed=3)
    assert a.sample_ids == b.sample_ids and len(a) == 20
    assert np.bincount(a.labels, minlength=10).tolist() == [2] * 10
    assert a.sample_ids == sorted(a.sample_ids, key=lambda s: (s.startswith("test"), s))
    assert pickle.loads(pickle.dumps(a)).sample_ids == a.sample_ids
    assert a.fingerprint() == b.fingerprint() != FashionMNISTSource(tiny_fmnist, split="all", max_images=20, seed=4).fingerprint()


def test_missing_and_truncated_idx(tmp_path, tiny_fmnist):
    with pytest.raises(DatasetLayoutError, match="apt-get install dataset-fashion-mnist"):
        FashionMNISTSource(tmp_path / "nowhere")
    data = gzip.decompress((tiny_fmnist / "train-images-idx3-ubyte.gz").read_bytes())
    with gzip.open(tiny_fmnist / "train-images-idx3-ubyte.gz", "wb") as handle:
        handle.write(data[:500])
    with pytest.raises(ImageLoadError, match="truncated"):
        FashionMNISTSource(tiny_fmnist)
    with pytest.raises(ValueError, match="split"):
        FashionMNISTSource(tiny_fmnist, split="val")


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "LA", "1"])
def test_every_mode_becomes_rgb(mode):
    base = Image.linear_gradient("L").resize((16, 16))
    if mode == "I;16":
        image = Image.fromarray(np.asarray(base, dtype=np.uint16) * 257).convert("I;16")
    else:
        image = base.convert(mode)
    rgb = to_rgb(image)
    assert rgb.mode == "RGB" and rgb.size == (16, 16)
    if mode == "I;16":  # 16-bit is rescaled to the full 8-bit range, not clipped to white
        values = np.asarray(rgb)[..., 0]
        assert values.min() == 0 and values.max() == 255


def test_folder_source_recursive_with_corrupt_file(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    Image.new("RGB", (8, 8), "red").save(tmp_path / "a" / "one.png")
    Image.new("RGBA", (8, 8), (0, 0, 255, 0)).save(tmp_path / "a" / "b" / "two.png")
    Image.new("RGB", (64, 64), "green").save(tmp_path / "three.JPG", quality=90)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (tmp_path / "notes.txt").write_text("not an image")
    source = open_source("folder", root=tmp_path)
    assert source.sample_ids == ["a/b/two.png", "a/one.png", "broken.jpg", "three.JPG"]
    assert source.load(0).getpixel((0, 0)) == (255, 255, 255)  # transparent -> white background
    with pytest.raises(ImageLoadError, match="broken.jpg"):
        source.load(2)
    assert source.load(3, draft=(16, 16)).size == (16, 16)  # JPEG draft decode at 1/4 scale
    assert source.metadata().folder.tolist() == ["a/b", "a", ".", "."]


def test_unknown_kind_and_missing_folder(tmp_path):
    with pytest.raises(ValueError, match="fashion-mnist"):
        open_source("imagenet")
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        open_source("folder", root=tmp_path / "missing")
