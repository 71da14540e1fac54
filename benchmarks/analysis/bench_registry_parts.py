"""Issue 11 item 6: UMAP 3-D and fast-hdbscan beside openTSNE and hdbscan, side by side in one run.

    cd benchmarks/analysis
    ../../.venv/bin/python bench_registry_parts.py --n 20000

One parent process; every measured step runs in its own child process (same interpreter, same
threads), so the peak memory of a step is that child's own high-water mark (``VmHWM``), read before
the step (imports + the N x 1280 vectors) and after it. Threads: ``OMP_NUM_THREADS`` and
``NUMBA_NUM_THREADS`` = 2 for every child (openTSNE, hdbscan's core distances, fast-hdbscan's numba
kernels). UMAP with a seed runs single-threaded whatever the setting (umap-learn's parallel SGD is
not reproducible), which is how a seeded analysis uses it. The load average is recorded before and
after each step: the 2 cores are shared with other jobs, so compare times within one result file.

Steps:
1. reducers, seed 33, from the registries (``deqlib.reduce.REDUCERS``): ``opentsne`` (deqlib's
   default: PCA-50, schedule ``fast``) and ``umap`` (3-D, n_neighbors 15, min_dist 0.1, after the
   same PCA-50);
2. on EACH reducer's coordinates, from ``deqlib.cluster.CLUSTERERS``: ``hdbscan`` and
   ``fast-hdbscan`` (deqlib sets the library's ``reproducible=True``) over one shared grid
   (min_cluster_size 10, 25, 50, 100, 200; min_samples None) and the default DBSCAN (eps 1.0,
   min_samples 10; eps_scale ``official`` on t-SNE, ``knn`` on UMAP, whose scale the t-SNE
   calibration does not describe): time (first call in a fresh process, and again warm), peak
   memory, NMI with the 10 classes, noise share, cluster count;
3. seed 34 of each reducer, clustered at each clusterer's best grid point (by NMI) and with DBSCAN:
   ARI between the seed-33 and seed-34 partitions (noise samples as singletons) and the Spearman
   correlation of the eq. 3 likelihoods (noise policy ``singleton``, the default) between them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402

GRID = (10, 25, 50, 100, 200)
THREADS = "2"
REDUCER_NAMES = ("opentsne", "umap")
CLUSTERER_NAMES = ("hdbscan", "fast-hdbscan")


# ------------------------------------------------------------------------------- child side
def _hwm_mib() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def make_reducer(name: str, seed: int):
    """(estimator, description) from ``deqlib.reduce.REDUCERS``: what a user gets by name."""
    from deqlib.reduce import REDUCERS

    params = {"n_components": 3, "n_neighbors": 15, "min_dist": 0.1} if name == "umap" else {}
    return REDUCERS.create(name, random_state=seed, **params), f"REDUCERS.create({name!r}, {params})"


def make_clusterer(name: str, reducer: str, min_cluster_size: int | None):
    """(estimator, description) from ``deqlib.cluster.CLUSTERERS``."""
    from deqlib.cluster import CLUSTERERS

    if name == "dbscan":
        # the t-SNE eps calibration does not describe UMAP maps: build_stages defaults DBSCAN to 'knn' there
        params = {"eps": 1.0, "min_samples": 10, "eps_scale": "official" if reducer == "opentsne" else "knn"}
    else:
        params = {"min_cluster_size": min_cluster_size}
    return CLUSTERERS.create(name, **params), f"CLUSTERERS.create({name!r}, {params})"


def _labels(fitted) -> np.ndarray:
    """Labels from a fit's return: a ClusterResult (``.labels``) or a fitted estimator (``labels_``)."""
    labels = getattr(fitted, "labels_", None)
    if labels is None:
        labels = fitted.labels
    return np.asarray(labels, dtype=np.int64)


def child(spec: dict) -> dict:
    out = {"load_before": [round(x, 2) for x in os.getloadavg()]}
    X = np.load(spec["vectors"]) if spec["kind"] == "reduce" else None
    coords = np.load(spec["coords"]) if spec["kind"] == "cluster" else None
    out["rss_before_mib"] = _hwm_mib()
    if spec["kind"] == "reduce":
        reducer, how = make_reducer(spec["reducer"], spec["seed"])
        if spec["reducer"] == "umap":
            # numba compiles umap-learn's kernels on the first call of a process: timed apart (a fresh
            # process pays seconds + warmup_seconds), on 500 rows so the warm-up adds no memory to speak of
            started = time.perf_counter()
            make_reducer("umap", spec["seed"])[0].fit_transform(X[:500])
            out["warmup_seconds"] = time.perf_counter() - started
        started = time.perf_counter()
        coords = reducer.fit_transform(X)
        out["seconds"] = time.perf_counter() - started
        np.save(spec["out"], coords)
    else:
        clusterer, how = make_clusterer(spec["clusterer"], spec["reducer"], spec.get("min_cluster_size"))
        started = time.perf_counter()
        labels = _labels(clusterer.fit(coords))
        out["seconds"] = time.perf_counter() - started  # first call in a fresh process (numba JIT or its cache)
        started = time.perf_counter()
        again = _labels(make_clusterer(spec["clusterer"], spec["reducer"], spec.get("min_cluster_size"))[0].fit(coords))
        out["seconds_warm"] = time.perf_counter() - started
        out["warm_identical"] = bool(np.array_equal(labels, again))
        np.save(spec["out"], labels)
    out["how"] = how
    out["peak_rss_mib"] = _hwm_mib()
    out["load_after"] = [round(x, 2) for x in os.getloadavg()]
    return out


# ------------------------------------------------------------------------------ parent side
def run_child(spec: dict) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=THREADS, NUMBA_NUM_THREADS=THREADS, MKL_NUM_THREADS=THREADS,
               OPENBLAS_NUM_THREADS=THREADS)
    done = subprocess.run([sys.executable, __file__, "child", json.dumps(spec)], env=env, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise RuntimeError(f"step {spec} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(spec.get("reducer"), spec.get("clusterer", ""), spec.get("min_cluster_size", ""), spec.get("seed", ""),
          {k: result[k] for k in ("seconds", "peak_rss_mib")}, flush=True)
    return result


def _scores(labels: np.ndarray, classes: np.ndarray, coords: np.ndarray) -> dict:
    from deqlib.alignment import alignment_scores

    noise = labels < 0
    return {"nmi": alignment_scores(labels, classes)["nmi"], "noise_fraction": float(noise.mean()),
            "n_clusters": int(np.unique(labels[~noise]).size)}


def _pair(labels_a, coords_a, labels_b, coords_b) -> dict:
    from deqlib.likelihood import scaled_likelihood
    from deqlib.consensus import run_agreement

    L = np.vstack([scaled_likelihood(labels_a, "singleton", coords_a),
                   scaled_likelihood(labels_b, "singleton", coords_b)])
    pair = run_agreement(np.vstack([labels_a, labels_b]), L).iloc[0]
    return {"ari": float(pair["ari"]), "spearman": float(pair["spearman"]),
            "weight_moved_share": float(pair["weight_moved_share"])}


def parent(n: int) -> None:
    X, classes = common.load_embeddings("effnet", n)
    out = {"machine": common.machine(), "n": n, "threads": f"OMP_NUM_THREADS=NUMBA_NUM_THREADS={THREADS}",
           "data": "fashion-mnist effnet-lite0 (bench cache)", "grid_min_cluster_size": list(GRID),
           "reducers": {}, "clusterers": {}, "seed_pairs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        np.save(tmp / "X.npy", X)
        del X
        coords, labels = {}, {}
        for seed in (33,):
            for reducer in REDUCER_NAMES:
                spec = {"kind": "reduce", "reducer": reducer, "seed": seed, "vectors": str(tmp / "X.npy"),
                        "out": str(tmp / f"{reducer}-{seed}.npy")}
                out["reducers"][reducer] = run_child(spec)
                coords[reducer, seed] = np.load(spec["out"])
        for reducer in REDUCER_NAMES:
            settings = [(c, m) for c in CLUSTERER_NAMES for m in GRID] + [("dbscan", None)]
            for clusterer, mcs in settings:
                spec = {"kind": "cluster", "reducer": reducer, "clusterer": clusterer, "min_cluster_size": mcs,
                        "coords": str(tmp / f"{reducer}-33.npy"), "out": str(tmp / "labels.npy")}
                result = run_child(spec)
                labels[reducer, clusterer, mcs, 33] = np.load(spec["out"])
                result.update(_scores(labels[reducer, clusterer, mcs, 33], classes, coords[reducer, 33]))
                out["clusterers"].setdefault(reducer, {}).setdefault(clusterer, {})[str(mcs)] = result
        # the best grid point of each clusterer on each reducer, by NMI with the classes
        best = {}
        for reducer in REDUCER_NAMES:
            for clusterer in CLUSTERER_NAMES:
                grid = out["clusterers"][reducer][clusterer]
                best[reducer, clusterer] = int(max(GRID, key=lambda m: grid[str(m)]["nmi"]))
            best[reducer, "dbscan"] = None
        out["best_min_cluster_size"] = {f"{r}/{c}": m for (r, c), m in best.items()}
        for reducer in REDUCER_NAMES:
            spec = {"kind": "reduce", "reducer": reducer, "seed": 34, "vectors": str(tmp / "X.npy"),
                    "out": str(tmp / f"{reducer}-34.npy")}
            out["reducers"][reducer + "_seed34"] = run_child(spec)
            coords[reducer, 34] = np.load(spec["out"])
            for clusterer in (*CLUSTERER_NAMES, "dbscan"):
                mcs = best[reducer, clusterer]
                spec = {"kind": "cluster", "reducer": reducer, "clusterer": clusterer, "min_cluster_size": mcs,
                        "coords": str(tmp / f"{reducer}-34.npy"), "out": str(tmp / "labels.npy")}
                result = run_child(spec)
                l34 = np.load(spec["out"])
                pair = _pair(labels[reducer, clusterer, mcs, 33], coords[reducer, 33], l34, coords[reducer, 34])
                pair.update({"min_cluster_size": mcs, "seed34": _scores(l34, classes, coords[reducer, 34]),
                             "seed34_seconds": result["seconds"]})
                out["seed_pairs"][f"{reducer}/{clusterer}"] = pair
                print(reducer, clusterer, pair, flush=True)
    out["machine_after"] = common.machine()
    common.write_result(f"registry_parts-effnet-{n}", out)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "child":
        print(json.dumps(child(json.loads(sys.argv[2]))))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    parent(args.n)


if __name__ == "__main__":
    main()
