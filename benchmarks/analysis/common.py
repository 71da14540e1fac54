"""Shared helpers of the analysis benchmarks: data, machine description, result files.

Data: Fashion-MNIST (70,000 real 28x28 images, 10 classes) from the Debian package
``dataset-fashion-mnist``. ``load_embeddings("effnet", n)`` gives EfficientNet-Lite0 vectors
(made once by ``embed_fashion_mnist.py``, cached under data/interim/bench-analysis);
``load_embeddings("pixels", n)`` gives the pixels reduced to 50 PCA dims (needs no model).
Subsets are the first n samples in the file order (train 0..59,999 then t10k).
"""

from __future__ import annotations

import datetime as _dt
import gzip
import json
import os
import platform
import resource
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks/_host.py
from _host import cpu_model  # noqa: E402

from deqlib import paths
from deqlib._atomic import write_text_atomic

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
RESULTS = Path(__file__).resolve().parent / "results"
EMBED_DIR = paths.interim_dir() / "bench-analysis"
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def load_fashion_mnist() -> tuple[np.ndarray, np.ndarray]:
    """All 70,000 images (uint8, 70000 x 28 x 28) and labels, train then t10k."""
    images, labels = [], []
    for split in ("train", "t10k"):
        with gzip.open(FASHION_DIR / f"{split}-images-idx3-ubyte.gz") as f:
            images.append(np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28))
        with gzip.open(FASHION_DIR / f"{split}-labels-idx1-ubyte.gz") as f:
            labels.append(np.frombuffer(f.read(), np.uint8, offset=8))
    return np.concatenate(images), np.concatenate(labels).astype(np.int64)


def sample_ids(n: int) -> list[str]:
    return [f"fmnist-{i:05d}" for i in range(n)]


def embeddings_file() -> Path:
    return EMBED_DIR / "fashion-mnist_efficientnet-lite0.npz"


def load_embeddings(kind: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, class labels) of the first n samples."""
    _, labels = load_fashion_mnist()
    if kind == "effnet":
        with np.load(embeddings_file()) as data:
            vectors = data["vectors"]
        if len(vectors) < n:
            raise SystemExit(f"only {len(vectors)} embeddings in {embeddings_file()}; run embed_fashion_mnist.py")
        return vectors[:n].astype(np.float32), labels[:n]
    if kind == "pixels":
        from sklearn.decomposition import PCA

        images, _ = load_fashion_mnist()
        flat = images[:n].reshape(n, -1).astype(np.float32) / 255
        return PCA(50, random_state=0).fit_transform(flat).astype(np.float32), labels[:n]
    raise ValueError(kind)


def machine() -> dict:
    """Machine, date and load at the time of the run (the cores are shared)."""
    cpu = cpu_model()
    load = os.getloadavg()
    return {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "host": platform.node(),
            "cpu": cpu, "cores": len(os.sched_getaffinity(0)), "loadavg_1_5_15": [round(x, 2) for x in load],
            "python": platform.python_version(), "memory_gib": round(os.sysconf("SC_PAGE_SIZE") *
                                                                     os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_result(name: str, payload: dict) -> Path:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{name}-{stamp}.json"
    write_text_atomic(path, json.dumps(payload, indent=1, default=str))
    print(f"wrote {path}")
    return path
