"""deqlib's default analysis against the official (`reference`) one: time per stage and NMI.

    .venv/bin/python benchmarks/analysis/bench_default_vs_reference.py [--data effnet|pixels] [--sizes 5000 20000]

For each N (the first N Fashion-MNIST images):

* time reduce, cluster and bank (likelihoods + Parquet write) of ``analyze(mode="default")``
  (openTSNE 3-D BH, 125+100 iterations, theta 0.8, PCA-50; DBSCAN eps 1.0 in official units)
  and ``analyze(mode="reference")`` (scikit-learn TSNE as the official run; DBSCAN raw eps 1.0),
  no caches;
* NMI / ARI / purity of the clusters with the 10 classes (noise counted as one group) at the
  preset eps 1.0 / min_samples 10, and at each side's best setting from the same grid:
  DBSCAN eps in {0.5, 0.75, 1, 1.5, 2, 3, 4} x the embedding's own median 9-NN distance
  (eps_scale="knn", min_samples 10) and HDBSCAN min_cluster_size in {10, 25, 50, 100, 200};
* agreement (ARI) of the two sides' preset clusterings, and the coordinates' spread and k-NN scale.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import adjusted_rand_score

from common import load_embeddings, machine, peak_rss_mib, sample_ids, write_result
from deqlib.alignment import alignment_scores
from deqlib.bank import write_bank
from deqlib.cluster import DBSCANClusterer, HDBSCANClusterer, knn_distance_scale
from deqlib.pipeline import analyze
from deqlib.stages import build_stages

KNN_GRID = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
HDBSCAN_GRID = (10, 25, 50, 100, 200)


def grid(coords: np.ndarray, classes: np.ndarray) -> dict:
    rows = []
    for factor in KNN_GRID:
        result = DBSCANClusterer(eps=factor, min_samples=10, eps_scale="knn").fit(coords).result_
        rows.append({"clusterer": "dbscan", "eps_knn": factor, "effective_eps": result.params["effective_eps"],
                     "n_clusters": result.n_clusters, "noise_fraction": result.noise_fraction,
                     **alignment_scores(result.labels, classes)})
    for size in HDBSCAN_GRID:
        started = time.perf_counter()
        result = HDBSCANClusterer(min_cluster_size=size).fit(coords).result_
        rows.append({"clusterer": "hdbscan", "min_cluster_size": size, "seconds": time.perf_counter() - started,
                     "n_clusters": result.n_clusters, "noise_fraction": result.noise_fraction,
                     **alignment_scores(result.labels, classes)})
    best = {name: max((r for r in rows if r["clusterer"] == name), key=lambda r: r["nmi"])
            for name in ("dbscan", "hdbscan")}
    return {"grid": rows, "best": best}


def one_side(mode: str, vectors, ids, classes) -> dict:
    result = analyze(embeddings=vectors, sample_ids=ids, stages=build_stages(mode), cache=False)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        write_bank(Path(tmp) / "bank.parquet", result.bank)
    bank_seconds = result.timings["likelihood"] + time.perf_counter() - started
    coords = result.samples[["x", "y", "z"]].to_numpy()
    labels = result.samples["raw_cluster_id"].to_numpy()
    seconds = {"reduce": result.timings["reduce"], "cluster": result.timings["cluster"], "bank": bank_seconds}
    seconds["total"] = sum(seconds.values())
    return {
        "seconds": seconds,
        "preset_eps_1": {"effective_eps": result.params["cluster"]["effective_eps"],
                         "n_clusters": result.params["cluster"]["n_clusters"],
                         "noise_fraction": result.params["cluster"]["noise_fraction"],
                         **alignment_scores(labels, classes)},
        "spread": float(np.ptp(coords, axis=0).max()),
        "knn10_scale": knn_distance_scale(coords, 10),
        "reduce_params": result.params["reduce"],
        "_labels": labels,
        **grid(coords, classes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=("effnet", "pixels"), default="effnet")
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    args = parser.parse_args()
    runs = []
    for n in args.sizes:
        vectors, classes = load_embeddings(args.data, n)
        ids = sample_ids(n)
        start_load = machine()["loadavg_1_5_15"]
        default = one_side("default", vectors, ids, classes)
        reference = one_side("reference", vectors, ids, classes)
        run = {"n": n, "loadavg_before": start_load, "loadavg_after": machine()["loadavg_1_5_15"],
               "default": default, "reference": reference,
               "speedup_total": reference["seconds"]["total"] / default["seconds"]["total"],
               "speedup_reduce": reference["seconds"]["reduce"] / default["seconds"]["reduce"],
               "preset_agreement_ari": adjusted_rand_score(default.pop("_labels"), reference.pop("_labels"))}
        for side in ("default", "reference"):
            best = run[side]["best"]
            print(f"N={n} {side}: {run[side]['seconds']} preset NMI {run[side]['preset_eps_1']['nmi']:.3f}; "
                  f"best DBSCAN NMI {best['dbscan']['nmi']:.3f} (eps_knn {best['dbscan']['eps_knn']}), "
                  f"best HDBSCAN NMI {best['hdbscan']['nmi']:.3f} (mcs {best['hdbscan']['min_cluster_size']})",
                  flush=True)
        print(f"N={n}: speed-up {run['speedup_total']:.2f}x, preset agreement ARI {run['preset_agreement_ari']:.3f}")
        runs.append(run)
    write_result(f"default_vs_reference-{args.data}", {"machine": machine(), "data": args.data, "runs": runs,
                                                       "peak_rss_mib": peak_rss_mib()})


if __name__ == "__main__":
    main()
