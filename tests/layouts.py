"""Tiny dataset trees in each dataset's real layout and schema, for loader and notebook tests.

Every ``make_*`` builder writes into ``root`` (created when missing) and returns ``root`` as a
``Path``. Images are small but real files (PNG/JPEG written by PIL, JPEG bytes in Parquet) in a
few appearance groups: three common colour groups with their own texture, and a rare fourth
group every 7th image (:func:`appearance_group`), so a clustering of their embeddings has
structure and a rare group to find. Everything is deterministic given ``seed``.

The helpers that say what a tree contains (:func:`kitti_objects`, :func:`nuscenes_sample_token`,
:func:`waymo_segment_name`, :func:`bdd100k_attributes`, ...) let tests compute the expected
answer without going through the code under test.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

__all__ = [
    "GROUP_COLOURS", "RARE_EVERY", "appearance_group", "appearance_image",
    "KITTI_LABEL_LINES", "kitti_objects", "kitti_split_ids", "make_kitti_tree",
    "NUSCENES_SCENES", "NUSCENES_DESCRIPTIONS", "nuscenes_token", "nuscenes_sample_token", "make_nuscenes_tree",
    "make_waymo_folder_tree", "waymo_segment_name", "waymo_timestamp", "WAYMO_STATS", "make_waymo_parquet_tree",
    "bdd100k_name", "bdd100k_attributes", "make_bdd100k_tree",
    "make_folder_tree", "write_mode_variants", "make_fashion_mnist_files",
    "SourceLayout", "SOURCE_LAYOUTS",
]

GROUP_COLOURS = [(200, 40, 40), (40, 160, 60), (40, 60, 200), (230, 200, 40)]
RARE_EVERY = 7


def appearance_group(i: int) -> int:
    """Group of image ``i``: 3 (rare) for every 7th image, else ``i % 3``."""
    return 3 if i % RARE_EVERY == RARE_EVERY - 1 else i % 3


def appearance_image(i: int, size: tuple[int, int], seed: int = 0) -> Image.Image:
    """RGB image ``i`` of ``size`` (w, h): its group's colour and texture plus seeded noise."""
    group = appearance_group(i)
    width, height = size
    rng = np.random.default_rng([seed, i])
    pixels = np.empty((height, width, 3), dtype=float)
    pixels[:] = GROUP_COLOURS[group]
    if group == 1:  # vertical stripes
        pixels[:, (np.arange(width) // 4) % 2 == 1] *= 0.55
    elif group == 2:  # top-to-bottom gradient
        pixels *= np.linspace(0.45, 1.0, height)[:, None, None]
    elif group == 3:  # checkerboard
        yy, xx = np.mgrid[0:height, 0:width]
        pixels[((yy // 6 + xx // 6) % 2) == 1] = (250, 250, 250)
    pixels += rng.normal(0, 12, size=pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


# ----------------------------------------------------------------------------------------------
# KITTI object: training/image_2/*.png, training/label_2/*.txt, ImageSets/*.txt

# One real-format line per class (type truncated occluded alpha bbox(4) dimensions(3) location(3) rotation_y).
KITTI_LABEL_LINES = {
    "Car": "Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59",
    "Van": "Van 0.00 0 -1.55 564.62 174.59 616.43 224.74 2.18 1.90 4.52 -0.69 1.69 25.01 -1.58",
    "Truck": "Truck 0.00 2 1.32 1.00 148.70 145.30 293.20 3.27 2.56 8.49 -15.09 2.23 17.37 0.61",
    "Pedestrian": "Pedestrian 0.00 0 -0.20 712.40 143.00 810.73 307.92 1.89 0.48 1.20 1.84 1.47 8.41 0.01",
    "Cyclist": "Cyclist 0.00 0 1.89 330.60 176.09 355.61 213.60 1.72 0.50 1.95 -12.63 1.88 34.09 1.54",
    "DontCare": "DontCare -1 -1 -10 503.89 169.71 590.61 190.13 -1 -1 -1 -1000 -1000 -1000 -10",
}


def kitti_objects(i: int) -> list[str]:
    """Object types written to ``label_2`` of training image ``i`` (``DontCare`` not included)."""
    objects = ["Car"] * (1 + i % 2)
    if i % 3 == 0:
        objects.append("Pedestrian")
    if i % 4 == 1:
        objects.append("Van")
    if appearance_group(i) == 3:  # the rare look comes with the rare class
        objects.append("Cyclist")
    if i % 5 == 4:
        objects.append("Truck")
    return objects


def kitti_split_ids(n_images: int) -> dict[str, list[str]]:
    """The split lists :func:`make_kitti_tree` writes: ``val`` is every 3rd id, ``train`` the rest."""
    ids = [f"{i:06d}" for i in range(n_images)]
    return {"train": [s for i, s in enumerate(ids) if i % 3 != 2], "val": ids[2::3], "trainval": ids}


def make_kitti_tree(root, n_images: int = 12, seed: int = 0, split_folder: str = "ImageSets", n_test: int = 2,
                    image_size: tuple[int, int] = (124, 38)) -> Path:
    """KITTI object: ``training/{image_2,label_2}``, ``testing/image_2`` and split lists.

    ``split_folder`` is ``'ImageSets'`` (the usual) or ``'mv3d_kitti_splits'`` (the DD3D fork's).
    Image ``i`` has id ``f'{i:06d}'`` and the objects :func:`kitti_objects(i) <kitti_objects>` plus
    one ``DontCare``; ``image_size`` is a tenth of KITTI's 1242x375 by default.
    """
    root = Path(root)
    for sub in ("training/image_2", "training/label_2", "testing/image_2", split_folder):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n_images):
        sample_id = f"{i:06d}"
        appearance_image(i, image_size, seed).save(root / "training" / "image_2" / f"{sample_id}.png")
        lines = [KITTI_LABEL_LINES[o] for o in kitti_objects(i) + ["DontCare"]]
        (root / "training" / "label_2" / f"{sample_id}.txt").write_text("\n".join(lines) + "\n")
    test_ids = [f"{i:06d}" for i in range(n_test)]
    for i, sample_id in enumerate(test_ids):
        appearance_image(100 + i, image_size, seed).save(root / "testing" / "image_2" / f"{sample_id}.png")
    for split, ids in {**kitti_split_ids(n_images), "test": test_ids}.items():
        (root / split_folder / f"{split}.txt").write_text("".join(f"{s}\n" for s in ids))
    return root


# ----------------------------------------------------------------------------------------------
# nuScenes: <version>/{sample,sample_data,calibrated_sensor,sensor,scene}.json, samples/, sweeps/

# Real scene names: 0061 and 0553 are in mini_train, 0103 and 0916 in mini_val.
NUSCENES_SCENES = ("scene-0061", "scene-0103", "scene-0553", "scene-0916")
NUSCENES_DESCRIPTIONS = {
    "scene-0061": "Parked truck, construction, intersection, turn left, following a van",
    "scene-0103": "Night, big street, bus stop, high speed",
    "scene-0553": "Wait at intersection, bicycle, large truck, peds crossing crosswalk",
    "scene-0916": "Rain, parking lot, peds, pedestrian crossing",
}
_NUSCENES_CHANNELS = {"CAM_FRONT": "camera", "CAM_BACK": "camera", "LIDAR_TOP": "lidar"}


def nuscenes_token(*parts) -> str:
    """A 32-hex token like the real ones, derived from ``parts``."""
    return hashlib.md5("/".join(map(str, parts)).encode()).hexdigest()


def nuscenes_sample_token(scene_name: str, k: int) -> str:
    """Token of the ``k``-th sample (key frame) of ``scene_name``: the source's sample id."""
    return nuscenes_token("sample", scene_name, k)


def make_nuscenes_tree(root, version: str = "v1.0-mini", scenes: Sequence[str] = NUSCENES_SCENES[:3],
                       samples_per_scene: int = 4, seed: int = 0, image_size: tuple[int, int] = (160, 90)) -> Path:
    """The five JSON tables and the image files of ``scenes``.

    Each sample has a ``CAM_FRONT`` key frame (``samples/CAM_FRONT``), a ``CAM_FRONT`` sweep
    (non-key frame, ``sweeps/CAM_FRONT``), a ``CAM_BACK`` key frame and a ``LIDAR_TOP`` key frame,
    so a loader must filter by channel and key frame. ``sample_data.json`` is written in a
    shuffled order, as no order is promised. Scene descriptions: :data:`NUSCENES_DESCRIPTIONS`.
    """
    root = Path(root)
    (root / version).mkdir(parents=True, exist_ok=True)
    sensors = [{"token": nuscenes_token("sensor", c), "channel": c, "modality": m}
               for c, m in _NUSCENES_CHANNELS.items()]
    calibrated = [{"token": nuscenes_token("calibrated", c), "sensor_token": nuscenes_token("sensor", c),
                   "translation": [1.7, 0.0, 1.5], "rotation": [0.5, -0.5, 0.5, -0.5],
                   "camera_intrinsic": [[1266.4, 0.0, 816.3], [0.0, 1266.4, 491.5], [0.0, 0.0, 1.0]]
                   if m == "camera" else []} for c, m in _NUSCENES_CHANNELS.items()]
    scene_rows, sample_rows, sample_data = [], [], []
    image_number = 0
    for s, name in enumerate(scenes):
        tokens = [nuscenes_sample_token(name, k) for k in range(samples_per_scene)]
        log = f"n015-2018-07-{11 + s:02d}-11-54-40+0800"
        scene_rows.append({"token": nuscenes_token("scene", name), "log_token": nuscenes_token("log", log),
                           "nbr_samples": samples_per_scene, "first_sample_token": tokens[0],
                           "last_sample_token": tokens[-1], "name": name,
                           "description": NUSCENES_DESCRIPTIONS.get(name, "Day, city street")})
        for k, token in enumerate(tokens):
            stamp = 1_531_281_439_800_000 + s * 10**9 + k * 500_000
            sample_rows.append({"token": token, "timestamp": stamp, "prev": tokens[k - 1] if k else "",
                                "next": tokens[k + 1] if k + 1 < len(tokens) else "",
                                "scene_token": nuscenes_token("scene", name)})
            for channel, key in (("CAM_FRONT", True), ("CAM_FRONT", False), ("CAM_BACK", True), ("LIDAR_TOP", True)):
                when = stamp if key else stamp + 250_000
                folder = "samples" if key else "sweeps"
                ending = "pcd.bin" if channel == "LIDAR_TOP" else "jpg"
                filename = f"{folder}/{channel}/{log}__{channel}__{when}.{ending}"
                (root / filename).parent.mkdir(parents=True, exist_ok=True)
                if channel == "LIDAR_TOP":
                    (root / filename).write_bytes(np.zeros(5 * 4, dtype=np.float32).tobytes())
                else:
                    (root / filename).write_bytes(_jpeg_bytes(appearance_image(image_number, image_size, seed)))
                image_number += channel == "CAM_FRONT" and key
                sample_data.append({
                    "token": nuscenes_token("sample_data", filename), "sample_token": token,
                    "ego_pose_token": nuscenes_token("ego_pose", filename),
                    "calibrated_sensor_token": nuscenes_token("calibrated", channel), "timestamp": when,
                    "fileformat": "pcd" if channel == "LIDAR_TOP" else "jpg", "is_key_frame": key,
                    "height": 0 if channel == "LIDAR_TOP" else image_size[1],
                    "width": 0 if channel == "LIDAR_TOP" else image_size[0],
                    "filename": filename, "prev": "", "next": ""})
    order = np.random.default_rng(seed).permutation(len(sample_data))
    tables = {"sensor": sensors, "calibrated_sensor": calibrated, "scene": scene_rows, "sample": sample_rows,
              "sample_data": [sample_data[i] for i in order]}
    for table, rows in tables.items():
        (root / version / f"{table}.json").write_text(json.dumps(rows, indent=0))
    return root


# ----------------------------------------------------------------------------------------------
# Waymo: extracted folder (training/image_0/*.jpg) and the v2 Parquet release


def make_waymo_folder_tree(root, n_images: int = 12, seed: int = 0, split: str = "training",
                           image_size: tuple[int, int] = (192, 128)) -> Path:
    """KITTI-style extraction: ``<split>/image_0/<7 digits>.jpg`` (FRONT) and two ``image_1`` files
    (FRONT_LEFT, which a front-camera loader must ignore)."""
    root = Path(root)
    for camera, count in (("image_0", n_images), ("image_1", 2)):
        folder = root / split / camera
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            appearance_image(i if camera == "image_0" else 50 + i, image_size, seed).save(
                folder / f"{i:07d}.jpg", quality=90)
    return root


def waymo_segment_name(s: int) -> str:
    """Segment context name ``s`` in the real format."""
    return f"{10017090168044687777 + 7919 * s}_{6380 + s}_000_{6400 + s}_000"


def waymo_timestamp(frame: int) -> int:
    """``key.frame_timestamp_micros`` of frame ``frame`` (10 Hz)."""
    return 1_510_593_600_000_000 + frame * 100_000


# Per segment s: WAYMO_STATS[s % 2] as (time_of_day, weather, location).
WAYMO_STATS = (("Day", "sunny", "location_sf"), ("Night", "rain", "location_phx"))


def make_waymo_parquet_tree(root, n_segments: int = 2, frames: int = 6, seed: int = 0, split: str = "training",
                            row_group_size: int = 7, with_stats: bool = True,
                            corrupt: Sequence[tuple[int, int]] = (), image_size: tuple[int, int] = (192, 128)) -> Path:
    """Waymo Open Dataset v2: ``<split>/camera_image/<segment>.parquet`` (and ``<split>/stats/``).

    Columns as in the v2 release: ``key.segment_context_name`` (string),
    ``key.frame_timestamp_micros`` (int64), ``key.camera_name`` (int8, 1-5),
    ``[CameraImageComponent].image`` (JPEG bytes), ``.pose.transform``, ``.pose_timestamp``,
    ``.velocity.linear_velocity.x`` and ``.rolling_shutter_params.shutter``; rows of all five
    cameras shuffled and split into row groups of ``row_group_size``. The FRONT image of frame
    ``f`` of segment ``s`` has appearance ``s * frames + f``. ``corrupt``: ``(s, f)`` pairs whose
    FRONT image bytes are cut short. ``stats`` (``[StatsComponent].time_of_day``, ``.weather``,
    ``.location``) follows :data:`WAYMO_STATS`.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(root)
    image_dir, stats_dir = root / split / "camera_image", root / split / "stats"
    image_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for s in range(n_segments):
        segment = waymo_segment_name(s)
        rows = []
        for f in range(frames):
            for camera in (1, 2, 3, 4, 5):  # FRONT, FRONT_LEFT, FRONT_RIGHT, SIDE_LEFT, SIDE_RIGHT
                look = s * frames + f if camera == 1 else 1000 + 5 * (s * frames + f) + camera
                data = _jpeg_bytes(appearance_image(look, image_size, seed))
                if camera == 1 and (s, f) in set(map(tuple, corrupt)):
                    data = data[: len(data) // 3]
                rows.append((segment, waymo_timestamp(f), camera, data))
        rows = [rows[i] for i in rng.permutation(len(rows))]
        n = len(rows)
        table = pa.table({
            "key.segment_context_name": pa.array([r[0] for r in rows], pa.string()),
            "key.frame_timestamp_micros": pa.array([r[1] for r in rows], pa.int64()),
            "key.camera_name": pa.array([r[2] for r in rows], pa.int8()),
            "[CameraImageComponent].image": pa.array([r[3] for r in rows], pa.binary()),
            "[CameraImageComponent].pose.transform": pa.array([np.eye(4).ravel().tolist()] * n,
                                                              pa.list_(pa.float64())),
            "[CameraImageComponent].pose_timestamp": pa.array([r[1] / 1e6 for r in rows], pa.float64()),
            "[CameraImageComponent].velocity.linear_velocity.x": pa.array([5.0] * n, pa.float32()),
            "[CameraImageComponent].rolling_shutter_params.shutter": pa.array([0.004] * n, pa.float64()),
        })
        pq.write_table(table, image_dir / f"{segment}.parquet", row_group_size=row_group_size)
        if with_stats:
            stats_dir.mkdir(parents=True, exist_ok=True)
            time_of_day, weather, location = WAYMO_STATS[s % 2]
            pq.write_table(pa.table({
                "key.segment_context_name": pa.array([segment] * frames, pa.string()),
                "key.frame_timestamp_micros": pa.array([waymo_timestamp(f) for f in range(frames)], pa.int64()),
                "[StatsComponent].time_of_day": [time_of_day] * frames,
                "[StatsComponent].location": [location] * frames,
                "[StatsComponent].weather": [weather] * frames,
            }), stats_dir / f"{segment}.parquet")
    return root


# ----------------------------------------------------------------------------------------------
# BDD100K: images/100k/<split>/*.jpg and labels

_BDD_WEATHER = ("clear", "rainy", "overcast", "snowy", "partly cloudy", "foggy")
_BDD_SCENE = ("city street", "highway", "residential", "parking lot")


def bdd100k_name(i: int) -> str:
    """File name of image ``i`` in the real ``xxxxxxxx-xxxxxxxx.jpg`` form."""
    return f"{hashlib.md5(str(i).encode()).hexdigest()[:8]}-{hashlib.md5(str(-i).encode()).hexdigest()[:8]}.jpg"


def bdd100k_attributes(i: int) -> dict[str, str]:
    """The ``attributes`` written for image ``i`` (night for the rare appearance group)."""
    return {"weather": "rainy" if i % 4 == 0 else _BDD_WEATHER[i % len(_BDD_WEATHER)],
            "scene": _BDD_SCENE[i % len(_BDD_SCENE)],
            "timeofday": "night" if appearance_group(i) == 3 else ("dawn/dusk" if i % 5 == 2 else "daytime")}


def make_bdd100k_tree(root, n_images: int = 12, seed: int = 0, split: str = "train",
                      label_format: str | None = "det_20", image_size: tuple[int, int] = (128, 72)) -> Path:
    """``images/100k/<split>/*.jpg`` with labels for every image but the last.

    ``label_format``: ``'det_20'`` (``labels/det_20/det_<split>.json``, Scalabel list),
    ``'images_json'`` (``labels/bdd100k_labels_images_<split>.json``, the 2018 list),
    ``'per_image'`` (``labels/100k/<split>/<stem>.json``) or ``None`` (no labels).
    """
    root = Path(root)
    folder = root / "images" / "100k" / split
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for i in range(n_images):
        name = bdd100k_name(i)
        appearance_image(i, image_size, seed).save(folder / name, quality=90)
        if i != n_images - 1:
            box = {"category": "car", "id": i, "attributes": {"occluded": False, "truncated": False},
                   "box2d": {"x1": 10.0, "y1": 20.0, "x2": 40.0, "y2": 50.0}}
            entries.append({"name": name, "attributes": bdd100k_attributes(i), "timestamp": 10000, "labels": [box]})
    if label_format == "det_20":
        (root / "labels" / "det_20").mkdir(parents=True, exist_ok=True)
        (root / "labels" / "det_20" / f"det_{split}.json").write_text(json.dumps(entries))
    elif label_format == "images_json":
        (root / "labels").mkdir(parents=True, exist_ok=True)
        (root / "labels" / f"bdd100k_labels_images_{split}.json").write_text(json.dumps(entries))
    elif label_format == "per_image":
        per_image = root / "labels" / "100k" / split
        per_image.mkdir(parents=True, exist_ok=True)
        for entry in entries:
            stem = Path(entry["name"]).stem
            frame = {"name": stem, "attributes": entry["attributes"],
                     "frames": [{"timestamp": 10000, "objects": entry["labels"]}]}
            (per_image / f"{stem}.json").write_text(json.dumps(frame))
    elif label_format is not None:
        raise ValueError(f"label_format must be 'det_20', 'images_json', 'per_image' or None, got {label_format!r}")
    return root


# ----------------------------------------------------------------------------------------------
# a plain folder, PIL modes, Fashion-MNIST IDX files


def make_folder_tree(root, classes: Sequence[str] = ("cats", "dogs", "rare"), per_class: int = 4, seed: int = 0,
                     image_size: tuple[int, int] = (48, 32)) -> Path:
    """``<class>/<class>_<k>.png|jpg`` (PNG for even k, JPEG for odd), nested one level for the last
    class (``<class>/nested/``), plus a ``notes.txt`` and a hidden ``.ipynb_checkpoints/`` image
    that a loader must skip. The last class has the rare appearance group (3), class ``c`` before
    it group ``c % 3``."""
    root = Path(root)
    for c, name in enumerate(classes):
        last = c == len(classes) - 1
        folder = root / name / ("nested" if last else "")
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            # image number c % 3 + 21k has group c % 3; 6 + 7k is always the rare group
            image = appearance_image(6 + 7 * k if last else c % 3 + 21 * k, image_size, seed)
            image.save(folder / f"{name}_{k}.{'png' if k % 2 == 0 else 'jpg'}")
    (root / "notes.txt").write_text("not an image\n")
    (root / ".ipynb_checkpoints").mkdir(exist_ok=True)
    appearance_image(0, image_size, seed).save(root / ".ipynb_checkpoints" / "copy.png")
    return root


def write_mode_variants(folder, size: tuple[int, int] = (16, 12)) -> dict[str, str]:
    """One file per awkward PIL mode; returns ``{file name: mode}``.

    Grayscale ``L`` PNG and JPEG, ``RGBA`` (left half fully transparent), palette ``P``, palette
    with a transparent index, 16-bit ``I;16`` PNG (a 0..65535 ramp), ``LA``, bilevel ``1``, and a
    ``CMYK`` JPEG.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    width, height = size
    ramp = np.tile(np.linspace(0, 255, width), (height, 1)).astype(np.uint8)
    gray = Image.fromarray(ramp)
    rgba = np.zeros((height, width, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 255
    rgba[:, : width // 2, 3] = 0
    palette = gray.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    transparent = palette.copy()
    transparent.info["transparency"] = int(np.asarray(palette)[0, 0])
    sixteen = Image.fromarray((np.tile(np.linspace(0, 65535, width), (height, 1))).astype(np.uint16))
    written = {
        "gray.png": (gray, "L"), "gray.jpg": (gray, "L"), "rgba.png": (Image.fromarray(rgba), "RGBA"),
        "palette.png": (palette, "P"), "palette_transparent.png": (transparent, "P"),
        "sixteen.png": (sixteen, "I;16"), "la.png": (gray.convert("LA"), "LA"), "bilevel.png": (gray.convert("1"), "1"),
        "cmyk.jpg": (Image.new("CMYK", size, (0, 255, 255, 0)), "CMYK"),
    }
    for name, (image, _) in written.items():
        extra = {"transparency": image.info["transparency"]} if "transparency" in image.info else {}
        image.save(folder / name, **extra)
    return {name: mode for name, (_, mode) in written.items()}


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def make_fashion_mnist_files(root, n_train: int = 40, n_test: int = 10, seed: int = 0) -> Path:
    """``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`` as Debian ships them; label of image
    ``i`` is ``i % 10`` and its 28x28 pixels a class-specific bar pattern plus noise."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 40, size=(n, 28, 28))
        for i, label in enumerate(labels):
            images[i, 2 * label: 2 * label + 6, 4:24] += 200  # a bar whose height says the class
        _write_idx(root / f"{prefix}-images-idx3-ubyte.gz", np.clip(images, 0, 255))
        _write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return root


# ----------------------------------------------------------------------------------------------
# one tiny layout per registered source kind (tests/test_source_contracts.py)


def _corrupt_file_at_location(root: Path, source: Any) -> tuple[str, int, str]:
    """Overwrite the file of the last sample with bytes that are no image."""
    index = len(source) - 1
    path = Path(source.metadata()["location"].iat[index])
    path.write_bytes(b"this is not an image")
    return "load", index, path.name


def _corrupt_waymo_parquet(root: Path, source: Any) -> tuple[str, int, str]:
    """Rebuild the tree with the FRONT JPEG of segment 0, frame 0 (the first sample) cut short."""
    make_waymo_parquet_tree(root, n_segments=2, frames=3, row_group_size=4, corrupt=[(0, 0)])
    return "load", 0, f"{waymo_segment_name(0)}.parquet"


def _corrupt_fashion_mnist(root: Path, source: Any) -> tuple[str, int | None, str]:
    """Cut the training images file short: its pixels are read when the source opens."""
    path = root / "train-images-idx3-ubyte.gz"
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    with gzip.open(path, "wb") as handle:
        handle.write(data[: len(data) // 2])
    return "open", None, path.name


@dataclass(frozen=True)
class SourceLayout:
    """How the contract test makes and reads a tiny tree of one source kind.

    ``build(folder)`` writes the tree and returns its root; ``options`` are the
    :func:`deqlib.sources.open_source` options that list every sample; ``corrupt(root, source)``
    damages one sample and returns ``(when, index, name)``: the :class:`ImageLoadError` comes
    from ``load(index)`` (``when='load'``) or from opening the source (``'open'``: sources that
    read all pixels up front) and names ``name``.
    """

    build: Callable[[Path], Path]
    options: dict = field(default_factory=dict)
    corrupt: Callable[[Path, Any], tuple[str, int | None, str]] = _corrupt_file_at_location


#: A layout for every source kind registered in deqlib.sources.SOURCES. A kind registered
#: without an entry here fails tests/test_source_contracts.py, naming the kind.
SOURCE_LAYOUTS = {
    "fashion-mnist": SourceLayout(lambda folder: make_fashion_mnist_files(folder, n_train=20, n_test=10),
                                  corrupt=_corrupt_fashion_mnist),
    "folder": SourceLayout(lambda folder: make_folder_tree(folder, per_class=3)),
    "kitti": SourceLayout(lambda folder: make_kitti_tree(folder, n_images=8), {"split": None}),
    "nuscenes": SourceLayout(lambda folder: make_nuscenes_tree(folder, samples_per_scene=3), {"split": None}),
    "waymo": SourceLayout(lambda folder: make_waymo_folder_tree(folder, n_images=6)),
    "waymo-parquet": SourceLayout(lambda folder: make_waymo_parquet_tree(folder, n_segments=2, frames=3,
                                                                         row_group_size=4),
                                  corrupt=_corrupt_waymo_parquet),
    "bdd100k": SourceLayout(lambda folder: make_bdd100k_tree(folder, n_images=6)),
}
