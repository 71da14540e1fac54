"""What the constant t-SNE thread count costs (issue 19: the core count changed the bank).

The default openTSNE reducer now runs on ``DEFAULT_TSNE_THREADS = 1`` thread whatever the core
count, because its map depends on the thread count (Annoy's neighbour trees are seeded per
thread). This measures, side by side in one process on raw Fashion-MNIST pixels (784-d -> PCA-50),
the default (1 thread) against the opt-in ``n_jobs=-1`` (every allowed core), interleaved
(1, all, 1, all, ...) so a change of the machine's load hits both, and how many of the N
likelihoods (default DBSCAN, singleton noise) the opt-in changes.

    python benchmarks/robustness/bench_core_count.py [N] [REPEATS]     # default 5000 2

Result: benchmarks/robustness/results/core_count-<N>-<time>.json (machine, date, load average).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "analysis"))
from common import load_fashion_mnist, machine  # noqa: E402

from deqlib._atomic import write_text_atomic  # noqa: E402
from deqlib.cluster import DBSCANClusterer  # noqa: E402
from deqlib.likelihood import cluster_likelihood  # noqa: E402
from deqlib.reduce import DEFAULT_TSNE_THREADS, OpenTSNEReducer  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def main(n: int = 5000, repeats: int = 2) -> Path:
    images, _ = load_fashion_mnist()
    X = images[:n].reshape(n, -1).astype(np.float32)
    cores = len(os.sched_getaffinity(0))
    seconds: dict[str, list[float]] = {"default": [], "all_cores": []}
    maps: dict[str, list[np.ndarray]] = {"default": [], "all_cores": []}
    for _ in range(repeats):
        for name, n_jobs in (("default", DEFAULT_TSNE_THREADS), ("all_cores", -1)):
            start = time.perf_counter()
            maps[name].append(OpenTSNEReducer(n_jobs=n_jobs).fit_transform(X))
            seconds[name].append(time.perf_counter() - start)
    likelihood = {name: cluster_likelihood(DBSCANClusterer().fit(found[0]).labels_, noise_policy="singleton")
                  for name, found in maps.items()}
    result = {
        "benchmark": "core_count", "n": n, "dims": int(X.shape[1]), "machine": machine(), "repeats": repeats,
        "note": "shared, loaded machine: compare the ratio, not the absolute seconds",
        "default_threads": DEFAULT_TSNE_THREADS, "all_cores_threads": cores,
        "seconds_default": [round(s, 2) for s in seconds["default"]],
        "seconds_all_cores": [round(s, 2) for s in seconds["all_cores"]],
        "ratio_default_over_all_cores_best": round(min(seconds["default"]) / min(seconds["all_cores"]), 3),
        "default_runs_identical": all(np.array_equal(m, maps["default"][0]) for m in maps["default"]),
        "all_cores_map_differs_from_default": not np.array_equal(maps["all_cores"][0], maps["default"][0]),
        "likelihoods_changed_by_all_cores": int((likelihood["default"] != likelihood["all_cores"]).sum()),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = RESULTS / f"core_count-{n}-{stamp}.json"
    write_text_atomic(path, json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return path


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
