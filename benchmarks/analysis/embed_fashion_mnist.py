"""Embed Fashion-MNIST with EfficientNet-Lite0 (real ImageNet weights, offline) for the benchmarks.

    .venv/bin/python benchmarks/analysis/embed_fashion_mnist.py [N]

Uses :func:`deqlib.embed.embed_source` (resumable shard cache under
data/interim/bench-analysis/cache), then writes all vectors to one .npz (``vectors``,
``sample_ids``, ``labels``). Run with N=20000 first and again with 70000: the second run
embeds only the new images.
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image

from common import EMBED_DIR, embeddings_file, load_fashion_mnist, sample_ids
from deqlib._atomic import atomic_path
from deqlib.embed import embed_source, get_encoder


class FashionMNISTImages:
    """Minimal picklable image source (the contract of deqlib.sources) over the idx files."""

    name = "fashion-mnist-bench"
    root = None
    split = "train+t10k"

    def __init__(self, n: int):
        images, labels = load_fashion_mnist()
        self.images, self.labels = images[:n], labels[:n]
        self.sample_ids = sample_ids(n)

    def __len__(self) -> int:
        return len(self.sample_ids)

    def load(self, index: int, draft=None) -> Image.Image:
        return Image.fromarray(self.images[index]).convert("RGB")

    def metadata(self):
        import pandas as pd

        return pd.DataFrame({"sample_id": self.sample_ids, "location": self.sample_ids, "label": self.labels})

    def fingerprint(self) -> str:
        return f"fashion-mnist-first{len(self)}"


def main(n: int) -> None:
    source = FashionMNISTImages(n)
    result = embed_source(source, get_encoder("efficientnet-lite0"), cache_dir=EMBED_DIR / "cache", progress=True)
    print(result.summary())
    with atomic_path(embeddings_file()) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, vectors=result.vectors, sample_ids=np.array(result.sample_ids), labels=source.labels)
    print(f"wrote {embeddings_file()} ({len(result.sample_ids)} x {result.vectors.shape[1]})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", type=int, nargs="?", default=70_000, help="embed the first N images (train, then t10k)")
    main(parser.parse_args().n)
