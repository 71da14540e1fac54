"""Image sources: one small interface over every dataset layout of the paper.

An :class:`ImageSource` lists samples (``sample_ids``: unique, stable order), opens one as an
RGB PIL image (:meth:`~ImageSource.load`), and describes them (:meth:`~ImageSource.metadata`:
one row per sample with ``sample_id``, ``location`` and dataset attributes). Sources are plain
picklable objects, so DataLoader worker processes can decode images in parallel.

Kinds (:func:`open_source`): ``fashion-mnist``, ``folder``, ``kitti``, ``nuscenes``, ``waymo``
(front-camera frames extracted to files), ``waymo-parquet`` (the v2 Parquet release) and
``bdd100k``. Every kind takes ``max_images`` and ``seed`` for a deterministic subsample.

Bad input: a missing root, split list or table raises :class:`DatasetLayoutError` (a
``FileNotFoundError``) whose message shows the expected layout; an unreadable, corrupt or
truncated image raises :class:`ImageLoadError` (an ``OSError``) naming the file, which the
embedding engine skips, logs and lists in its failures file. Grayscale, RGBA, palette and
16-bit images are converted to 8-bit RGB (:func:`to_rgb`).
"""

from __future__ import annotations

import gzip
import hashlib
import inspect
import io
import json
import os
import warnings
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

__all__ = [
    "ImageLoadError",
    "DatasetLayoutError",
    "ImageSource",
    "SubsetSource",
    "FashionMNISTSource",
    "FolderSource",
    "KittiSource",
    "kitti_class_counts",
    "NuScenesSource",
    "nuscenes_split_scenes",
    "WaymoFolderSource",
    "WaymoParquetSource",
    "BDD100KSource",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DEBIAN_DIR",
    "KITTI_CLASSES",
    "NUSCENES_MINI_SPLITS",
    "WAYMO_CAMERAS",
    "BDD100K_ATTRIBUTES",
    "IMAGE_EXTENSIONS",
    "to_rgb",
    "open_source",
    "SOURCE_KINDS",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class ImageLoadError(OSError):
    """An image that cannot be read or decoded (corrupt, truncated, missing); the message names it."""


class DatasetLayoutError(FileNotFoundError):
    """A dataset root, split list or table is missing; the message shows the expected layout."""


# ----------------------------------------------------------------------------------------------
# decoding


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB.

    * 16-bit (``I;16*``) maps the full 16-bit range onto 8 bits (``v / 257``), the same scale
      for every image so that brightness stays comparable across a dataset; 32-bit ``I`` is
      taken as 8-bit when it fits in 0..255 and as 16-bit when it fits in 0..65535, else
      stretched from its min to its max. Float ``F`` in [0, 1] is scaled by 255, else stretched.
    * Transparent images (``RGBA``, ``LA``, ``PA``, palette with transparency) are composited on
      white, so transparent pixels do not turn into whatever colour they happen to store.
    * Everything else (``L``, ``1``, ``P``, ``CMYK``, ``YCbCr``, ...) uses PIL's conversion.
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I;16") or mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if mode == "F" and low >= 0 and high <= 1:
            values = values * 255.0
        elif mode == "I" and low >= 0 and high <= 255:
            pass
        elif mode != "F" and low >= 0 and high <= 65535:
            values = values / 257.0
        else:  # out-of-range ints or floats: stretch (a constant image becomes black)
            values = np.zeros_like(values) if high <= low else (values - low) / (high - low) * 255.0
        gray = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))
        return gray.convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


_EXIF_ORIENTATION = 0x0112


def _decode(opened: Image.Image, draft: tuple[int, int] | None) -> Image.Image:
    if draft is not None and opened.format == "JPEG":
        # JPEG DCT scaling: decode straight to >= the draft size, several times faster.
        opened.draft("RGB", tuple(int(v) for v in draft))
    opened.load()
    image = opened
    if opened.getexif().get(_EXIF_ORIENTATION, 1) != 1:  # photos taken rotated
        image = ImageOps.exif_transpose(opened)
    return to_rgb(image)


def _open_image_file(path: Path, draft: tuple[int, int] | None = None) -> Image.Image:
    try:
        with Image.open(path) as opened:
            return _decode(opened, draft)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise ImageLoadError(f"cannot read image {path}: {type(exc).__name__}: {exc}") from exc


def _open_image_bytes(data: bytes, where: str, draft: tuple[int, int] | None = None) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as opened:
            return _decode(opened, draft)
    except (OSError, SyntaxError, ValueError, EOFError, TypeError, Image.DecompressionBombError) as exc:
        raise ImageLoadError(f"cannot decode image {where}: {type(exc).__name__}: {exc}") from exc


# ----------------------------------------------------------------------------------------------
# shared helpers


def _select(n_total: int, max_images: int | None, seed: int, strata: np.ndarray | None = None) -> np.ndarray:
    """Sorted positions of a deterministic subsample of ``max_images`` (stratified when ``strata``
    is given: each stratum keeps its share, largest remainders get the leftover places)."""
    if max_images is not None:
        if isinstance(max_images, bool) or int(max_images) != max_images or max_images < 1:
            raise ValueError(f"max_images must be a positive integer or None, got {max_images!r}")
        max_images = int(max_images)
    if max_images is None or max_images >= n_total:
        return np.arange(n_total)
    rng = np.random.default_rng(seed)
    if strata is None:
        return np.sort(rng.choice(n_total, size=max_images, replace=False))
    values, counts = np.unique(strata, return_counts=True)
    share = counts / n_total * max_images
    quota = np.floor(share).astype(int)
    for i in np.argsort(-(share - quota), kind="stable")[: max_images - quota.sum()]:
        quota[i] += 1
    chosen = [rng.choice(np.flatnonzero(strata == v), size=q, replace=False) for v, q in zip(values, quota)]
    return np.sort(np.concatenate(chosen))


def _require_root(root, kind: str, layout: str) -> Path:
    if root is None:
        raise DatasetLayoutError(f"the {kind} source needs root=<dataset folder>. Expected layout:\n{layout}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetLayoutError(f"{kind} root {root} is not a folder. Expected layout:\n{layout}")
    return root


def _utf8_text(name: str) -> str:
    """A file name as UTF-8 text: bytes that are not UTF-8 (``os.fsdecode`` surrogates) become
    ``\\xNN``, as in the embedding cache's index. Parquet, JSON and pandas' string columns need
    UTF-8, so a folder with one Latin-1 name could otherwise not be written to a bank at all."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _require_unique(ids: Sequence[str], what: str) -> None:
    if len(set(ids)) != len(ids):
        seen, repeated = set(), []
        for sample_id in ids:
            if sample_id in seen and sample_id not in repeated:
                repeated.append(sample_id)
            seen.add(sample_id)
        raise ValueError(f"{what}: sample ids must be unique, these repeat: {repeated[:5]}")


def _stat_digest(digest, paths: Iterable[Path]) -> None:
    """Feed path, size and modification time of each file (``-1`` when missing) into ``digest``."""
    for path in paths:
        try:
            stat = os.stat(path)
            line = f"{path}\t{stat.st_size}\t{stat.st_mtime_ns}\n"
        except OSError:
            line = f"{path}\t-1\n"
        digest.update(line.encode("utf-8", "surrogateescape"))  # non-UTF-8 file names hash too


# ----------------------------------------------------------------------------------------------
# base classes


class ImageSource:
    """A list of images with ids and metadata (the contract in ``docs/ARCHITECTURE.md``).

    Subclasses set ``name``, ``root`` and ``split`` and implement ``sample_ids``, ``load`` and
    ``metadata``; ``fingerprint``, ``subset`` and ``describe`` come with the base class.
    """

    name: str = "images"
    root: Path | None = None
    split: str | None = None

    @property
    def sample_ids(self) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.sample_ids)

    def load(self, index: int, draft: tuple[int, int] | None = None) -> Image.Image:  # pragma: no cover
        """Image ``index`` as RGB; ``draft=(w, h)`` lets JPEG decode at a reduced scale >= (w, h)."""
        raise NotImplementedError

    def metadata(self) -> pd.DataFrame:  # pragma: no cover - abstract
        """One row per sample, same order: ``sample_id``, ``location``, dataset attributes."""
        raise NotImplementedError

    def fingerprint(self) -> str:
        """Stable 16-hex hash of what the source lists (ids and locations), for cache keys."""
        digest = hashlib.sha256(f"{self.name}|{self.split}".encode())
        table = self.metadata()
        for sample_id, location in zip(table["sample_id"], table["location"]):
            digest.update(f"{sample_id}\t{location}\n".encode())
        return digest.hexdigest()[:16]

    def subset(self, indices: Sequence[int]) -> "SubsetSource":
        """The samples at ``indices`` (in that order) as a source of their own."""
        return SubsetSource(self, indices)

    def describe(self) -> str:
        """One line: kind, number of images, split and root."""
        split = f", split {self.split!r}" if self.split else ""
        where = f", {self.root}" if self.root else ""
        return f"{self.name}: {len(self):,} images{split}{where}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


class SubsetSource(ImageSource):
    """A fixed selection of another source's samples, in the given order.

    Parameters
    ----------
    parent : ImageSource
    indices : sequence of int
        Positions in ``parent`` (each in ``[0, len(parent))``, no repeats).
    """

    def __init__(self, parent: ImageSource, indices: Sequence[int]):
        self.parent = parent
        self.indices = [int(i) for i in indices]
        if any(not 0 <= i < len(parent) for i in self.indices):
            raise IndexError(f"subset indices must lie in [0, {len(parent)})")
        if len(set(self.indices)) != len(self.indices):
            raise ValueError("subset indices must not repeat (sample ids must stay unique)")
        # getattr: any object with the source interface can be subset, not only ImageSource subclasses
        self.name = getattr(parent, "name", type(parent).__name__)
        self.root, self.split = getattr(parent, "root", None), getattr(parent, "split", None)
        ids = parent.sample_ids
        self._ids = [ids[i] for i in self.indices]

    @property
    def sample_ids(self) -> list[str]:
        return self._ids

    def load(self, index: int, draft=None) -> Image.Image:
        return self.parent.load(self.indices[index], draft=draft)

    def metadata(self) -> pd.DataFrame:
        return self.parent.metadata().iloc[self.indices].reset_index(drop=True)

    def fingerprint(self) -> str:
        digest = hashlib.sha256(self.parent.fingerprint().encode())
        digest.update(",".join(map(str, self.indices)).encode())
        return digest.hexdigest()[:16]


class _FileListSource(ImageSource):
    """A source whose samples are image files (folder, KITTI, Waymo extracted, BDD100K)."""

    _ids: list[str]
    _files: list[Path]

    @property
    def sample_ids(self) -> list[str]:
        return self._ids

    @property
    def sample_files(self) -> list[Path]:
        """The file of each sample, as the operating system names it (``metadata()["location"]``
        is the same path as UTF-8 text, with ``\\xNN`` for bytes that are not UTF-8)."""
        return self._files

    def load(self, index: int, draft=None) -> Image.Image:
        return _open_image_file(self._files[index], draft)

    def _keep(self, max_images: int | None, seed: int) -> None:
        keep = _select(len(self._files), max_images, seed)
        self._ids = [self._ids[i] for i in keep]
        self._files = [self._files[i] for i in keep]

    def _base_table(self) -> pd.DataFrame:
        return pd.DataFrame({"sample_id": list(self._ids), "location": [_utf8_text(str(f)) for f in self._files]})

    def metadata(self) -> pd.DataFrame:
        return self._base_table()

    def fingerprint(self) -> str:
        """Hash of ids, paths, sizes and modification times (a changed file changes it)."""
        digest = hashlib.sha256(f"{self.name}|{self.split}|{self.root}".encode())
        digest.update("\n".join(self._ids).encode())
        _stat_digest(digest, self._files)
        return digest.hexdigest()[:16]


# ----------------------------------------------------------------------------------------------
# Fashion-MNIST

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
            "Fix: `sudo apt-get install dataset-fashion-mnist` (Debian), or pass root= a folder with those files.")

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


# ----------------------------------------------------------------------------------------------
# any folder


class FolderSource(_FileListSource):
    """Every image under a folder, recursively; sample id: the path relative to ``root``.

    Parameters
    ----------
    root : path
    extensions : sequence of str, default=IMAGE_EXTENSIONS
        File endings that count as images (case-insensitive).
    max_images : int, optional
        Seeded subsample of this many images (in path order).
    seed : int, default=0
    split : str, optional
        A label kept for the record (a folder has no splits).

    Notes
    -----
    Hidden files and folders (name starting with ``.``, e.g. ``.ipynb_checkpoints``) are
    skipped. Symlinked folders are followed; a folder reached twice (symlink loop, second link)
    is listed once and the repeat goes to ``skipped`` with a warning, as do pipes, sockets and
    devices with image names; an unreadable folder raises :class:`DatasetLayoutError`. Broken
    links with image names stay in the list, so the embedding reports them as failures.
    Metadata: ``folder`` (the parent folder relative to ``root``, often the class).

    Attributes
    ----------
    skipped : list of (str, str)
        Entries left out and why.
    """

    name = "folder"

    def __init__(self, root, extensions: Sequence[str] = IMAGE_EXTENSIONS, max_images: int | None = None,
                 seed: int = 0, split: str | None = None):
        layout = "  <root>/**/*.jpg|png|... (any depth)"
        if root is not None and not Path(root).expanduser().exists():
            raise DatasetLayoutError(f"image folder {root} does not exist. Expected layout:\n{layout}")
        self.root, self.split = _require_root(root, "folder", layout), split
        endings = tuple(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)
        files, self.skipped = _walk_images(self.root, endings)
        if self.skipped:
            warnings.warn(f"{len(self.skipped)} entries under {self.root} were left out: "
                          + "; ".join(f"{path} ({why})" for path, why in self.skipped[:3])
                          + (" ..." if len(self.skipped) > 3 else "") + " (the full list: source.skipped)",
                          stacklevel=2)
        if not files:
            raise DatasetLayoutError(f"no images ({', '.join(endings)}) found under {self.root}")
        self._files = files
        # The id is the relative path as UTF-8 text: a name that is not UTF-8 gets \xNN escapes
        # (the same id in the bank, the official export and the embedding cache), with a warning.
        names = [p.relative_to(self.root).as_posix() for p in files]
        self._ids = [_utf8_text(name) for name in names]
        escaped = [(name, sid) for name, sid in zip(names, self._ids) if name != sid]
        if escaped:
            warnings.warn(f"{len(escaped)} file name(s) under {self.root} are not valid UTF-8, e.g. "
                          f"{escaped[0][1]!r}; their ids use \\xNN escapes. Rename them to UTF-8 "
                          f"(e.g. convmv -f latin1 -t utf8 -r --notest {self.root}) for readable ids.",
                          stacklevel=2)
        _require_unique(self._ids, f"images in {self.root}")
        self._keep(max_images, seed)

    def metadata(self) -> pd.DataFrame:
        table = self._base_table()
        table["folder"] = [_utf8_text(p.parent.relative_to(self.root).as_posix()) for p in self._files]
        return table


def _walk_images(root: Path, endings: tuple[str, ...]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files under ``root`` (sorted) and the entries left out, each with the reason.

    Symlinked folders are followed; a folder reached twice (a symlink loop, or a second link to
    the same folder) is listed once and the repeat is reported. A folder that cannot be read
    raises (its images would otherwise be missing without a word). Names with an image ending
    that are folders are walked into like any folder; broken links are kept (decoding them fails
    and the embedding lists them as failures); pipes, sockets and devices are left out (reading
    a pipe would block). Hidden entries (``.name``) are skipped on purpose.
    """
    files: list[Path] = []
    skipped: list[tuple[str, str]] = []
    seen = {os.path.realpath(root): root}
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            raise DatasetLayoutError(
                f"cannot read folder {folder} under {root} ({exc.strerror or exc}): its images would be missing. "
                "Make it readable (chmod u+rx) or move it out of the root") from None
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir()  # follows symlinks
            except OSError:
                is_dir = False
            if is_dir:
                real = os.path.realpath(path)
                if real in seen:
                    why = "symlink loop" if any(real == os.path.realpath(p) for p in [folder, *path.parents]) \
                        else f"same folder as {seen[real]}"
                    skipped.append((str(path), why))
                    continue
                seen[real] = path
                pending.append(path)
            elif path.suffix.lower() in endings:
                try:
                    regular = entry.is_file() or (entry.is_symlink() and not path.exists())  # broken link: a failure later
                except OSError:
                    regular = True
                if regular:
                    files.append(path)
                else:
                    skipped.append((str(path), "not a regular file (pipe, socket or device)"))
    return sorted(files), skipped


def _check_split_entries(entries: list[str], path: Path) -> list[str]:
    """Split-list entries must be plain ids: no folder parts, no ``..``, not absolute."""
    for number, entry in enumerate(entries, start=1):
        if "/" in entry or "\\" in entry or entry in (".", "..") or os.path.isabs(entry):
            raise DatasetLayoutError(
                f"{path}, line {number}: {entry!r} is not an image id: a split list holds plain ids such as "
                "'000123' (no folders, '..' or absolute paths, which would read files outside the dataset root). "
                "Fix that line")
    return entries


def _read_split_list(candidates: Sequence[Path], layout: str) -> list[str]:
    for path in candidates:
        if path.is_file():
            return _check_split_entries([line.strip() for line in path.read_text().splitlines() if line.strip()], path)
    raise DatasetLayoutError(
        f"split list not found; looked for {' and '.join(map(str, candidates))}. Expected layout:\n{layout}")


# ----------------------------------------------------------------------------------------------
# KITTI object

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

    def __init__(self, root, split: str | None = "train", max_images: int | None = None, seed: int = 0):
        self.root, self.split = _require_root(root, "kitti", _KITTI_LAYOUT), split
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
    root = _require_root(root, "kitti", _KITTI_LAYOUT)
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


# ----------------------------------------------------------------------------------------------
# nuScenes

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


class NuScenesSource(ImageSource):
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

    def __init__(self, root, version: str | None = None, split: str | None = "train",
                 max_images: int | None = None, seed: int = 0, channel: str = "CAM_FRONT"):
        self.root = _require_root(root, "nuscenes", _NUSCENES_LAYOUT)
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
        keep = _select(len(rows), max_images, seed)
        table = pd.DataFrame([rows[i] for i in keep], columns=[
            "sample_id", "location", "scene_name", "scene_description", "timestamp", "sample_data_token"])
        _require_unique(table["sample_id"].tolist(), f"nuScenes {channel}")
        if not any(os.path.isfile(p) for p in table["location"]):
            raise DatasetLayoutError(f"the tables list {len(table)} {channel} images but none is under {self.root} "
                                     f"(e.g. {table['location'].iat[0]}): download the key-frame blobs. "
                                     f"Expected layout:\n{_NUSCENES_LAYOUT}")
        description = table["scene_description"].str.lower()
        table["night"] = description.str.contains("night")
        table["rain"] = description.str.contains("rain")
        self._table = table
        self._ids = table["sample_id"].tolist()
        self._files = table["location"].tolist()

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

    @property
    def sample_ids(self) -> list[str]:
        return self._ids

    def load(self, index: int, draft=None) -> Image.Image:
        return _open_image_file(Path(self._files[index]), draft)

    def metadata(self) -> pd.DataFrame:
        return self._table.copy()

    def fingerprint(self) -> str:
        digest = hashlib.sha256(f"{self.name}|{self.version}|{self.split}|{self.channel}".encode())
        digest.update("\n".join(self._ids).encode())
        _stat_digest(digest, self._files)
        return digest.hexdigest()[:16]


# ----------------------------------------------------------------------------------------------
# Waymo Open Dataset


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

    def __init__(self, root, split: str | None = "training", max_images: int | None = None, seed: int = 0):
        layout = ("  <root>/<split>/image_0/*.jpg   (split: training, validation; image_0 = FRONT camera,\n"
                  "                                  extracted from the TFRecords or the v2 Parquet files)")
        self.root, self.split = _require_root(root, "waymo", layout), split
        folder = self.root / (split or "training") / "image_0"
        files = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if not files:
            raise DatasetLayoutError(f"no images in {folder}. Expected layout:\n{layout}")
        self._files, self._ids = files, [f.stem for f in files]
        _require_unique(self._ids, f"Waymo images in {folder}")
        self._keep(max_images, seed)


WAYMO_V2_KEYS = ("key.segment_context_name", "key.frame_timestamp_micros", "key.camera_name")
WAYMO_V2_IMAGE = "[CameraImageComponent].image"
WAYMO_V2_STATS = {"[StatsComponent].time_of_day": "time_of_day", "[StatsComponent].weather": "weather",
                  "[StatsComponent].location": "city"}
WAYMO_CAMERAS = {"FRONT": 1, "FRONT_LEFT": 2, "FRONT_RIGHT": 3, "SIDE_LEFT": 4, "SIDE_RIGHT": 5}
WAYMO_FRONT_CAMERA = WAYMO_CAMERAS["FRONT"]
_WAYMO_V2_LAYOUT = """  <root>/<split>/camera_image/<segment context name>.parquet   (split: training, validation)
  <root>/<split>/stats/<segment context name>.parquet          (optional: time of day, weather, city)
  columns: key.segment_context_name, key.frame_timestamp_micros, key.camera_name, [CameraImageComponent].image"""


class WaymoParquetSource(ImageSource):
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

    def __init__(self, root, split: str | None = "training", max_images: int | None = None, seed: int = 0,
                 camera: int | str = WAYMO_FRONT_CAMERA):
        import pyarrow.parquet as pq

        self.root, self.split = _require_root(root, "waymo-parquet", _WAYMO_V2_LAYOUT), split
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
        table = table.iloc[_select(len(table), max_images, seed)].reset_index(drop=True)
        table.insert(0, "sample_id", [f"{segment}_{stamp}_{self.camera}"
                                      for segment, stamp in zip(table["segment"], table["timestamp_micros"])])
        table.insert(1, "location", [f"{files[f]}#rg{g}:{o}" for f, g, o in
                                     zip(table["_file"], table["_group"], table["_offset"])])
        table["camera"] = self.camera
        _require_unique(table["sample_id"].tolist(), f"Waymo v2 camera {self.camera}")
        self._files = [str(f) for f in files]
        self._ids = table["sample_id"].tolist()
        self._where = table[["_file", "_group", "_offset"]].to_numpy(dtype=np.int64)
        self._table = self._join_stats(table.drop(columns=["_file", "_group", "_offset"]), split_dir / "stats")
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

    @property
    def sample_ids(self) -> list[str]:
        return self._ids

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

    def metadata(self) -> pd.DataFrame:
        return self._table.copy()

    def fingerprint(self) -> str:
        digest = hashlib.sha256(f"{self.name}|{self.split}|{self.camera}".encode())
        digest.update("\n".join(self._ids).encode())
        _stat_digest(digest, self._files)
        return digest.hexdigest()[:16]


# ----------------------------------------------------------------------------------------------
# BDD100K

BDD100K_ATTRIBUTES = ("weather", "scene", "timeofday")
_BDD100K_LAYOUT = """  <root>/images/100k/{train,val,test}/*.jpg
  <root>/labels/det_20/det_<split>.json                  (optional; or labels/bdd100k_labels_images_<split>.json,
                                                          or one JSON per image in labels/100k/<split>/)"""


class BDD100KSource(_FileListSource):
    """BDD100K 100k images (``<root>/images/100k/<split>/*.jpg``), with weather / scene / time of day.

    Parameters
    ----------
    root : path
    split : {'train', 'val', 'test'}, default='train'
    labels_file : path or False, optional
        A label JSON list (``[{"name": "<file>.jpg", "attributes": {...}}, ...]``) or a folder of
        per-image JSON files. Default: ``labels/det_20/det_<split>.json``, with images it lacks
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

    def __init__(self, root, split: str = "train", labels_file=None, max_images: int | None = None, seed: int = 0):
        self.root, self.split = _require_root(root, "bdd100k", _BDD100K_LAYOUT), split
        folder = self.root / "images" / "100k" / split
        files = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if not files:
            raise DatasetLayoutError(f"no images in {folder}. Expected layout:\n{_BDD100K_LAYOUT}")
        self._files, self._ids = files, [f.stem for f in files]
        _require_unique(self._ids, f"BDD100K images in {folder}")
        self._keep(max_images, seed)
        candidates = [self.root / "labels" / "det_20" / f"det_{split}.json",
                      self.root / "labels" / f"bdd100k_labels_images_{split}.json",
                      self.root / "labels" / "100k" / split]
        if labels_file is False:  # no labels, on purpose
            self.labels_file, self.labels_files = None, []
        elif labels_file is not None:
            self.labels_file = Path(labels_file).expanduser()
            if not self.labels_file.exists():
                raise DatasetLayoutError(
                    f"labels file {self.labels_file} not found. Expected layout:\n{_BDD100K_LAYOUT}")
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


# ----------------------------------------------------------------------------------------------
# factory

SOURCE_KINDS = {
    "fashion-mnist": FashionMNISTSource,
    "folder": FolderSource,
    "kitti": KittiSource,
    "nuscenes": NuScenesSource,
    "waymo": WaymoFolderSource,
    "waymo-parquet": WaymoParquetSource,
    "bdd100k": BDD100KSource,
}

_UNSET = object()


def open_source(kind: str, root=None, split=_UNSET, **options) -> ImageSource:
    """Open a source by kind (see :data:`SOURCE_KINDS`), root folder and split.

    Parameters
    ----------
    kind : str
        ``fashion-mnist``, ``folder``, ``kitti``, ``nuscenes``, ``waymo``, ``waymo-parquet``, ``bdd100k``.
    root : path, optional
        The dataset folder (Fashion-MNIST defaults to Debian's copy).
    split : str or None, optional
        Left out: the kind's default (``'train'``, or ``'training'`` for Waymo). ``None``: every
        sample where the kind allows it (KITTI, nuScenes, a folder).
    **options
        The kind's own parameters, e.g. ``max_images``, ``seed``, ``version`` (nuScenes),
        ``camera`` (Waymo v2), ``labels_file`` (BDD100K).
    """
    try:
        cls = SOURCE_KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown source kind {kind!r}; choose one of {sorted(SOURCE_KINDS)}") from None
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(f"the {kind} source has no option(s) {unknown}; it takes {accepted}")
    if split is not _UNSET:
        options["split"] = split
    if root is not None or inspect.signature(cls.__init__).parameters["root"].default is inspect.Parameter.empty:
        options["root"] = root  # a missing root of a kind that needs one fails with its expected layout
    return cls(**options)
