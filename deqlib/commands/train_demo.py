"""``deq train-demo``: the DatasetEquity weight against plain and class-balanced losses on Fashion-MNIST."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train-demo",
        help="train a small head on Fashion-MNIST embeddings with each loss arm and report accuracies",
        description=("Rare classes (long tail) and rare appearance (5%% inverted): plain CE, CE x GFL weight, "
                     "class-balanced, sampler and other rarity signals; mean and std over seeds."),
    )
    parser.add_argument("--quick", action="store_true", help="small sets, 1 seed, 5 epochs (checks the mechanics)")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds per arm (default 3)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default 30)")
    parser.add_argument("--output-dir", type=Path, default=None, help="where the table and plot go (default figures/)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deqlib import paths
    from deqlib.experiment import ExperimentConfig, plot_results, run_experiment, summarize
    from deqlib._atomic import write_text_atomic

    config = (ExperimentConfig(seeds=(0,), epochs=5, largest_class=300, per_class=150, test_per_class=60)
              if args.quick else ExperimentConfig())
    if args.seeds is not None:
        config.seeds = tuple(range(args.seeds))
    if args.epochs is not None:
        config.epochs = args.epochs
    out = run_experiment(config, progress=True)
    summary = summarize(out["results"])
    folder = args.output_dir or paths.figures_dir()
    write_text_atomic(folder / "training_gfl_results.csv", summary.to_csv(index=False))
    write_text_atomic(folder / "training_gfl_signal_ranking.csv", out["ranking"].to_csv(index=False))
    plot_results(summary, folder / "training_gfl_results.png", {"seeds": len(config.seeds), "epochs": config.epochs})
    print(out["ranking"].round(3).to_string(index=False))
    print(summary.round(3).to_string(index=False))
    print(f"wall time {out['seconds']:.0f} s")
    return 0
