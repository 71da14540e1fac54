"""What fitting the t-SNE on a random sample and placing the rest does, against a full fit.

    .venv/bin/python benchmarks/analysis/bench_subsample.py [--data effnet] [--n 20000] [--sample 5000]

Three runs of the default reducer on the same N points: a full fit; a fit on a random
``--sample`` subset with openTSNE's ``transform`` for the rest; the same with
``placement="neighbors"`` (median of the 25 nearest fitted points, no optimisation). For each:
time, 10-NN class agreement in the 3-D map (how well classes stay together, fitted and placed
points separately), NMI with the classes at the best DBSCAN/HDBSCAN setting of the grid of
bench_default_vs_reference.py, and ARI with the full fit's clustering at the same setting.
The transform rate (points per second) feeds the 1,000,000-image projection of bench_scaling.py.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import adjusted_rand_score
from sklearn.neighbors import KNeighborsClassifier

from bench_default_vs_reference import grid
from common import load_embeddings, machine, write_result
from deqlib.cluster import DBSCANClusterer, HDBSCANClusterer
from deqlib.reduce import OpenTSNEReducer


def knn_agreement(coords, classes, subset) -> float:
    neighbours = KNeighborsClassifier(n_neighbors=11).fit(coords, classes).kneighbors(
        coords[subset], return_distance=False)[:, 1:]
    return float((classes[neighbours] == classes[subset, None]).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=("effnet", "pixels"), default="effnet")
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--sample", type=int, default=5000)
    args = parser.parse_args()
    vectors, classes = load_embeddings(args.data, args.n)
    runs, reference_labels = {}, {}
    for name, options in (("full", {}),
                          ("sample+transform", {"sample_threshold": args.sample, "sample_size": args.sample}),
                          ("sample+neighbors", {"sample_threshold": args.sample, "sample_size": args.sample,
                                                "placement": "neighbors"})):
        reducer = OpenTSNEReducer(**options)
        started = time.perf_counter()
        coords = reducer.fit_transform(vectors)
        seconds = time.perf_counter() - started
        fitted = reducer.fit_indices_ if reducer.fit_indices_ is not None else np.arange(args.n)
        placed = np.setdiff1d(np.arange(args.n), fitted)
        result = grid(coords, classes)
        run = {"seconds": seconds, "loadavg": machine()["loadavg_1_5_15"], "best": result["best"],
               "knn10_class_agreement_fitted": knn_agreement(coords, classes, fitted),
               "knn10_class_agreement_placed": knn_agreement(coords, classes, placed) if placed.size else None,
               "params": reducer.params_}
        # agreement with the full fit's clustering at the full fit's best settings
        for clusterer_name in ("dbscan", "hdbscan"):
            best = runs.get("full", run)["best"][clusterer_name]
            clusterer = (DBSCANClusterer(eps=best["eps_knn"], min_samples=10, eps_scale="knn")
                         if clusterer_name == "dbscan" else HDBSCANClusterer(min_cluster_size=best["min_cluster_size"]))
            labels = clusterer.fit(coords).labels_
            if name == "full":
                reference_labels[clusterer_name] = labels
            run[f"ari_with_full_{clusterer_name}"] = adjusted_rand_score(reference_labels[clusterer_name], labels)
        runs[name] = run
        print(f"{name}: {seconds:.1f}s, best NMI DBSCAN {run['best']['dbscan']['nmi']:.3f} HDBSCAN "
              f"{run['best']['hdbscan']['nmi']:.3f}; 10-NN class agreement fitted "
              f"{run['knn10_class_agreement_fitted']:.3f} placed {run['knn10_class_agreement_placed']}; "
              f"ARI with full {run['ari_with_full_dbscan']:.3f} / {run['ari_with_full_hdbscan']:.3f}", flush=True)
    write_result(f"subsample-{args.data}-{args.n}", {"machine": machine(), "data": args.data, "n": args.n,
                                                     "sample": args.sample, "runs": runs})


if __name__ == "__main__":
    main()
