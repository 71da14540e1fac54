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
import io
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
    "KittiSource",
    "kitti_class_counts",
    "NuScenesSource",
    "WaymoFolderSource",
    "WaymoParquetSource",
    "BDD100KSource",
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


class _FileListSource(ImageSource):
    """A source whose samples are image files (shared by KITTI, Waymo-extracted and BDD100K)."""

    _ids: list[str]
    _files: list[Path]

    @property
    def sample_ids(self) -> list[str]:
        return self._ids

    def load(self, index: int, draft=None) -> Image.Image:
        return _open_image_file(self._files[index], draft)

    def _subsample(self, max_images: int | None, seed: int) -> None:
        keep = _select(len(self._files), max_images, seed)
        self._ids = [self._ids[i] for i in keep]
        self._files = [self._files[i] for i in keep]


class FolderSource(_FileListSource):
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



def _read_split_list(candidates: Sequence[Path], layout: str) -> list[str]:
    for path in candidates:
        if path.is_file():
            return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    raise DatasetLayoutError(f"split list not found; looked for {', '.join(map(str, candidates))}. Expected layout:\n{layout}")


def _files_source_metadata(ids: Sequence[str], files: Sequence[Path], **columns) -> pd.DataFrame:
    return pd.DataFrame({"sample_id": list(ids), "location": [str(f) for f in files], **columns})


KITTI_CLASSES = ("Car", "Van", "Truck", "Pedestrian", "Person_sitting", "Cyclist", "Tram", "Misc")
_KITTI_LAYOUT = """  <root>/training/image_2/<6-digit id>.png
  <root>/training/label_2/<6-digit id>.txt       (object labels, optional)
  <root>/testing/image_2/<6-digit id>.png        (test split)
  <root>/ImageSets/{train,val,trainval,test}.txt  or  <root>/mv3d_kitti_splits/<split>.txt"""


def _kitti_objects(label_file: Path) -> list[str]:
    """Object types of one label_2 file (``DontCare`` excluded)."""
    types = []
    for line in label_file.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 15 and fields[0] != "DontCare":
            types.append(fields[0])
    return types


class KittiSource(_FileListSource):
    """KITTI object detection, left colour camera (``image_2``).

    Sample ids are the 6-digit image ids the DD3D fork keys its bank by (``'000123'``).
    ``split`` is ``None`` (every training image), or a name looked up in ``ImageSets/`` or
    ``mv3d_kitti_splits/`` (``'test'`` reads ``testing/image_2``). Metadata holds the number
    of objects per class (``n_Car``, ...) and their presence (``has_Car``, ...) from ``label_2``.
    """

    name = "kitti"

    def __init__(self, root, split: str | None = "train", max_images: int | None = None, seed: int = 0):
        self.root, self.split = Path(root), split
        if not (self.root / "training").is_dir() and not (self.root / "testing").is_dir():
            raise DatasetLayoutError(f"KITTI root {self.root} has no training/ folder. Expected layout:\n{_KITTI_LAYOUT}")
        folder = self.root / ("testing" if split == "test" else "training")
        if split is None:
            ids = sorted(p.stem for p in (folder / "image_2").glob("*.png"))
        else:
            ids = _read_split_list([self.root / "ImageSets" / f"{split}.txt",
                                    self.root / "mv3d_kitti_splits" / f"{split}.txt"], _KITTI_LAYOUT)
        ids = [f"{int(i):06d}" if i.isdigit() else i for i in ids]
        self._ids, self._files = ids, [folder / "image_2" / f"{i}.png" for i in ids]
        self._label_dir = folder / "label_2"
        self._subsample(max_images, seed)

    def metadata(self) -> pd.DataFrame:
        counts = [pd.Series(_kitti_objects(self._label_dir / f"{i}.txt")).value_counts()
                  if (self._label_dir / f"{i}.txt").is_file() else pd.Series(dtype=int) for i in self._ids]
        table = _files_source_metadata(self._ids, self._files)
        for cls in KITTI_CLASSES:
            n = np.array([int(c.get(cls, 0)) for c in counts])
            table[f"n_{cls}"] = n
            table[f"has_{cls}"] = n > 0
        return table


def kitti_class_counts(root, split: str | None = None) -> pd.Series:
    """Object instances per class in ``training/label_2`` (``DontCare`` excluded): Table 1 of the paper."""
    source = KittiSource(root, split=split)
    counts = pd.Series([t for i in source.sample_ids for t in _kitti_objects(source._label_dir / f"{i}.txt")
                        if (source._label_dir / f"{i}.txt").is_file()], dtype=object).value_counts()
    counts.index.name, counts.name = "class", "instances"
    return counts


_NUSCENES_LAYOUT = """  <root>/<version>/{sample,sample_data,calibrated_sensor,sensor,scene}.json   (version: v1.0-trainval, v1.0-mini)
  <root>/samples/CAM_FRONT/*.jpg"""


def _nuscenes_split_scenes(version: str, split: str) -> set[str]:
    try:
        from nuscenes.utils.splits import create_splits_scenes
    except ImportError:
        raise DatasetLayoutError(
            f"nuScenes split {split!r} needs the official scene lists from nuscenes-devkit: "
            "`pip install nuscenes-devkit`, or pass split=None for every front-camera key frame") from None
    name = f"mini_{split}" if version.endswith("mini") and split in ("train", "val") else split
    return set(create_splits_scenes()[name])


class NuScenesSource(ImageSource):
    """nuScenes front-camera (``CAM_FRONT``) key frames, read from the JSON tables (no devkit needed).

    Sample ids are sample tokens, as the BEVFormer fork keys its bank. ``split`` is ``None``
    (every scene) or a devkit split name (``'train'``, ``'val'``; mini versions map to
    ``mini_train`` / ``mini_val``), which needs ``nuscenes-devkit``'s scene lists.
    """

    name = "nuscenes"

    def __init__(self, root, version: str = "v1.0-trainval", split: str | None = "train",
                 max_images: int | None = None, seed: int = 0, channel: str = "CAM_FRONT"):
        import json

        self.root, self.version, self.split = Path(root), version, split
        tables = {}
        for table in ("sample", "sample_data", "calibrated_sensor", "sensor", "scene"):
            path = self.root / version / f"{table}.json"
            if not path.is_file():
                raise DatasetLayoutError(f"nuScenes table {path} not found. Expected layout:\n{_NUSCENES_LAYOUT}")
            tables[table] = json.loads(path.read_text())
        sensors = {s["token"] for s in tables["sensor"] if s.get("channel") == channel}
        calibrated = {c["token"] for c in tables["calibrated_sensor"] if c["sensor_token"] in sensors}
        samples = {s["token"]: s for s in tables["sample"]}
        scenes = {s["token"]: s for s in tables["scene"]}
        wanted = _nuscenes_split_scenes(version, split) if split is not None else None
        rows = []
        for record in tables["sample_data"]:
            if not record.get("is_key_frame") or record["calibrated_sensor_token"] not in calibrated:
                continue
            sample = samples[record["sample_token"]]
            scene = scenes[sample["scene_token"]]
            if wanted is not None and scene["name"] not in wanted:
                continue
            rows.append((record["sample_token"], str(self.root / record["filename"]), scene["name"],
                         scene.get("description", ""), int(sample["timestamp"])))
        rows.sort(key=lambda r: (r[2], r[4]))  # by scene, then time
        keep = _select(len(rows), max_images, seed)
        self._table = pd.DataFrame([rows[i] for i in keep],
                                   columns=["sample_id", "location", "scene_name", "scene_description", "timestamp"])
        description = self._table["scene_description"].str.lower()
        self._table["night"] = description.str.contains("night")
        self._table["rain"] = description.str.contains("rain")

    @property
    def sample_ids(self) -> list[str]:
        return self._table["sample_id"].tolist()

    def load(self, index: int, draft=None) -> Image.Image:
        return _open_image_file(Path(self._table["location"].iat[index]), draft)

    def metadata(self) -> pd.DataFrame:
        return self._table.copy()


class WaymoFolderSource(_FileListSource):
    """Waymo front-camera images already extracted to files (the official analysis' KITTI-style
    conversion: ``<root>/<split folder>/image_0/*.jpg``; sample id: the file stem)."""

    name = "waymo"

    def __init__(self, root, split: str | None = "training", max_images: int | None = None, seed: int = 0):
        self.root, self.split = Path(root), split
        folder = self.root / (split or "training") / "image_0"
        files = sorted(folder.glob("*.jpg")) + sorted(folder.glob("*.png"))
        if not files:
            raise DatasetLayoutError(f"no images in {folder}. Expected layout:\n  <root>/training/image_0/*.jpg "
                                     "(front camera, extracted from the TFRecords or the v2 Parquet files)")
        self._files, self._ids = files, [f.stem for f in files]
        self._subsample(max_images, seed)

    def metadata(self) -> pd.DataFrame:
        return _files_source_metadata(self._ids, self._files)


WAYMO_V2_KEYS = ("key.segment_context_name", "key.frame_timestamp_micros", "key.camera_name")
WAYMO_V2_IMAGE = "[CameraImageComponent].image"
WAYMO_FRONT_CAMERA = 1  # CameraName.FRONT in the Waymo protos


class WaymoParquetSource(ImageSource):
    """Waymo Open Dataset v2 Parquet release, front camera only, JPEG bytes decoded on load.

    Reads ``<root>/<split>/camera_image/*.parquet`` (or ``<root>/camera_image/`` when ``split`` is
    None). Only the key columns are read up front; a sample's JPEG bytes are read from its row
    group when it is loaded, so 200,000 frames never sit in memory. Sample id:
    ``<segment context name>_<timestamp micros>_<camera>``.
    """

    name = "waymo-parquet"

    def __init__(self, root, split: str | None = "training", max_images: int | None = None, seed: int = 0,
                 camera: int = WAYMO_FRONT_CAMERA):
        import pyarrow.parquet as pq

        self.root, self.split, self.camera = Path(root), split, camera
        folder = self.root / split / "camera_image" if split else self.root / "camera_image"
        files = sorted(folder.glob("*.parquet"))
        if not files:
            raise DatasetLayoutError(f"no Parquet files in {folder}. Expected layout:\n"
                                     "  <root>/<split>/camera_image/<segment>.parquet  (Waymo Open Dataset v2)")
        rows = []
        for path in files:
            parquet = pq.ParquetFile(path)
            missing = [c for c in (*WAYMO_V2_KEYS, WAYMO_V2_IMAGE) if c not in parquet.schema_arrow.names]
            if missing:
                raise DatasetLayoutError(f"{path} lacks the v2 camera_image column(s) {missing}")
            for group in range(parquet.num_row_groups):
                keys = parquet.read_row_group(group, columns=list(WAYMO_V2_KEYS)).to_pydict()
                for offset, (segment, stamp, cam) in enumerate(zip(*(keys[k] for k in WAYMO_V2_KEYS))):
                    if cam == camera:
                        rows.append((f"{segment}_{stamp}_{cam}", f"{path}#rg{group}:{offset}", segment, int(stamp),
                                     str(path), group, offset))
        rows.sort(key=lambda r: (r[2], r[3]))
        keep = _select(len(rows), max_images, seed)
        self._table = pd.DataFrame([rows[i] for i in keep], columns=["sample_id", "location", "segment",
                                                                     "timestamp_micros", "_file", "_group", "_offset"])
        self._cache: tuple | None = None  # last row group read: frames are loaded in order

    @property
    def sample_ids(self) -> list[str]:
        return self._table["sample_id"].tolist()

    def load(self, index: int, draft=None) -> Image.Image:
        import pyarrow.parquet as pq

        row = self._table.iloc[index]
        key = (row["_file"], int(row["_group"]))
        try:
            if self._cache is None or self._cache[0] != key:
                column = pq.ParquetFile(row["_file"]).read_row_group(key[1], columns=[WAYMO_V2_IMAGE]).column(0)
                self._cache = (key, column)
            data = self._cache[1][int(row["_offset"])].as_py()
            with Image.open(io.BytesIO(data)) as image:
                if draft is not None:
                    image.draft("RGB", draft)
                image.load()
                return to_rgb(image)
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageLoadError(f"cannot decode {row['location']}: {type(exc).__name__}: {exc}") from exc

    def __getstate__(self):
        return {**self.__dict__, "_cache": None}  # never ship cached JPEG bytes to workers

    def metadata(self) -> pd.DataFrame:
        return self._table[["sample_id", "location", "segment", "timestamp_micros"]].copy()


BDD100K_ATTRIBUTES = ("weather", "scene", "timeofday")


class BDD100KSource(_FileListSource):
    """BDD100K 100k images (``<root>/images/100k/<split>/*.jpg``), with weather / scene / time of day.

    Attributes come from the label JSON when present: ``labels_file`` or, by default, the first of
    ``labels/det_20/det_<split>.json`` and ``labels/bdd100k_labels_images_<split>.json`` (both are a
    list of ``{"name": "<file>.jpg", "attributes": {"weather", "scene", "timeofday"}, ...}``).
    Images without labels get ``None``.
    """

    name = "bdd100k"

    def __init__(self, root, split: str = "train", labels_file=None, max_images: int | None = None, seed: int = 0):
        import json

        self.root, self.split = Path(root), split
        folder = self.root / "images" / "100k" / split
        files = sorted(folder.glob("*.jpg"))
        if not files:
            raise DatasetLayoutError(f"no images in {folder}. Expected layout:\n  <root>/images/100k/{{train,val,test}}/*.jpg\n"
                                     "  <root>/labels/det_20/det_<split>.json  (optional: weather, scene, time of day)")
        self._files, self._ids = files, [f.stem for f in files]
        self._subsample(max_images, seed)
        candidates = [Path(labels_file)] if labels_file else [
            self.root / "labels" / "det_20" / f"det_{split}.json",
            self.root / "labels" / f"bdd100k_labels_images_{split}.json"]
        self.labels_file = next((c for c in candidates if c.is_file()), None)
        if labels_file and self.labels_file is None:
            raise DatasetLayoutError(f"labels file {labels_file} not found")
        self._attributes: dict[str, dict] = {}
        if self.labels_file is not None:
            for entry in json.loads(self.labels_file.read_text()):
                self._attributes[Path(entry["name"]).stem] = entry.get("attributes", {}) or {}

    def metadata(self) -> pd.DataFrame:
        table = _files_source_metadata(self._ids, self._files)
        for attribute in BDD100K_ATTRIBUTES:
            table[attribute] = [self._attributes.get(i, {}).get(attribute) for i in self._ids]
        return table


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

    ``split`` left out means the kind's default (``'train'`` for most); ``None`` means every
    sample where the kind supports it (KITTI, nuScenes).
    """
    try:
        cls = SOURCE_KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown source kind {kind!r}; choose one of {sorted(SOURCE_KINDS)}") from None
    if split is not _UNSET:
        options["split"] = split
    if root is not None:
        options["root"] = root
    return cls(**options)
