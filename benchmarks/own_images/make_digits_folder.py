"""Write scikit-learn's bundled 8x8 digits (1,797 images, offline) as a plain folder of PNG files.

A real image folder that is not Fashion-MNIST, for trying the README's "your own images" commands:

    python benchmarks/own_images/make_digits_folder.py                 # data/raw/digits-png/
    python benchmarks/own_images/make_digits_folder.py OUT --max-images 40 --size 32

Layout: one sub-folder per class, ``OUT/<digit>/<index>.png`` (e.g. ``3/0003.png``), 8-bit grayscale,
upscaled from 8x8 with nearest-neighbour to ``--size`` pixels (default 64). The folder source keeps
the sub-folder as the ``folder`` metadata column, so the explorer can colour by digit.
``--max-images N`` writes N images spread over the classes (stratified, seeded), for quick tests.
``--photos`` also copies scikit-learn's two bundled colour photos (``china.jpg``, ``flower.jpg``, 640x427)
into ``OUT/photos/``: two real photos among the digits, a rare group any signal should find.
Existing files are overwritten; nothing else in OUT is touched. data/raw is git-ignored: never commit
the images.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

DEFAULT_OUT = "data/raw/digits-png"  # the folder the README's "Your own images" commands read


def write_digits_folder(out: Path | str, size: int = 64, max_images: int | None = None, seed: int = 0,
                        photos: bool = False) -> list[Path]:
    """Write the digits as ``out/<digit>/<index:04d>.png`` (and, with ``photos``, scikit-learn's two sample
    photos as ``out/photos/*.jpg``); returns the written paths (sorted)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images, targets = digits.images, digits.target  # (1797, 8, 8) floats 0..16, labels 0..9
    keep = np.arange(len(images))
    if max_images is not None and max_images < len(images):
        rng = np.random.default_rng(seed)
        classes = np.unique(targets)
        per_class = [rng.permutation(np.flatnonzero(targets == c)) for c in classes]
        picked = [idx for rank in range(max(map(len, per_class))) for idx in
                  (p[rank] for p in per_class if rank < len(p))][:max_images]  # round robin over classes
        keep = np.sort(np.asarray(picked))
    out = Path(out)
    written = []
    for index in keep:
        pixels = np.clip(np.rint(images[index] * (255.0 / 16.0)), 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels, mode="L").resize((size, size), Image.NEAREST)
        path = out / str(int(targets[index])) / f"{int(index):04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
        written.append(path)
    if photos:
        import shutil

        import sklearn.datasets

        bundled = Path(sklearn.datasets.__file__).parent / "images"
        (out / "photos").mkdir(parents=True, exist_ok=True)
        for name in ("china.jpg", "flower.jpg"):
            written.append(Path(shutil.copyfile(bundled / name, out / "photos" / name)))
    return sorted(written)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels (default: %(default)s)")
    parser.add_argument("--max-images", type=int, default=None, help="write only N images, stratified by class")
    parser.add_argument("--seed", type=int, default=0, help="seed of --max-images (default: %(default)s)")
    parser.add_argument("--photos", action="store_true",
                        help="also copy scikit-learn's two bundled photos into OUT/photos/ (a rare group)")
    args = parser.parse_args(argv)
    written = write_digits_folder(args.out, size=args.size, max_images=args.max_images, seed=args.seed,
                                  photos=args.photos)
    photos = " and 2 photos under photos/" if args.photos else ""
    print(f"wrote {len(written) - (2 if args.photos else 0):,} PNG files ({args.size}x{args.size} grayscale) "
          f"under {args.out}/<digit>/{photos}")


if __name__ == "__main__":
    main()
