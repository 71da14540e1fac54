"""What one BLAS thread costs the default t-SNE (deqlib.reduce.OpenTSNEReducer).

The reducer runs its BLAS calls (the PCA to 50 dims, openTSNE's PCA initialisation) on one
thread, so that its coordinates do not depend on the thread count (docs/robustness.md, issue 10
case 4). This measures, side by side in one process, the PCA with one BLAS thread and with every
core, and the whole reduction, on raw Fashion-MNIST pixels (784-d, so the PCA really runs).

    python benchmarks/robustness/bench_blas_threads.py [N]      # default N = 10000

Result: benchmarks/robustness/results/blas_threads-<N>-<time>.json (machine, date, load average).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "analysis"))
from common import load_fashion_mnist, machine  # noqa: E402

from deqlib._atomic import write_text_atomic  # noqa: E402
from deqlib.reduce import OpenTSNEReducer  # noqa: E402
from deqlib.reduce.base import _pca  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def main(n: int = 10_000, repeats: int = 3) -> Path:
    import json
    import os

    images, _ = load_fashion_mnist()
    X = images[:n].reshape(n, -1).astype(np.float32)
    cores = len(os.sched_getaffinity(0))
    pca = {}
    for threads in (1, cores):
        times = []
        for _ in range(repeats):
            with threadpool_limits(limits=threads, user_api="blas"):
                start = time.perf_counter()
                _pca(X, 50, 33)
                times.append(time.perf_counter() - start)
        pca[threads] = min(times)
    start = time.perf_counter()
    coords = OpenTSNEReducer().fit_transform(X)
    total = time.perf_counter() - start
    result = {
        "benchmark": "blas_threads", "n": n, "dims": int(X.shape[1]), "machine": machine(),
        "note": "shared, loaded machine: compare the ratios, not the absolute seconds",
        "pca_seconds_one_blas_thread": round(pca[1], 3), f"pca_seconds_{cores}_blas_threads": round(pca[cores], 3),
        "reduce_seconds_total_one_blas_thread": round(total, 2),
        "extra_seconds_share_of_reduce": round((pca[1] - pca[cores]) / total, 4),
        "coords_finite": bool(np.isfinite(coords).all()),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = RESULTS / f"blas_threads-{n}-{stamp}.json"
    write_text_atomic(path, json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return path


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
