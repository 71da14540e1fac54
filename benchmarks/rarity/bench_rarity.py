"""The rarity benchmark: how well each registered rarity signal finds planted rare subpopulations.

    .venv/bin/python benchmarks/rarity/bench_rarity.py embed            # the universe, once per encoder
    .venv/bin/python benchmarks/rarity/bench_rarity.py run              # every cell not cached yet, then the table
    .venv/bin/python benchmarks/rarity/bench_rarity.py run --quick      # tiny N, for tests
    .venv/bin/python benchmarks/rarity/bench_rarity.py table            # the table from the cached cells

See benchmarks/rarity/README.md for the tasks, metrics, tiers and caches.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

# One OpenMP/BLAS thread unless the caller sets more: scikit-learn's t-SNE and numpy then give the same
# numbers on any core count, and no thread spins waiting for a descheduled sibling on a shared machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # benchmarks/_host.py

import universe as U  # noqa: E402
from _host import cpu_model  # noqa: E402

from deqlib._atomic import write_text_atomic  # noqa: E402
from deqlib.recovery import Evaluator, SignalVariant, evaluate_variant, probe_ceiling, signal_variants  # noqa: E402

ENCODERS = ("efficientnet-lite0", "efficientnet-lite2")
RESULTS = HERE / "results"
CELLS = U.ROOT / "cells"
N_FULL, N_QUICK = 5000, 100


def cmd_embed(args) -> None:
    spec = U.QUICK if args.quick else U.FULL
    for encoder in args.encoders:
        U.embed_universe(spec, encoder, progress=True, threads=args.threads)


def host() -> dict:
    import hdbscan
    import openTSNE
    import sklearn
    import torch

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True,
                                check=False).stdout.strip()
    except OSError:
        commit = ""
    return {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "cpu": cpu_model(),
            "cores": os.cpu_count(), "load_average": [round(v, 2) for v in os.getloadavg()],
            "python": platform.python_version(), "numpy": np.__version__, "scikit-learn": sklearn.__version__,
            "torch": torch.__version__, "openTSNE": openTSNE.__version__,
            "hdbscan": getattr(hdbscan, "__version__", "?"), "git_commit": commit}


def cell_path(encoder: str, spec, n: int, task_name: str, seed: int, label: str) -> Path:
    safe = label.replace("/", "_")
    return CELLS / encoder / f"{spec.tag}-n{n}" / task_name / f"seed{seed}" / f"{safe}.json"


def read_cell(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # absent or damaged (a damaged cell is recomputed)


def write_cell(path: Path, record: dict) -> None:
    write_text_atomic(path, json.dumps(record, indent=1, default=float))


def reference_analysis_seconds(X: np.ndarray, variants=()) -> float:
    """One default analysis (openTSNE + DBSCAN, eq. 3) of the pool: the cost yardstick of this run.

    Every reducer the variants use runs once first on 200 rows, so that imports and numba's JIT
    compilation are not charged to the first cell that uses it.
    """
    warm = Evaluator(X[: min(len(X), 200)])
    for reducer, clusterer in {("opentsne", "dbscan")} | {(v.reducer, v.clusterer) for v in variants if v.reducer}:
        warm.analysis(reducer, clusterer, seed=33)
    _, seconds = Evaluator(X).analysis("opentsne", "dbscan", seed=33)
    return seconds


def plan(args) -> tuple:
    spec = U.QUICK if args.quick else U.FULL
    n = N_QUICK if args.quick else args.n
    tasks = U.all_tasks()
    if args.tasks:
        tasks = [t for t in tasks if t.name in args.tasks or (t.condition or "rare-classes") in args.tasks]
    variants = signal_variants(args.signals, args.reducers, args.clusterers)
    return spec, n, tasks, variants


def cmd_run(args) -> None:
    spec, n, tasks, variants = plan(args)
    seeds = list(range(args.seeds))
    heavy_seeds = seeds[: args.heavy_seeds]
    heavy_tasks = set(args.heavy_tasks) if args.heavy_tasks else None
    encoders = args.encoders
    if args.quick:
        for encoder in encoders:
            U.embed_universe(spec, encoder, progress=True, threads=args.threads)
    run_info = {"host": host(), "spec": {**spec.__dict__, "conditions": list(spec.conditions)}, "n": n,
                "seeds": seeds, "heavy_seeds": heavy_seeds, "heavy_encoders": args.heavy_encoders,
                "heavy_tasks": sorted(heavy_tasks) if heavy_tasks else "all", "K": args.K,
                "variants": [v.label for v in variants], "reference_seconds": {}}
    todo = [(e, t, s) for e in encoders for t in tasks for s in seeds]
    started = time.perf_counter()
    for number, (encoder, task, seed) in enumerate(todo, 1):
        universe = U.load_universe(spec, encoder)
        heavy = (encoder in args.heavy_encoders and seed in heavy_seeds
                 and (heavy_tasks is None or task.name in heavy_tasks))
        chosen = [v for v in variants if v.tier == "cheap" or heavy]
        pending = [v for v in chosen if read_cell(cell_path(encoder, spec, n, task.name, seed, v.label)) is None]
        probe_file = cell_path(encoder, spec, n, task.name, seed, "_probe")
        if not pending and read_cell(probe_file) is not None:
            continue
        pool = U.draw_pool(universe, task, seed, n)
        if encoder not in run_info["reference_seconds"]:
            run_info["reference_seconds"][encoder] = reference_analysis_seconds(pool["X"], chosen)
            print(f"[{encoder}] one analysis of {n:,} samples: {run_info['reference_seconds'][encoder]:.1f} s "
                  "(the cost yardstick of this run)", flush=True)
        reference = run_info["reference_seconds"][encoder]
        if read_cell(probe_file) is None:
            t0 = time.perf_counter()
            write_cell(probe_file, {"probe_auc": probe_ceiling(pool["X"], pool["rare"], seed=seed),
                                    "seconds": time.perf_counter() - t0, "n_rare": pool["n_rare"]})
        evaluator = Evaluator(pool["X"], K=args.K)
        for variant in pending:
            t0 = time.perf_counter()
            try:
                record = evaluate_variant(evaluator, variant, pool["rare"], seed)
            except Exception as exc:  # a signal that fails is reported, not hidden, and not cached
                print(f"  {variant.label}: FAILED {type(exc).__name__}: {exc}", flush=True)
                continue
            record.update(encoder=encoder, task=task.name, seed=seed, n=n, n_rare=pool["n_rare"],
                          reference_seconds=reference, cost_ratio=record["seconds"] / reference,
                          host_date=run_info["host"]["date"], load_average=list(os.getloadavg()))
            write_cell(cell_path(encoder, spec, n, task.name, seed, variant.label), record)
            print(f"[{number}/{len(todo)} {encoder} {task.name} seed {seed}] {variant.label}: AUC "
                  f"{record['roc_auc']:.3f} AP/prev {record['ap_over_prevalence']:.1f} rho {record['spearman_ab']:.3f}"
                  f" ({time.perf_counter() - t0:.1f} s, elapsed {time.perf_counter() - started:.0f} s)", flush=True)
    write_results(args, run_info)


def collect(spec, n: int, encoders, tasks) -> tuple[list[dict], list[dict]]:
    cells, probes = [], []
    for encoder in encoders:
        for task in tasks:
            folder = CELLS / encoder / f"{spec.tag}-n{n}" / task.name
            for path in sorted(folder.glob("seed*/*.json")):
                record = read_cell(path)
                if record is None:
                    continue
                if path.stem == "_probe":
                    probes.append({"encoder": encoder, "task": task.name, "seed": int(path.parent.name[4:]), **record})
                else:
                    cells.append(record)
    return cells, probes


def write_results(args, run_info: dict) -> None:
    import pandas as pd

    from table import markdown_table

    spec, n, tasks, _ = plan(args)
    cells, probes = collect(spec, n, args.encoders, tasks)
    if not cells:
        print("no cells cached yet: nothing to tabulate")
        return
    frame, probe_frame = pd.DataFrame(cells), pd.DataFrame(probes)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    kind = "quick" if args.quick else "full"
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = args.out or RESULTS
    run_info = {**run_info, "host": run_info.get("host") or host()}
    payload = {"run": run_info, "cells": cells, "probes": probes}
    json_path = Path(out) / f"rarity-{kind}-{stamp}.json"
    write_text_atomic(json_path, json.dumps(payload, indent=1, default=float))
    md_path = Path(out) / f"rarity-{kind}-{stamp}.md"
    write_text_atomic(md_path, markdown_table(frame, probe_frame, run_info))
    print(f"wrote {json_path} and {md_path}")
    if args.plot:
        from deqlib.plots.rarity import auc_heatmap
        from deqlib.plots.png import save_figure

        for encoder in args.encoders:
            part = frame[frame.encoder == encoder]
            if len(part):
                figure = auc_heatmap(part, probe_frame[probe_frame.encoder == encoder], title=f"{encoder}, N = {n:,}")
                path = Path(out) / f"rarity-{kind}-{encoder}-{stamp}.png"
                save_figure(figure, path, parameters={"encoder": encoder, "n": n, "kind": kind})
                print(f"wrote {path}")


def cmd_table(args) -> None:
    spec, n, _, _ = plan(args)
    write_results(args, {"host": host(), "note": "tabulated from the cached cells", "n": n,
                         "spec": {**spec.__dict__, "conditions": list(spec.conditions)}})


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    embed = sub.add_parser("embed", help="embed the universe and the altered candidates (cached)")
    embed.add_argument("--encoders", nargs="+", default=list(ENCODERS))
    embed.add_argument("--quick", action="store_true", help="the tiny universe of --quick runs")
    embed.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared machine)")
    embed.set_defaults(func=cmd_embed)
    for name, func, text in (("run", cmd_run, "evaluate every cell not cached yet, then write the table"),
                             ("table", cmd_table, "write the results JSON and table from the cached cells")):
        command = sub.add_parser(name, help=text)
        command.add_argument("--quick", action="store_true", help=f"tiny universe and N = {N_QUICK} (tests)")
        command.add_argument("--encoders", nargs="+", default=list(ENCODERS))
        command.add_argument("--n", type=int, default=N_FULL, help="pool size (ignored with --quick)")
        command.add_argument("--seeds", type=int, default=5, help="seeds per task (each draws its own pool)")
        command.add_argument("--signals", nargs="+", help="registered signal names (default: every one)")
        command.add_argument("--tasks", nargs="+", help="task names or conditions (default: all)")
        command.add_argument("--reducers", nargs="+", help="reducers for eq. 3 (default: every registered one)")
        command.add_argument("--clusterers", nargs="+", help="clusterers for eq. 3 (default: every registered one)")
        command.add_argument("--heavy-seeds", type=int, default=2,
                             help="seeds on which analysis and consensus signals run (the first ones)")
        command.add_argument("--heavy-encoders", nargs="+", default=["efficientnet-lite0"])
        command.add_argument("--heavy-tasks", nargs="+", help="task names for the analysis tier (default: all)")
        command.add_argument("--K", type=int, default=5, help="runs per consensus bank")
        command.add_argument("--threads", type=int, default=1)
        command.add_argument("--plot", action="store_true", help="also write the AUC heat map per encoder")
        command.add_argument("--out", help="folder for the results (default benchmarks/rarity/results)")
        command.set_defaults(func=func)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
