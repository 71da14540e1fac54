"""How deqlib's default analysis (reduce + cluster + bank) grows with N, and a projection.

    .venv/bin/python benchmarks/analysis/bench_scaling.py [--data effnet] [--sizes 5000 10000 20000 40000 70000]

Each size runs in its own process (so peak memory is that size's), no caches. Fits
``seconds = a * N ** b`` over the sizes and projects to Waymo's 198,068 front images (a full
fit: below the 250,000 subsample threshold) and to 1,000,000 (fit on 100,000 + transform of the
rest, using the transform rate measured by bench_subsample.py when a result file exists).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import RESULTS, load_embeddings, machine, peak_rss_mib, sample_ids, write_result


def one(n: int, data: str) -> dict:
    from deqlib.bank import write_bank
    from deqlib.pipeline import analyze

    vectors, classes = load_embeddings(data, n)
    started = time.perf_counter()
    result = analyze(embeddings=vectors, sample_ids=sample_ids(n), cache=False)
    with tempfile.TemporaryDirectory() as tmp:
        write_bank(Path(tmp) / "bank.parquet", result.bank)
    total = time.perf_counter() - started
    from deqlib.alignment import alignment_scores

    return {"n": n, "seconds_total": total, "seconds": result.timings, "peak_rss_mib": peak_rss_mib(),
            "n_clusters": result.params["cluster"]["n_clusters"], "noise_fraction": result.params["cluster"]["noise_fraction"],
            "nmi_preset": alignment_scores(result.samples["raw_cluster_id"], classes)["nmi"],
            "loadavg": machine()["loadavg_1_5_15"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=("effnet", "pixels"), default="effnet")
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 10000, 20000, 40000, 70000])
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.data)))
        return
    runs = []
    for n in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--data", args.data, "--one", str(n)], check=True,
                             capture_output=True, text=True)
        run = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"N={n}: {run['seconds_total']:.1f}s ({run['seconds']}), peak {run['peak_rss_mib']:.0f} MiB, "
              f"load {run['loadavg']}", flush=True)
        runs.append(run)
    n = np.array([r["n"] for r in runs], dtype=float)
    t = np.array([r["seconds_total"] for r in runs])
    b, log_a = np.polyfit(np.log(n), np.log(t), 1)
    fit = lambda size: float(np.exp(log_a) * size ** b)  # noqa: E731
    projection = {"198068 (full fit)": fit(198_068)}
    transform_rate = None
    for path in sorted(RESULTS.glob(f"subsample-{args.data}-*.json")):
        run = json.loads(path.read_text())
        rest = run["n"] - run["sample"]
        full, sampled = run["runs"]["full"]["seconds"], run["runs"]["sample+transform"]["seconds"]
        transform_rate = {"file": path.name, "sample": run["sample"], "rest": rest, "sampled_seconds": sampled,
                          "full_seconds": full}
    if transform_rate:
        # sampled_seconds = fit on `sample` points + placing the rest; the fit part from the power law
        placement = max(transform_rate["sampled_seconds"] - fit(transform_rate["sample"]), 1e-3)
        transform_rate["points_per_second"] = transform_rate["rest"] / placement
        projection["1000000 (fit 100k + transform 900k)"] = fit(100_000) + 900_000 / transform_rate["points_per_second"]
    projection["1000000 (if it were a full fit)"] = fit(1_000_000)
    print(f"seconds ~ N^{b:.2f}; projections: {projection}")
    write_result(f"scaling-{args.data}", {"machine": machine(), "data": args.data, "runs": runs,
                                          "exponent": b, "coefficient": float(np.exp(log_a)),
                                          "projection_seconds": projection, "transform": transform_rate})


if __name__ == "__main__":
    main()
