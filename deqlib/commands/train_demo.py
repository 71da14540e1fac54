"""``deq train-demo``: does the DatasetEquity weight help? Paired, multi-seed experiment on Fashion-MNIST."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train-demo",
        help="run the training experiment (CE, class-balanced, oracle, placebo and label-free GFL arms; "
             "frozen head and small CNN; paired differences against CE with 95%% CIs)",
        description=("Rare classes (long tail, random class order per seed) and a rare condition (5%% blurred); "
                     "every seed draws its own data, test set and clustering. Writes training_gfl_runs.csv "
                     "(one row per run), training_gfl_results.csv (paired differences), "
                     "training_gfl_signal_ranking.csv and training_gfl_results.png. "
                     "See docs/training.md."),
    )
    parser.add_argument("--quick", action="store_true",
                        help="small sets, 2 seeds, 4 epochs (checks the mechanics; writes to build/train-demo-quick)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per arm (default 10)")
    parser.add_argument("--max-epochs", type=int, default=None,
                        help="most epochs per run, both models (default 40 frozen head, 20 CNN; early stopping)")
    parser.add_argument("--jobs", type=int, default=1, help="(setting, seed) tasks in parallel processes (default 1)")
    parser.add_argument("--from-saved", action="store_true",
                        help="do not train: rewrite the table and figure from the saved per-seed rows")
    parser.add_argument("--resume", action="store_true",
                        help="keep the (setting, seed) tasks already in the output folder's training_gfl_runs.csv")
    parser.add_argument("--output-dir", type=Path, default=None, help="where the tables and plot go (default figures/)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deqlib.experiment import experiment_config, output_folder, reproduce

    config = experiment_config(quick=args.quick, seeds=args.seeds, max_epochs=args.max_epochs)
    folder = args.output_dir or output_folder(args.quick)
    out = reproduce(config, folder, rerun=not args.from_saved, n_jobs=args.jobs, resume=args.resume,
                    progress=True, log=print)
    summary = out["summary"]
    print(summary[summary.metric == "accuracy_rare"].drop(columns="metric").round(4).to_string(index=False))
    print(f"{out['source']}: {len(out['runs'])} runs, {out['seconds']:.0f} s; wrote "
          + ", ".join(str(p) for p in out["written"].values()))
    return 0
