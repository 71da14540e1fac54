"""Issue 12's numbers: how stable the likelihoods are, what a consensus buys, how faithful the map is.

    cd benchmarks/stability
    ../../.venv/bin/python bench_stability.py consensus --n 20000     # agreement against K, cost
    ../../.venv/bin/python bench_stability.py faithfulness --n 20000  # default vs reference map
    ../../.venv/bin/python bench_stability.py sources --n 3000        # each source of variation
    ../../.venv/bin/python bench_stability.py report --n 70000        # `deq stability`'s work on all images
    ../../.venv/bin/python bench_stability.py cost --n 20000          # analysis, K = 5 report, analysis
    ../../.venv/bin/python bench_stability.py cross --n 20000         # both run schedules side by side
    ../../.venv/bin/python bench_stability.py umap --n 20000          # K-run consensus of UMAP + HDBSCAN

Data: Fashion-MNIST EfficientNet-Lite0 vectors (benchmarks/analysis/embed_fashion_mnist.py,
cached). Every result file records the machine, date and load average: the 2 cores were shared
with four other engineers' jobs, so absolute times are pessimistic; ratios within one run count.
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

from deqlib.cluster import DBSCANClusterer, HDBSCANClusterer  # noqa: E402
from deqlib.likelihood import scaled_likelihood  # noqa: E402
from deqlib.pipeline import analyze  # noqa: E402
from deqlib.stages import build_stages  # noqa: E402
from deqlib.reduce import OpenTSNEReducer  # noqa: E402
from deqlib.weights import gfl_weight  # noqa: E402
from deqlib.consensus import coassociation_consensus, knn_graph, spearman  # noqa: E402
from deqlib.stability import (DEFAULT_RUN_SCHEDULE, faithfulness,  # noqa: E402
                              per_sample_stability, run_agreement, stability_runs, summarize_stability)

CLUSTERERS = {
    "dbscan_default": lambda: DBSCANClusterer(eps=1.0, min_samples=10),  # mode='default' without preset
    "hdbscan_mcs25": lambda: HDBSCANClusterer(min_cluster_size=25),  # the quickstart's clusterer
}


def _cluster_all(coords: np.ndarray) -> dict:
    out = {}
    for name, make in CLUSTERERS.items():
        result = make().fit(coords).result_
        out[name] = (result.labels, scaled_likelihood(result.labels, "singleton", coords), result.n_clusters)
    return out


def _clustered(coords: np.ndarray) -> dict:
    """{clusterer: (labels (K, N), likelihoods (K, N), cluster counts)} for K maps."""
    out = {name: ([], [], []) for name in CLUSTERERS}
    for one in coords:
        for name, (labels, likelihood, count) in _cluster_all(one).items():
            out[name][0].append(labels)
            out[name][1].append(likelihood)
            out[name][2].append(int(count))
    return {name: (np.stack(l), np.stack(L), c) for name, (l, L, c) in out.items()}


def consensus(n: int, kmax: int) -> None:
    """Two K = 5 stability reports with disjoint seeds (shared affinities each), one analysis and one
    more full fit for the single-run yardstick; both clusterers on the same maps."""
    X, classes = common.load_embeddings("effnet", n)
    out = {"machine": common.machine(), "n": n, "data": "fashion-mnist effnet-lite0 (bench cache, precision auto=bf16)"}
    # One analysis, as a user runs it (cost yardstick), then the K = 5 stability report, same process.
    started = time.perf_counter()
    one = analyze(embeddings=X, cache=False)
    out["one_analysis_seconds"] = time.perf_counter() - started
    print("one analysis", out["one_analysis_seconds"], flush=True)
    reports = {}
    for side, seeds in (("a", [101 + i for i in range(kmax)]), ("b", [201 + i for i in range(kmax)])):
        started = time.perf_counter()
        reports[side] = stability_runs(X, stages=build_stages(clusterer=CLUSTERERS["dbscan_default"]()), K=kmax,
                                       seeds=seeds, progress=True)
        out[f"stability_seconds_{side}"] = time.perf_counter() - started
        out[f"stability_summary_{side}"] = reports[side].summary
        out[f"stability_runs_{side}"] = reports[side].runs.to_dict("records")
        print(side, out[f"stability_seconds_{side}"], reports[side].report(), flush=True)
    out["K"] = kmax
    out["stability_cost_ratio"] = out["stability_seconds_a"] / out["one_analysis_seconds"]
    started = time.perf_counter()
    full34 = OpenTSNEReducer(random_state=34).fit_transform(X)
    out["full_fit_seconds_seed34"] = time.perf_counter() - started
    full = _clustered(np.stack([one.samples[["x", "y", "z"]].to_numpy(), full34]))
    shared = {side: _clustered(reports[side].coords) for side in reports}
    neighbors = knn_graph(X)
    ks = [k for k in (1, 3, 5, 10) if k <= kmax]
    for name in CLUSTERERS:
        la, La, ca = shared["a"][name]
        lb, Lb, cb = shared["b"][name]
        fl, fL, fc = full[name]
        row = {"n_clusters_a": ca, "n_clusters_b": cb, "n_clusters_full_seed33_34": fc}
        single_full = run_agreement(fl, fL).iloc[0]
        row["single_full_fits_seed33_vs_34"] = {k: float(single_full[k]) for k in ("ari", "spearman",
                                                                                  "weight_moved_share")}
        singles = run_agreement(np.vstack([la, lb]), np.vstack([La, Lb]))
        row["single_shared_runs_all_pairs"] = {"spearman_mean": float(singles["spearman"].mean()),
                                               "spearman_min": float(singles["spearman"].min()),
                                               "ari_mean": float(singles["ari"].mean()),
                                               "weight_moved_share_mean": float(singles["weight_moved_share"].mean())}
        row["within_a"] = summarize_stability(per_sample_stability(La), run_agreement(la, La))
        row["per_k"] = {}
        for k in ks:
            ma, mb = La[:k].mean(axis=0), Lb[:k].mean(axis=0)
            ca_, cb_ = coassociation_consensus(la[:k], neighbors), coassociation_consensus(lb[:k], neighbors)
            lca, lcb = scaled_likelihood(ca_, "singleton"), scaled_likelihood(cb_, "singleton")
            entry = {"mean_spearman": spearman(ma, mb), "coassoc_spearman": spearman(lca, lcb),
                     "mean_weight_moved_share": float((np.abs(gfl_weight(ma) - gfl_weight(mb)) > 0.1).mean()),
                     "coassoc_weight_moved_share": float((np.abs(gfl_weight(lca) - gfl_weight(lcb)) > 0.1).mean()),
                     "coassoc_n_clusters": [int(ca_.max() + 1), int(cb_.max() + 1)],
                     "coassoc_noise": [float((ca_ < 0).mean()), float((cb_ < 0).mean())]}
            row["per_k"][k] = entry
            print(name, k, entry, flush=True)
        out[name] = row
    common.write_result(f"consensus-effnet-{n}", out)


def umap_consensus(n: int, kmax: int) -> None:
    """The K-run evidence docs/analysis.md's UMAP decision lacked: UMAP 3-D + HDBSCAN
    (min_cluster_size 100, the best of bench_registry_parts' grid) and UMAP + the default DBSCAN
    (eps_scale 'knn'), two K = kmax reports with disjoint seeds (101.., 201..), one analysis as the
    cost yardstick, all in this process. Both clusterers run on the same K maps of each side."""
    from deqlib.alignment import alignment_scores
    X, classes = common.load_embeddings("effnet", n)
    out = {"machine": common.machine(), "n": n, "K": kmax,
           "data": "fashion-mnist effnet-lite0 (bench cache, precision auto=bf16)",
           "reducer": "umap (REDUCERS entry defaults: n_neighbors 15, min_dist 0.1, PCA-50, seeded: 1 thread)"}
    clusterers = {"umap_hdbscan_mcs100": ("hdbscan", {"min_cluster_size": 100}),
                  "umap_dbscan_default": ("dbscan", {"eps": 1.0, "min_samples": 10})}
    started = time.perf_counter()
    one = analyze(embeddings=X, cache=False, stages=build_stages(reducer="umap", clusterer="hdbscan",
                                                                 clusterer_params={"min_cluster_size": 100}))
    out["one_analysis_seconds"] = time.perf_counter() - started  # includes numba compilation (first call)
    started = time.perf_counter()
    analyze(embeddings=X, cache=False, stages=build_stages(reducer="umap", clusterer="hdbscan",
                                                           clusterer_params={"min_cluster_size": 100}, seed=34))
    out["one_analysis_seconds_warm"] = time.perf_counter() - started
    print("one analysis", out["one_analysis_seconds"], out["one_analysis_seconds_warm"], flush=True)
    reports = {}
    for side, seeds in (("a", [101 + i for i in range(kmax)]), ("b", [201 + i for i in range(kmax)])):
        stages = build_stages(reducer="umap", clusterer="hdbscan", clusterer_params={"min_cluster_size": 100})
        started = time.perf_counter()
        reports[side] = stability_runs(X, K=kmax, seeds=seeds, stages=stages, progress=True)
        out[f"stability_seconds_{side}"] = time.perf_counter() - started
        print(side, out[f"stability_seconds_{side}"], reports[side].report(), flush=True)
    out["stability_cost_ratio_warm"] = out["stability_seconds_a"] / out["one_analysis_seconds_warm"]
    ks = [k for k in (1, 3, 5, 10) if k <= kmax]
    for name, (clusterer, params) in clusterers.items():
        make = lambda: build_stages(reducer="umap", clusterer=clusterer, clusterer_params=params).clusterer  # noqa: E731
        per_side = {}
        for side in reports:
            labels, likelihoods, counts, nmi = [], [], [], []
            for coords in reports[side].coords:
                result = make().fit(coords).result_
                labels.append(result.labels)
                likelihoods.append(scaled_likelihood(result.labels, "singleton", coords))
                counts.append(int(result.n_clusters))
                nmi.append(float(alignment_scores(result.labels, classes)["nmi"]))
            per_side[side] = (np.stack(labels), np.stack(likelihoods), counts, nmi)
        (la, La, ca, na), (lb, Lb, cb, nb) = per_side["a"], per_side["b"]
        singles = run_agreement(np.vstack([la, lb]), np.vstack([La, Lb]))
        row = {"n_clusters_a": ca, "n_clusters_b": cb, "nmi_a": na, "nmi_b": nb,
               "single_runs_all_pairs": {"spearman_mean": float(singles["spearman"].mean()),
                                         "spearman_min": float(singles["spearman"].min()),
                                         "ari_mean": float(singles["ari"].mean()),
                                         "weight_moved_share_mean": float(singles["weight_moved_share"].mean())},
               "per_k": {}}
        for k in ks:
            ma, mb = La[:k].mean(axis=0), Lb[:k].mean(axis=0)
            row["per_k"][k] = {"mean_spearman": spearman(ma, mb),
                               "mean_weight_moved_share": float((np.abs(gfl_weight(ma) - gfl_weight(mb)) > 0.1).mean())}
            print(name, k, row["per_k"][k], flush=True)
        out[name] = row
    out["machine_after"] = common.machine()
    common.write_result(f"umap_consensus-effnet-{n}", out)


def faithfulness_bench(n: int) -> None:
    X, classes = common.load_embeddings("effnet", n)
    out = {"machine": common.machine(), "n": n}
    for mode in ("default", "reference"):
        started = time.perf_counter()
        result = analyze(embeddings=X, cache=False, stages=build_stages(mode))
        seconds = time.perf_counter() - started
        coords = result.samples[["x", "y", "z"]].to_numpy()
        labels = result.samples["raw_cluster_id"].to_numpy()
        clusterer = DBSCANClusterer(eps=1.0, min_samples=10, eps_scale="official" if mode == "default" else "raw")
        f = faithfulness(X, coords, labels, clusterer)
        from deqlib.alignment import alignment_scores
        f.update({"analysis_seconds": seconds, "n_clusters": result.params["cluster"]["n_clusters"],
                  "noise_fraction": result.params["cluster"]["noise_fraction"],
                  "nmi_classes": alignment_scores(labels, classes)["nmi"]})
        out[mode] = f
        print(mode, f, flush=True)
    common.write_result(f"faithfulness-effnet-{n}", out)


def sources(n: int) -> None:
    """Each source of variation against a baseline run, in default and reference mode."""
    import torch

    X, _ = common.load_embeddings("effnet", n)
    ids = [str(i) for i in range(n)]
    out = {"machine": common.machine(), "n": n,
           "note": "bench vectors were computed with precision='auto' (bf16 autocast on this CPU); "
                   "'precision' re-embeds the same images in float32"}
    variants = {}
    fp32 = _embed_fp32(n)
    if fp32 is not None:
        variants["precision bf16 vs fp32 embedding"] = (fp32, ids, {})
    rng = np.random.default_rng(0)
    variants["rounding noise (float32 eps)"] = (
        (X * (1 + np.finfo(np.float32).eps * rng.standard_normal(X.shape))).astype(np.float32), ids, {})
    perm = rng.permutation(n)
    variants["row order"] = (X[perm], [ids[i] for i in perm], {})
    variants["t-SNE seed"] = (X, ids, {"seed": 34})
    keep = np.sort(rng.choice(n, int(0.8 * n), replace=False))
    variants["subsample 80%"] = (X[keep], [ids[i] for i in keep], {})
    variants["vectors rounded to bf16"] = (torch.from_numpy(X).to(torch.bfloat16).float().numpy(), ids, {})
    for mode in ("default", "reference"):
        base = analyze(embeddings=X, sample_ids=ids, cache=False, stages=build_stages(mode)).samples
        base = base.set_index("sample_id")
        rows = {}
        for name, (vectors, vid, extra) in variants.items():
            other = analyze(embeddings=vectors, sample_ids=vid, cache=False, stages=build_stages(mode, **extra)).samples
            other = other.set_index("sample_id").loc[[i for i in ids if i in set(vid)]]
            b = base.loc[other.index]
            la = np.vstack([b["raw_cluster_id"].to_numpy(), other["raw_cluster_id"].to_numpy()])
            L = np.vstack([b["likelihood"].to_numpy(), other["likelihood"].to_numpy()])
            pair = run_agreement(la, L).iloc[0]
            rows[name] = {"ari": float(pair["ari"]), "spearman": float(pair["spearman"]),
                          "likelihood_changed_share": float((np.abs(L[0] - L[1]) > 1e-12).mean()),
                          "weight_moved_share": float(pair["weight_moved_share"])}
            print(mode, name, rows[name], flush=True)
        out[mode] = rows
    common.write_result(f"sources-effnet-{n}", out)


def _embed_fp32(n: int):
    from embed_fashion_mnist import FashionMNISTImages
    from deqlib.embed import embed_source, get_encoder

    try:
        result = embed_source(FashionMNISTImages(n), get_encoder("efficientnet-lite0"),
                              cache_dir=common.EMBED_DIR / "cache-fp32", progress=False, precision="fp32")
    except Exception as exc:  # recorded, not hidden
        print(f"fp32 embedding failed: {exc}", flush=True)
        return None
    return result.vectors.astype(np.float32)


def report(n: int, run_schedule: str | None = None) -> None:
    X, _ = common.load_embeddings("effnet", n)
    run_schedule = run_schedule or DEFAULT_RUN_SCHEDULE
    out = {"machine": common.machine(), "n": n, "run_schedule": run_schedule}
    for name in ("dbscan_default",):
        started = time.perf_counter()
        result = stability_runs(X, stages=build_stages(clusterer=CLUSTERERS[name]()), K=5, run_schedule=run_schedule,
                                progress=True)
        out[name] = {"seconds": time.perf_counter() - started, "summary": result.summary,
                     "runs": result.runs.to_dict("records")}
        print(result.report(), flush=True)
    out["peak_rss_mib"] = common.peak_rss_mib()
    out["machine_after"] = common.machine()
    common.write_result(f"report-effnet-{n}", out)


def cost(n: int, run_schedule: str) -> None:
    """Issue 12's cost target measured directly: one analysis, a K = 5 report, one analysis again
    (the two analyses bracket the load drift), back to back in one process."""
    X, _ = common.load_embeddings("effnet", n)
    out = {"machine": common.machine(), "n": n, "run_schedule": run_schedule, "steps": []}
    for step in ("analysis", "report", "analysis"):
        load_before = [round(x, 2) for x in os.getloadavg()]
        started = time.perf_counter()
        if step == "analysis":
            analyze(embeddings=X, cache=False)
            extra = {}
        else:
            result = stability_runs(X, stages=build_stages(clusterer=CLUSTERERS["dbscan_default"]()), K=5,
                                    run_schedule=run_schedule, progress=True)
            extra = {"summary": result.summary, "runs": result.runs.to_dict("records")}
        out["steps"].append({"step": step, "seconds": time.perf_counter() - started, "load_before": load_before,
                             "load_after": [round(x, 2) for x in os.getloadavg()], **extra})
        print(step, out["steps"][-1]["seconds"], flush=True)
    analyses = [s["seconds"] for s in out["steps"] if s["step"] == "analysis"]
    out["k5_cost_over_mean_analysis"] = out["steps"][1]["seconds"] / float(np.mean(analyses))
    out["machine_after"] = common.machine()
    common.write_result(f"cost-effnet-{n}-{run_schedule}", out)


def cross(n: int) -> None:
    """The two run schedules in one process: one analysis, a K = 5 report with each schedule (disjoint
    seeds), one analysis again; their costs, and whether the cheaper runs estimate the same consensus
    (Spearman of the two consensus means, to read against the same-schedule A vs B agreement of
    bench_schedules.py)."""
    X, _ = common.load_embeddings("effnet", n)
    out = {"machine": common.machine(), "n": n, "steps": []}
    reports = {}
    for step, schedule, seeds in (("analysis", None, None), ("report", "analysis", [101 + i for i in range(5)]),
                                  ("report", "consensus", [201 + i for i in range(5)]), ("analysis", None, None)):
        load_before = [round(x, 2) for x in os.getloadavg()]
        started = time.perf_counter()
        extra = {}
        if step == "analysis":
            analyze(embeddings=X, cache=False)
        else:
            reports[schedule] = stability_runs(X, stages=build_stages(clusterer=CLUSTERERS["dbscan_default"]()), K=5,
                                               seeds=seeds, run_schedule=schedule, progress=True)
            extra = {"run_schedule": schedule, "seeds": seeds, "summary": reports[schedule].summary,
                     "runs": reports[schedule].runs.to_dict("records")}
        out["steps"].append({"step": step, "seconds": time.perf_counter() - started, "load_before": load_before,
                             "load_after": [round(x, 2) for x in os.getloadavg()], **extra})
        print(step, schedule, out["steps"][-1]["seconds"], flush=True)
    analysis_seconds = float(np.mean([s["seconds"] for s in out["steps"] if s["step"] == "analysis"]))
    for s in out["steps"]:
        if s["step"] == "report":
            out[f"k5_cost_over_mean_analysis_{s['run_schedule']}"] = s["seconds"] / analysis_seconds
    a, b = reports["analysis"], reports["consensus"]
    out["consensus_mean_spearman_analysis_vs_consensus_schedule"] = spearman(a.consensus("consensus-mean"),
                                                                             b.consensus("consensus-mean"))
    out["single_run_spearman_analysis_vs_consensus_schedule"] = [
        spearman(a.likelihoods[i], b.likelihoods[i]) for i in range(5)]
    out["machine_after"] = common.machine()
    print({k: v for k, v in out.items() if k.startswith(("k5", "consensus", "single"))}, flush=True)
    common.write_result(f"cross-effnet-{n}", out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("consensus", "faithfulness", "sources", "report", "cost", "cross", "umap"))
    parser.add_argument("--run-schedule", default=None, help="stability_runs' run_schedule (default: its default)")
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--kmax", type=int, default=10)
    args = parser.parse_args()
    {"consensus": lambda: consensus(args.n, args.kmax), "faithfulness": lambda: faithfulness_bench(args.n),
     "sources": lambda: sources(args.n), "report": lambda: report(args.n, args.run_schedule),
     "cost": lambda: cost(args.n, args.run_schedule or DEFAULT_RUN_SCHEDULE), "cross": lambda: cross(args.n),
     "umap": lambda: umap_consensus(args.n, min(args.kmax, 5))}[args.what]()


if __name__ == "__main__":
    main()
