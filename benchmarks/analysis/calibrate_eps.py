"""Calibrate the scale-aware eps and show that presets then cluster alike with both reducers.

    .venv/bin/python benchmarks/analysis/calibrate_eps.py [--data effnet|pixels] [--sizes 2000 5000 10000 20000]

For each N: the official scikit-learn t-SNE and deqlib's default openTSNE of the same points
(t-SNE coordinates cached under data/interim/bench-analysis/cache, so re-runs are quick).
Records each output's spread and median 10-NN distance (``d10``), fits
``d10_sklearn(N) = at_10k * (N / 10_000) ** exponent`` (the constant of
``deqlib.cluster.OFFICIAL_KNN_SCALE``), and for the paper's eps values {1.0, 1.5, 2.0}
(min_samples 10) compares three clusterings: the official one (raw eps on scikit-learn's
output), openTSNE with the raw eps (what happens without rescaling) and openTSNE with
``eps_scale="official"``: number of clusters, noise, NMI with the classes, and ARI with the
official clustering.
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.metrics import adjusted_rand_score

from common import EMBED_DIR, load_embeddings, machine, sample_ids, write_result
from deqlib.alignment import alignment_scores
from deqlib.cluster import OFFICIAL_KNN_SCALE, DBSCANClusterer, knn_distance_scale
from deqlib.pipeline import analyze
from deqlib.stages import build_stages

PRESET_EPS = (1.0, 1.5, 2.0)


def coords_of(mode: str, vectors, ids) -> tuple[np.ndarray, dict]:
    result = analyze(embeddings=vectors, sample_ids=ids, stages=build_stages(mode),
                     cache=EMBED_DIR / "cache" / "analysis")
    return result.samples[["x", "y", "z"]].to_numpy(), result.params["reduce"]


def summary(labels, classes, official=None) -> dict:
    out = {"n_clusters": int(np.unique(labels[labels >= 0]).size), "noise_fraction": float((labels < 0).mean()),
           "nmi": alignment_scores(labels, classes)["nmi"]}
    if official is not None:
        out["ari_with_official"] = adjusted_rand_score(official, labels)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=("effnet", "pixels"), default="effnet")
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000, 10000, 20000])
    args = parser.parse_args()
    runs = []
    for n in args.sizes:
        vectors, classes = load_embeddings(args.data, n)
        ids = sample_ids(n)
        sk, _ = coords_of("reference", vectors, ids)
        ot, _ = coords_of("default", vectors, ids)
        run = {"n": n, "sklearn": {"spread": float(np.ptp(sk, 0).max()), "d10": knn_distance_scale(sk, 10)},
               "opentsne": {"spread": float(np.ptp(ot, 0).max()), "d10": knn_distance_scale(ot, 10)}, "presets": []}
        run["d10_ratio"] = run["opentsne"]["d10"] / run["sklearn"]["d10"]
        run["spread_ratio"] = run["opentsne"]["spread"] / run["sklearn"]["spread"]
        for eps in PRESET_EPS:
            official = DBSCANClusterer(eps=eps, min_samples=10, eps_scale="raw").fit(sk).labels_
            raw_ot = DBSCANClusterer(eps=eps, min_samples=10, eps_scale="raw").fit(ot).labels_
            scaled = DBSCANClusterer(eps=eps, min_samples=10, eps_scale="official")
            scaled_ot = scaled.fit(ot).labels_
            scaled_sk = scaled.fit(sk).labels_
            run["presets"].append({
                "eps": eps, "official": summary(official, classes),
                "opentsne_raw_eps": summary(raw_ot, classes, official),
                "opentsne_scaled_eps": summary(scaled_ot, classes, official),
                "sklearn_scaled_eps": summary(scaled_sk, classes, official),
                "scaled_eps_on_opentsne": scaled.effective_eps(ot)[0],
                "scaled_eps_on_sklearn": scaled.effective_eps(sk)[0]})
            p = run["presets"][-1]
            print(f"N={n} eps={eps}: official {p['official']}; openTSNE raw {p['opentsne_raw_eps']}; "
                  f"openTSNE scaled {p['opentsne_scaled_eps']}", flush=True)
        print(f"N={n}: d10 sklearn {run['sklearn']['d10']:.3f} openTSNE {run['opentsne']['d10']:.3f} "
              f"(ratio {run['d10_ratio']:.2f}); spread {run['sklearn']['spread']:.1f} vs "
              f"{run['opentsne']['spread']:.1f}", flush=True)
        runs.append(run)
    sizes = np.array([r["n"] for r in runs], dtype=float)
    d10 = np.array([r["sklearn"]["d10"] for r in runs])
    exponent, log_at_10k = np.polyfit(np.log(sizes / 10_000), np.log(d10), 1) if len(runs) > 1 else (0.0, np.log(d10[0]))
    fitted = {"at_10k": float(np.exp(log_at_10k)), "exponent": float(exponent)}
    print(f"d10_sklearn(N) = {fitted['at_10k']:.3f} * (N/10k)^{fitted['exponent']:.3f}; "
          f"deqlib.cluster.OFFICIAL_KNN_SCALE = {OFFICIAL_KNN_SCALE}")
    write_result(f"calibrate_eps-{args.data}", {"machine": machine(), "data": args.data, "runs": runs,
                                                "fitted_official_knn_scale": fitted,
                                                "deqlib_official_knn_scale": OFFICIAL_KNN_SCALE})


if __name__ == "__main__":
    main()
