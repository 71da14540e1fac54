"""Embedding quality on real data: leave-one-out 1-NN class accuracy on Fashion-MNIST.

2,000 images (the first 2,000 of the t10k split: real photos of clothing, 10 classes),
EfficientNet-Lite0 embeddings (package ImageNet weights, 28x28 grey -> RGB 224x224) against raw
pixels. Each image's label is predicted by its nearest other image; cosine distance for the
embeddings (and Euclidean, for reference), Euclidean for the pixels.

    .venv/bin/python benchmarks/embedding/bench_fmnist_knn.py
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.neighbors import NearestNeighbors

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load_average, machine, save_result, uptime  # noqa: E402

from deqlib.embed import embed_source, get_encoder  # noqa: E402

FMNIST = Path("/usr/share/datasets/fashion-mnist")


class ArraySource:
    """Fashion-MNIST images held in memory (used when deqlib.sources is absent)."""

    name = "fashion-mnist-bench"
    root = FMNIST
    split = "t10k"

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels
        self.sample_ids = [f"t10k-{i:05d}" for i in range(len(images))]

    def __len__(self):
        return len(self.images)

    def load(self, index, draft=None):
        return Image.fromarray(self.images[index]).convert("RGB")

    def metadata(self):
        return pd.DataFrame({"sample_id": self.sample_ids, "location": self.sample_ids, "label": self.labels})

    def fingerprint(self):
        return str(len(self.images))


def read_idx(n: int):
    with gzip.open(FMNIST / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)[:n]
    with gzip.open(FMNIST / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)[:n]
    return images, labels


def loo_1nn_accuracy(X: np.ndarray, y: np.ndarray, metric: str) -> float:
    neighbours = NearestNeighbors(n_neighbors=2, metric=metric).fit(X)
    _, index = neighbours.kneighbors(X)
    # Column 0 is the point itself (distance 0) unless an exact duplicate comes first: take the
    # first neighbour that is not the point.
    other = np.where(index[:, 0] == np.arange(len(X)), index[:, 1], index[:, 0])
    return float((y[other] == y).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "auto"],
                        help="engine compute precisions to compare (auto: float32 on a CPU)")
    args = parser.parse_args()
    images, labels = read_idx(args.n)
    source = ArraySource(images, labels)
    pixels = images.reshape(len(images), -1).astype(np.float32) / 255.0
    row = {
        "n_images": len(images),
        "accuracy_pixels_euclidean": loo_1nn_accuracy(pixels, labels, "euclidean"),
        "accuracy_pixels_cosine": loo_1nn_accuracy(pixels, labels, "cosine"),
        "chance": float(np.bincount(labels).max() / len(labels)),
        "uptime_before": uptime(),
        "by_precision": {},
    }
    vectors = {}
    for precision in args.precisions:
        start = time.perf_counter()
        result = embed_source(source, get_encoder("efficientnet-lite0"), device="cpu", progress=False,
                              precision=precision)
        seconds = time.perf_counter() - start
        assert result.sample_ids == source.sample_ids
        resolved = result.stats["precision"]
        vectors[resolved] = result.vectors
        row["embedding_dim"] = int(result.vectors.shape[1])
        row["by_precision"][resolved] = {
            "accuracy_lite0_cosine": loo_1nn_accuracy(result.vectors, labels, "cosine"),
            "accuracy_lite0_euclidean": loo_1nn_accuracy(result.vectors, labels, "euclidean"),
            "embed_seconds": round(seconds, 1),
            "embed_img_s": round(result.stats["images_per_s"], 1),
        }
    if {"fp32", "bf16"} <= set(vectors):
        a, b = vectors["fp32"], vectors["bf16"]
        cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        row["bf16_vs_fp32_cosine_mean"] = round(float(cos.mean()), 5)
        row["bf16_vs_fp32_cosine_min"] = round(float(cos.min()), 5)
    row.update(uptime_after=uptime(), load_after=load_average())
    print(row)
    print(f"wrote {save_result('fmnist-knn', {'machine': machine(), 'args': vars(args), 'result': row})}")


if __name__ == "__main__":
    main()
