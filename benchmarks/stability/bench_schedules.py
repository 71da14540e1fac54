"""Issue 12's cost target: can the K consensus runs use a cheaper t-SNE schedule without worse agreement or maps?

    cd benchmarks/stability
    OMP_NUM_THREADS=2 ../../.venv/bin/python bench_schedules.py --n 20000

One process, one data set, side by side:

1. one analysis as a user runs it (``analyze(embeddings=X, cache=False)``): the cost yardstick;
2. the shared part of a stability report: PCA + openTSNE affinities, once per consensus side
   (side A seeded 101, side B 201, as ``stability_runs(seeds=...)`` would), and the k-NN graph
   of the co-association consensus;
3. for each candidate schedule of the runs (random initialisation over the shared affinities),
   five runs per side (seeds 101-105 and 201-205), each clustered with the default DBSCAN and
   with HDBSCAN (min_cluster_size 25, the quickstart's): the optimisation time per run, the NMI of
   every single run's clusters with the 10 classes, and consensus A vs consensus B (mean of the
   first K runs of each side) at K = 1, 3, 5 (Spearman of the likelihoods).

The cost of a K = 5 report with a candidate is estimated from its parts measured here:
``affinities + 5 x mean optimisation + clustering + co-association`` over ``one analysis``;
the 70,000-image report (``bench_stability.py report``) measures a whole report directly.
Every result records the machine, date and load average (before and after each step): the 2 cores
are shared with other engineers' jobs, so absolute times are pessimistic; compare within one file.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "analysis"))
import common  # noqa: E402

common.RESULTS = HERE / "results"

from deqlib.alignment import alignment_scores  # noqa: E402
from deqlib.cluster import DBSCANClusterer, HDBSCANClusterer  # noqa: E402
from deqlib.likelihood import scaled_likelihood  # noqa: E402
from deqlib.pipeline import analyze  # noqa: E402
from deqlib.reduce import OpenTSNEReducer  # noqa: E402
from deqlib.consensus import coassociation_consensus, knn_graph, spearman  # noqa: E402

CLUSTERERS = {
    "dbscan_default": lambda: DBSCANClusterer(eps=1.0, min_samples=10),  # mode='default' without preset
    "hdbscan_mcs25": lambda: HDBSCANClusterer(min_cluster_size=25),  # the quickstart's clusterer
}
#: Candidate schedules of the consensus runs: (early-exaggeration iterations, normal iterations, theta).
CANDIDATES = {
    "fast (current)": (125, 100, 0.8),
    "e125-n50-t0.8": (125, 50, 0.8),
    "e100-n50-t1.0": (100, 50, 1.0),
    "e60-n40-t1.0": (60, 40, 1.0),
}
SIDES = {"a": [101, 102, 103, 104, 105], "b": [201, 202, 203, 204, 205]}


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--candidates", nargs="*", default=list(CANDIDATES))
    args = parser.parse_args()
    X, classes = common.load_embeddings("effnet", args.n)
    out = {"machine": common.machine(), "n": args.n, "threads": os.environ.get("OMP_NUM_THREADS"),
           "data": "fashion-mnist effnet-lite0 (bench cache)", "candidates": {}}

    load_before = _load()
    started = time.perf_counter()
    one = analyze(embeddings=X, cache=False)
    out["one_analysis"] = {"seconds": time.perf_counter() - started, "load_before": load_before,
                           "load_after": _load(), "n_clusters": one.params["cluster"]["n_clusters"],
                           "nmi": alignment_scores(one.samples["raw_cluster_id"].to_numpy(), classes)["nmi"]}
    print("one analysis", out["one_analysis"], flush=True)

    affinities = {}
    for side, seeds in SIDES.items():
        started = time.perf_counter()
        affinities[side] = OpenTSNEReducer(random_state=seeds[0], initialization="random").fit_affinities(X)
        out[f"affinity_seconds_{side}"] = time.perf_counter() - started
    started = time.perf_counter()
    neighbors = knn_graph(X, random_state=SIDES["a"][0])
    out["knn_graph_seconds"] = time.perf_counter() - started
    print("shared parts", {k: v for k, v in out.items() if k.endswith("seconds") or "seconds_" in k}, flush=True)

    for name in args.candidates:
        early, n_iter, theta = CANDIDATES[name]
        row = {"early_exaggeration_iter": early, "n_iter": n_iter, "theta": theta, "runs": [],
               "load_before": _load()}
        L = {c: {} for c in CLUSTERERS}
        labels = {c: {} for c in CLUSTERERS}
        for side, seeds in SIDES.items():
            for c in CLUSTERERS:
                L[c][side], labels[c][side] = [], []
            for seed in seeds:
                reducer = OpenTSNEReducer(random_state=seed, initialization="random", early_exaggeration_iter=early,
                                          n_iter=n_iter, theta=theta)
                started = time.perf_counter()
                coords = reducer.fit_transform(X, affinities=affinities[side])
                run = {"side": side, "seed": seed, "tsne_seconds": time.perf_counter() - started}
                for c, make in CLUSTERERS.items():
                    started = time.perf_counter()
                    result = make().fit(coords)
                    run[f"{c}_seconds"] = time.perf_counter() - started
                    run[f"{c}_n_clusters"] = result.n_clusters
                    run[f"{c}_noise"] = result.noise_fraction
                    run[f"{c}_nmi"] = alignment_scores(result.labels, classes)["nmi"]
                    L[c][side].append(scaled_likelihood(result.labels, "singleton", coords))
                    labels[c][side].append(result.labels)
                row["runs"].append(run)
                print(name, run, flush=True)
        row["load_after"] = _load()
        row["tsne_seconds_mean"] = float(np.mean([r["tsne_seconds"] for r in row["runs"]]))
        for c in CLUSTERERS:
            row[c] = {"nmi_mean": float(np.mean([r[f"{c}_nmi"] for r in row["runs"]])),
                      "nmi_min": float(np.min([r[f"{c}_nmi"] for r in row["runs"]])),
                      "n_clusters_mean": float(np.mean([r[f"{c}_n_clusters"] for r in row["runs"]])),
                      "cluster_seconds_mean": float(np.mean([r[f"{c}_seconds"] for r in row["runs"]])),
                      "consensus_spearman": {}}
            La, Lb = np.stack(L[c]["a"]), np.stack(L[c]["b"])
            for k in (1, 3, 5):
                row[c]["consensus_spearman"][k] = spearman(La[:k].mean(axis=0), Lb[:k].mean(axis=0))
            # cost of one co-association consensus of K = 5 (part of every report)
            started = time.perf_counter()
            coassociation_consensus(np.stack(labels[c]["a"]), neighbors)
            row[c]["coassoc_seconds"] = time.perf_counter() - started
        shared = out["affinity_seconds_a"] + out["knn_graph_seconds"]
        cost = (shared + 5 * row["tsne_seconds_mean"] + 5 * row["dbscan_default"]["cluster_seconds_mean"]
                + row["dbscan_default"]["coassoc_seconds"])
        row["k5_report_seconds_estimate"] = cost
        row["k5_cost_ratio_estimate"] = cost / out["one_analysis"]["seconds"]
        # the same against one analysis rebuilt from parts measured here (affinities + one current-schedule
        # optimisation + DBSCAN): less exposed to the load drifting between the yardstick and the runs
        if "fast (current)" in out["candidates"] or name == "fast (current)":
            base = row if name == "fast (current)" else out["candidates"]["fast (current)"]
            one_parts = (out["affinity_seconds_a"] + base["tsne_seconds_mean"]
                         + base["dbscan_default"]["cluster_seconds_mean"])
            row["k5_cost_ratio_vs_parts"] = cost / one_parts
        out["candidates"][name] = row
        print(name, {k: v for k, v in row.items() if k != "runs"}, flush=True)
    out["machine_after"] = common.machine()
    common.write_result(f"schedules-effnet-{args.n}", out)


if __name__ == "__main__":
    main()
