"""Tiny dataset trees in each dataset's real layout and schema, for loader and notebook tests.

Images come in a few appearance groups (solid base colours plus noise), with one small group,
so that a clustering of their embeddings has real structure and a rare group to find.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

GROUP_COLOURS = [(200, 40, 40), (40, 160, 60), (40, 60, 200), (230, 200, 40)]


def _image(i: int, size: tuple[int, int], seed: int) -> Image.Image:
    """Image ``i``: group ``i % 3`` most of the time, the rare 4th group for every 7th image."""
    group = 3 if i % 7 == 6 else i % 3
    rng = np.random.default_rng(seed + i)
    base = np.array(GROUP_COLOURS[group], dtype=float)
    pixels = np.clip(base + rng.normal(0, 25, size=(size[1], size[0], 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


KITTI_LABEL_LINES = {
    "Car": "Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59",
    "Pedestrian": "Pedestrian 0.00 0 -0.20 712.40 143.00 810.73 307.92 1.89 0.48 1.20 1.84 1.47 8.41 0.01",
    "Cyclist": "Cyclist 0.00 0 1.89 330.60 176.09 355.61 213.60 1.72 0.50 1.95 -12.63 1.88 34.09 1.54",
    "DontCare": "DontCare -1 -1 -10 503.89 169.71 590.61 190.13 -1 -1 -1 -1000 -1000 -1000 -10",
}


def make_kitti_tree(root, n_images: int = 14, seed: int = 0, split_folder: str = "ImageSets") -> Path:
    """``training/image_2/*.png``, ``training/label_2/*.txt`` and train/val split lists."""
    root = Path(root)
    (root / "training" / "image_2").mkdir(parents=True, exist_ok=True)
    (root / "training" / "label_2").mkdir(parents=True, exist_ok=True)
    (root / split_folder).mkdir(parents=True, exist_ok=True)
    ids = [f"{i:06d}" for i in range(n_images)]
    for i, sample_id in enumerate(ids):
        _image(i, (124, 38), seed).save(root / "training" / "image_2" / f"{sample_id}.png")
        objects = ["Car"] * (1 + i % 2) + (["Pedestrian"] if i % 3 == 0 else []) + (["Cyclist"] if i % 7 == 6 else [])
        lines = [KITTI_LABEL_LINES[o] for o in objects + ["DontCare"]]
        (root / "training" / "label_2" / f"{sample_id}.txt").write_text("\n".join(lines) + "\n")
    half = n_images // 2
    (root / split_folder / "train.txt").write_text("\n".join(ids[:half]) + "\n")
    (root / split_folder / "val.txt").write_text("\n".join(ids[half:]) + "\n")
    (root / split_folder / "trainval.txt").write_text("\n".join(ids) + "\n")
    return root


def make_nuscenes_tree(root, version: str = "v1.0-mini", n_scenes: int = 2, samples_per_scene: int = 6,
                       seed: int = 0) -> Path:
    """The five JSON tables with CAM_FRONT key frames, CAM_FRONT sweeps and CAM_BACK key frames."""
    root = Path(root)
    (root / version).mkdir(parents=True, exist_ok=True)
    sensors = [{"token": "sensor-front", "channel": "CAM_FRONT", "modality": "camera"},
               {"token": "sensor-back", "channel": "CAM_BACK", "modality": "camera"}]
    calibrated = [{"token": "cal-front", "sensor_token": "sensor-front", "translation": [0, 0, 0],
                   "rotation": [1, 0, 0, 0], "camera_intrinsic": []},
                  {"token": "cal-back", "sensor_token": "sensor-back", "translation": [0, 0, 0],
                   "rotation": [1, 0, 0, 0], "camera_intrinsic": []}]
    names = ["scene-0061", "scene-0103", "scene-0553", "scene-0655"][:n_scenes]
    descriptions = ["Parked truck, construction, intersection", "Night, big street, bus stop"]
    scenes, samples, sample_data = [], [], []
    i = 0
    for s, name in enumerate(names):
        tokens = [f"sample-{s}-{k}" for k in range(samples_per_scene)]
        scenes.append({"token": f"scene-token-{s}", "name": name, "description": descriptions[s % 2],
                       "nbr_samples": samples_per_scene, "first_sample_token": tokens[0],
                       "last_sample_token": tokens[-1], "log_token": "log"})
        for k, token in enumerate(tokens):
            stamp = 1_532_402_927_000_000 + s * 10**8 + k * 500_000
            samples.append({"token": token, "timestamp": stamp, "scene_token": f"scene-token-{s}",
                            "prev": tokens[k - 1] if k else "", "next": tokens[k + 1] if k + 1 < len(tokens) else ""})
            for channel, cal, key in (("CAM_FRONT", "cal-front", True), ("CAM_FRONT", "cal-front", False),
                                      ("CAM_BACK", "cal-back", True)):
                folder = "samples" if key else "sweeps"
                filename = f"{folder}/{channel}/n008__{channel}__{stamp + (0 if key else 1000)}.jpg"
                (root / filename).parent.mkdir(parents=True, exist_ok=True)
                _image(i, (160, 90), seed).save(root / filename, quality=90)
                sample_data.append({"token": f"sd-{i}", "sample_token": token, "ego_pose_token": f"ego-{i}",
                                    "calibrated_sensor_token": cal, "timestamp": stamp, "fileformat": "jpg",
                                    "is_key_frame": key, "height": 90, "width": 160, "filename": filename,
                                    "prev": "", "next": ""})
                i += 1
    for table, rows in (("sensor", sensors), ("calibrated_sensor", calibrated), ("scene", scenes),
                        ("sample", samples), ("sample_data", sample_data)):
        (root / version / f"{table}.json").write_text(json.dumps(rows, indent=0))
    return root


def make_waymo_folder_tree(root, n_images: int = 12, seed: int = 0) -> Path:
    """``training/image_0/*.jpg``: front-camera frames extracted KITTI-style."""
    folder = Path(root) / "training" / "image_0"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_images):
        _image(i, (192, 128), seed).save(folder / f"{i:07d}.jpg", quality=90)
    return Path(root)


def make_waymo_parquet_tree(root, n_segments: int = 2, frames: int = 6, seed: int = 0, row_group_size: int = 4) -> Path:
    """``training/camera_image/<segment>.parquet`` with the v2 key and image columns (5 cameras a frame)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(root) / "training" / "camera_image"
    folder.mkdir(parents=True, exist_ok=True)
    i = 0
    for s in range(n_segments):
        segment = f"{10017090168044687777 + s}_6380_000_6400_000"
        rows = {"key.segment_context_name": [], "key.frame_timestamp_micros": [], "key.camera_name": [],
                "[CameraImageComponent].image": [], "[CameraImageComponent].pose.transform": []}
        for f in range(frames):
            for camera in (1, 2, 3, 4, 5):  # FRONT, FRONT_LEFT, FRONT_RIGHT, SIDE_LEFT, SIDE_RIGHT
                buffer = io.BytesIO()
                _image(i, (192, 128), seed).save(buffer, format="JPEG", quality=90)
                i += 1
                rows["key.segment_context_name"].append(segment)
                rows["key.frame_timestamp_micros"].append(1_510_593_600_000_000 + f * 100_000)
                rows["key.camera_name"].append(camera)
                rows["[CameraImageComponent].image"].append(buffer.getvalue())
                rows["[CameraImageComponent].pose.transform"].append([1.0] + [0.0] * 15)
        table = pa.table({**rows, "key.camera_name": pa.array(rows["key.camera_name"], pa.int8())})
        pq.write_table(table, folder / f"{segment}.parquet", row_group_size=row_group_size)
    return Path(root)


def make_bdd100k_tree(root, n_images: int = 12, seed: int = 0, split: str = "train") -> Path:
    """``images/100k/<split>/*.jpg`` and ``labels/det_20/det_<split>.json`` with attributes."""
    root = Path(root)
    folder = root / "images" / "100k" / split
    folder.mkdir(parents=True, exist_ok=True)
    labels = []
    for i in range(n_images):
        name = f"{i:08x}-{i * 7919 % 65536:04x}abcd.jpg"
        _image(i, (128, 72), seed).save(folder / name, quality=90)
        if i != n_images - 1:  # the last image has no label entry
            labels.append({"name": name, "attributes": {"weather": "rainy" if i % 4 == 0 else "clear",
                                                        "scene": "city street", "timeofday": "night" if i % 7 == 6 else "daytime"},
                           "timestamp": 10000, "labels": []})
    (root / "labels" / "det_20").mkdir(parents=True, exist_ok=True)
    (root / "labels" / "det_20" / f"det_{split}.json").write_text(json.dumps(labels))
    return root
