"""Realistic benchmark files from REAL photos (scikit-learn's two sample photos, 640 x 427).

KITTI-sized PNGs (1242 x 375, like ``training/image_2/*.png``) and nuScenes-sized JPEGs
(1600 x 900, quality 90 like CAM_FRONT frames): each file is a different random crop of one
of the photos (flipped half of the time, brightness jittered), resized to the target size.
Upscaled photos are smoother than real camera frames, so their PNGs decode somewhat faster
than KITTI's; the JPEG decode cost depends on the pixel count and is realistic.

    .venv/bin/python benchmarks/embedding/make_images.py --out build/bench-images --n 600
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance
from sklearn.datasets import load_sample_images

SIZES = {"kitti-png": ((1242, 375), "png"), "nuscenes-jpg": ((1600, 900), "jpg")}


def make(out: Path, n: int, seed: int = 0) -> dict[str, Path]:
    rng = np.random.default_rng(seed)
    photos = [Image.fromarray(a) for a in load_sample_images().images]
    folders = {}
    for kind, ((width, height), ext) in SIZES.items():
        folder = out / kind
        folder.mkdir(parents=True, exist_ok=True)
        folders[kind] = folder
        if len(list(folder.glob(f"*.{ext}"))) >= n:
            continue
        aspect = width / height
        for i in range(n):
            photo = photos[i % len(photos)]
            pw, ph = photo.size
            crop_w = int(rng.uniform(0.55, 1.0) * pw)
            crop_h = min(ph, int(crop_w / aspect))
            crop_w = int(crop_h * aspect)
            left = int(rng.integers(0, pw - crop_w + 1))
            top = int(rng.integers(0, ph - crop_h + 1))
            image = photo.crop((left, top, left + crop_w, top + crop_h)).resize((width, height), Image.BICUBIC)
            if rng.random() < 0.5:
                image = image.transpose(Image.FLIP_LEFT_RIGHT)
            image = ImageEnhance.Brightness(image).enhance(float(rng.uniform(0.7, 1.3)))
            path = folder / f"{i:06d}.{ext}"
            if ext == "png":
                image.save(path)
            else:
                image.save(path, quality=90)
    return folders


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("build/bench-images"))
    parser.add_argument("--n", type=int, default=600)
    args = parser.parse_args()
    for kind, folder in make(args.out, args.n).items():
        files = sorted(folder.iterdir())
        size = sum(f.stat().st_size for f in files) / len(files) / 1e3
        print(f"{kind}: {len(files)} files in {folder}, {size:.0f} kB each")
