"""Image sources: one small interface over every dataset layout.

An :class:`ImageSource` lists samples (``sample_ids``, stable order), opens one as an RGB PIL
image (:meth:`~ImageSource.load`), and describes them (:meth:`~ImageSource.metadata`: one row
per sample with ``sample_id``, ``location`` and dataset attributes). Sources are plain picklable
objects so DataLoader worker processes can decode images in parallel.

Bad input: a missing root or split file raises :class:`DatasetLayoutError` whose message shows
the expected layout; an unreadable image raises :class:`ImageLoadError` naming the file (the
embedding engine skips it, logs it and lists it in a failures file). Grayscale, RGBA, palette
and 16-bit images are converted to RGB.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from PIL import Image

__all__ = [
    "ImageLoadError",
    "DatasetLayoutError",
    "ImageSource",
    "SubsetSource",
    "FashionMNISTSource",
    "FolderSource",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DEBIAN_DIR",
    "IMAGE_EXTENSIONS",
    "to_rgb",
    "open_source",
    "SOURCE_KINDS",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
FASHION_MNIST_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot")


class ImageLoadError(OSError):
    """An image that cannot be read or decoded (corrupt, truncated, missing)."""


class DatasetLayoutError(FileNotFoundError):
    """A dataset root, split list or table is missing; the message shows the expected layout."""


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB (16-bit and float images are rescaled, not clipped)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        scaled = np.zeros_like(array) if high <= low else (array - low) / (high - low) * 255.0
        return Image.fromarray(scaled.round().astype(np.uint8), mode="L").convert("RGB")
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))  # transparent -> white
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _open_image_file(path: Path, draft: tuple[int, int] | None = None) -> Image.Image:
    try:
        with Image.open(path) as image:
            if draft is not None and image.format == "JPEG":
                # JPEG DCT scaling: decode at >= draft size, much faster than a full decode.
                image.draft("RGB", draft)
            image.load()
            return to_rgb(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageLoadError(f"cannot read image {path}: {type(exc).__name__}: {exc}") from exc


class ImageSource:
    """Base class: subclasses set ``name``, ``root``, ``split`` and implement the four methods."""

    name: str = "images"
    root: Path | None = None
    split: str | None = None

    @property
    def sample_ids(self) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.sample_ids)

    def load(self, index: int, draft: tuple[int, int] | None = None) -> Image.Image:  # pragma: no cover
        raise NotImplementedError

    def metadata(self) -> pd.DataFrame:  # pragma: no cover - abstract
        raise NotImplementedError

    def fingerprint(self) -> str:
        """Stable hash of what the source lists (its ids and their locations)."""
        digest = hashlib.sha256(f"{self.name}|{self.split}".encode())
        table = self.metadata()
        for sample_id, location in zip(table["sample_id"], table["location"]):
            digest.update(f"{sample_id}\t{location}\n".encode())
        return digest.hexdigest()[:16]

    def subset(self, indices: Sequence[int]) -> "SubsetSource":
        return SubsetSource(self, indices)

    def describe(self) -> str:
        where = f" at {self.root}" if self.root else ""
        split = f", split {self.split!r}" if self.split else ""
        return f"{self.name}: {len(self)} images{split}{where}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


class SubsetSource(ImageSource):
    """A fixed selection of another source's samples, in the given order."""

    def __init__(self, parent: ImageSource, indices: Sequence[int]):
        self.parent = parent
        self.indices = [int(i) for i in indices]
        if any(not 0 <= i < len(parent) for i in self.indices):
            raise IndexError(f"subset indices must lie in [0, {len(parent)})")
        self.name, self.root, self.split = parent.name, parent.root, parent.split
        ids = parent.sample_ids
        self._ids = [ids[i] for i in self.indices]

    @property
    def sample_ids(self) -> list[str]:
        return self._ids

    def load(self, index: int, draft=None) -> Image.Image:
        return self.parent.load(self.indices[index], draft=draft)

    def metadata(self) -> pd.DataFrame:
        return self.parent.metadata().iloc[self.indices].reset_index(drop=True)


def _select(n_total: int, max_images: int | None, seed: int, strata: np.ndarray | None = None) -> np.ndarray:
    """Deterministic subsample of ``max_images`` positions (stratified when ``strata`` is given), sorted."""
    if max_images is None or max_images >= n_total:
        return np.arange(n_total)
    if max_images < 1:
        raise ValueError(f"max_images must be >= 1, got {max_images}")
    rng = np.random.default_rng(seed)
    if strata is None:
        return np.sort(rng.choice(n_total, size=max_images, replace=False))
    values, counts = np.unique(strata, return_counts=True)
    quota = np.floor(counts / n_total * max_images).astype(int)
    for i in np.argsort(-(counts / n_total * max_images - quota))[: max_images - quota.sum()]:
        quota[i] += 1  # largest remainders get the leftover places
    chosen = [rng.choice(np.flatnonzero(strata == v), size=q, replace=False) for v, q in zip(values, quota)]
    return np.sort(np.concatenate(chosen))


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as exc:
        raise ImageLoadError(f"cannot read IDX file {path}: {exc}") from exc
    magic = int.from_bytes(data[:4], "big")
    if magic >> 8 != 0x08:  # 0x08 = unsigned byte data
        raise ImageLoadError(f"{path} is not an unsigned-byte IDX file (magic {magic:#x})")
    ndim = magic & 0xFF
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ImageLoadError(f"{path} is truncated: expected {int(np.prod(shape))} values, found {array.size}")
    return array.reshape(shape)


class FashionMNISTSource(ImageSource):
    """Fashion-MNIST (70,000 real 28x28 grayscale images, 10 classes), the embedded default.

    Parameters
    ----------
    root : path, optional
        Folder with ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``; default: Debian's
        ``dataset-fashion-mnist`` at ``/usr/share/datasets/fashion-mnist``.
    split : {'train', 'test', 'all'}, default='train'
        60,000 / 10,000 / 70,000 images.
    max_images : int, optional
        Keep a class-stratified, seeded subsample of this many images.
    seed : int, default=0
        Seed of the subsample.
    """

    name = "fashion-mnist"
    _FILES = {"train": "train", "test": "t10k"}

    def __init__(self, root=None, split: str = "train", max_images: int | None = None, seed: int = 0):
        self.root = Path(root) if root is not None else FASHION_MNIST_DEBIAN_DIR
        if split not in ("train", "test", "all"):
            raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
        self.split, self.max_images, self.seed = split, max_images, seed
        parts = ["train", "test"] if split == "all" else [split]
        images, labels, ids = [], [], []
        for part in parts:
            prefix = self._FILES[part]
            image_path = self._find(f"{prefix}-images-idx3-ubyte")
            label_path = self._find(f"{prefix}-labels-idx1-ubyte")
            part_images, part_labels = _read_idx(image_path), _read_idx(label_path)
            if len(part_images) != len(part_labels):
                raise ImageLoadError(f"{image_path} has {len(part_images)} images but {label_path} "
                                     f"{len(part_labels)} labels")
            images.append(part_images)
            labels.append(part_labels)
            ids += [f"{part}-{i:05d}" for i in range(len(part_images))]
        all_labels = np.concatenate(labels)
        keep = _select(len(all_labels), max_images, seed, strata=all_labels)
        self._images = np.concatenate(images)[keep]
        self._labels = all_labels[keep].astype(np.int64)
        self._ids = [ids[i] for i in keep]

    def _find(self, stem: str) -> Path:
        for candidate in (self.root / f"{stem}.gz", self.root / stem):
            if candidate.is_file():
                return candidate
        raise DatasetLayoutError(
            f"Fashion-MNIST file {stem}[.gz] not found in {self.root}. Expected layout:\n"
            f"  {self.root}/train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,\n"
            f"  {self.root}/t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz\n"
            "Fix: `sudo apt-get install dataset-fashion-mnist` (Debian), or pass root= a folder with those files."
        )

    @property
    def sample_ids(self) -> list[str]:
        return self._ids

    def load(self, index: int, draft=None) -> Image.Image:
        return Image.fromarray(self._images[index], mode="L").convert("RGB")

    @property
    def labels(self) -> np.ndarray:
        return self._labels

    def metadata(self) -> pd.DataFrame:
        return pd.DataFrame({
            "sample_id": self._ids,
            "location": [f"{self.root}#{sid}" for sid in self._ids],
            "label": self._labels,
            "class_name": [FASHION_MNIST_CLASSES[i] for i in self._labels],
        })


class FolderSource(ImageSource):
    """Every image under a folder, recursively (sample id: the path relative to the root).

    Parameters
    ----------
    root : path
    extensions : tuple of str, default=IMAGE_EXTENSIONS
        File endings that count as images (case-insensitive).
    max_images, seed : optional seeded subsample.
    """

    name = "folder"

    def __init__(self, root, extensions: Sequence[str] = IMAGE_EXTENSIONS, max_images: int | None = None,
                 seed: int = 0, split: str | None = None):
        self.root = Path(root)
        self.split = split
        if not self.root.is_dir():
            raise DatasetLayoutError(f"image folder {self.root} does not exist. Expected layout: "
                                     f"{self.root}/**/*.jpg|png|... (any depth)")
        endings = tuple(e.lower() for e in extensions)
        files = sorted(p for p in self.root.rglob("*") if p.is_file() and p.suffix.lower() in endings)
        if not files:
            raise DatasetLayoutError(f"no images ({', '.join(endings)}) found under {self.root}")
        keep = _select(len(files), max_images, seed)
        self._files = [files[i] for i in keep]
        self._ids = [p.relative_to(self.root).as_posix() for p in self._files]

    @property
    def sample_ids(self) -> list[str]:
        return self._ids

    def load(self, index: int, draft=None) -> Image.Image:
        return _open_image_file(self._files[index], draft)

    def metadata(self) -> pd.DataFrame:
        return pd.DataFrame({
            "sample_id": self._ids,
            "location": [str(p) for p in self._files],
            "folder": [p.parent.relative_to(self.root).as_posix() for p in self._files],
        })

    def fingerprint(self) -> str:
        digest = hashlib.sha256(str(self.root).encode())
        for path in self._files:
            stat = os.stat(path)
            digest.update(f"{path}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()[:16]


SOURCE_KINDS = {
    "fashion-mnist": FashionMNISTSource,
    "folder": FolderSource,
}


def open_source(kind: str, root=None, split: str | None = None, **options) -> ImageSource:
    """Open a source by kind (see :data:`SOURCE_KINDS`), root folder and split."""
    try:
        cls = SOURCE_KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown source kind {kind!r}; choose one of {sorted(SOURCE_KINDS)}") from None
    if split is not None:
        options["split"] = split
    if root is not None:
        options["root"] = root
    return cls(**options)
