"""Fashion-MNIST from its IDX files (Debian's ``dataset-fashion-mnist`` by default)."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from deqlib.sources.base import SOURCES, DatasetLayoutError, ImageLoadError, ImageSource, _select


FASHION_MNIST_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot")


def _read_idx(path: Path) -> np.ndarray:
    """An unsigned-byte IDX array (``.gz`` or plain), checked against its header."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as exc:
        raise ImageLoadError(f"cannot read IDX file {path}: {exc}") from exc
    magic = int.from_bytes(data[:4], "big") if len(data) >= 4 else 0
    if magic >> 8 != 0x08:  # 0x08: unsigned bytes
        raise ImageLoadError(f"{path} is not an unsigned-byte IDX file (magic {magic:#x})")
    ndim = magic & 0xFF
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    array = np.frombuffer(data, dtype=np.uint8, offset=min(4 + 4 * ndim, len(data)))
    if array.size != expected:
        raise ImageLoadError(f"{path} is truncated or padded: expected {expected} values, found {array.size}")
    return array.reshape(shape)


@SOURCES.register("fashion-mnist", summary="Fashion-MNIST, 70,000 28x28 images in 10 classes (the offline default)")
class FashionMNISTSource(ImageSource):
    """Fashion-MNIST (70,000 real 28x28 grayscale images, 10 classes), the embedded default.

    Parameters
    ----------
    root : path, optional
        Folder with ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``. Default: Debian's
        ``dataset-fashion-mnist`` at ``/usr/share/datasets/fashion-mnist``.
    split : {'train', 'test', 'all'}, default='train'
        60,000 / 10,000 / 70,000 images; ids ``'train-00042'`` / ``'test-00042'``.
    max_images : int, optional
        Keep a class-stratified, seeded subsample of this many images (in id order).
    seed : int, default=0
        Seed of the subsample.

    Notes
    -----
    All pixels sit in memory (70,000 x 784 bytes = 55 MB at most), so loading is a copy.
    Metadata: ``label`` (0-9) and ``class_name``.
    """

    name = "fashion-mnist"
    download_hint = ("`sudo apt-get install dataset-fashion-mnist` (Debian), or download the four IDX files from "
                     "https://github.com/zalandoresearch/fashion-mnist and pass root= their folder.")
    _PREFIX = {"train": "train", "test": "t10k"}

    def __init__(self, root=None, split: str = "train", max_images: int | None = None, seed: int = 0):
        self.root = Path(root).expanduser() if root is not None else FASHION_MNIST_DEBIAN_DIR
        if split not in ("train", "test", "all"):
            raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
        self.split, self.max_images, self.seed = split, max_images, seed
        images, labels, ids = [], [], []
        for part in (["train", "test"] if split == "all" else [split]):
            image_path = self._find(f"{self._PREFIX[part]}-images-idx3-ubyte")
            label_path = self._find(f"{self._PREFIX[part]}-labels-idx1-ubyte")
            part_images, part_labels = _read_idx(image_path), _read_idx(label_path)
            if part_images.ndim != 3 or part_labels.ndim != 1 or len(part_images) != len(part_labels):
                raise ImageLoadError(f"{image_path} (shape {part_images.shape}) and {label_path} "
                                     f"(shape {part_labels.shape}) do not match as images and labels")
            images.append(part_images)
            labels.append(part_labels)
            ids += [f"{part}-{i:05d}" for i in range(len(part_images))]
        all_labels = np.concatenate(labels)
        keep = _select(len(all_labels), max_images, seed, strata=all_labels)
        self._images = np.ascontiguousarray(np.concatenate(images)[keep])
        self._labels = all_labels[keep].astype(np.int64)
        self._ids = [ids[i] for i in keep]

    def _find(self, stem: str) -> Path:
        for candidate in (self.root / f"{stem}.gz", self.root / stem):
            if candidate.is_file():
                return candidate
        raise DatasetLayoutError(
            f"Fashion-MNIST file {stem}[.gz] not found in {self.root}. Expected layout:\n"
            f"  {self.root}/train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz\n"
            f"  {self.root}/t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz\n"
            f"Fix: {self.download_hint}")

    @property
    def sample_ids(self) -> list[str]:
        return self._ids

    @property
    def labels(self) -> np.ndarray:
        """Class label (0-9) of each sample, in order."""
        return self._labels

    def load(self, index: int, draft=None) -> Image.Image:
        return Image.fromarray(self._images[index]).convert("RGB")

    def metadata(self) -> pd.DataFrame:
        return pd.DataFrame({
            "sample_id": self._ids,
            "location": [f"{self.root}#{sid}" for sid in self._ids],
            "label": self._labels,
            "class_name": [FASHION_MNIST_CLASSES[i] for i in self._labels],
        })

    def fingerprint(self) -> str:
        digest = hashlib.sha256(f"{self.name}|{self.split}|{self.root}".encode())
        digest.update("\n".join(self._ids).encode())
        digest.update(hashlib.sha256(self._images.tobytes()).digest())
        return digest.hexdigest()[:16]


