"""``deq train-demo``: does the DatasetEquity weight help? Paired, multi-seed experiment on Fashion-MNIST."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train-demo",
        help="run the factorial training experiment (signal x weight, baselines, matched placebo, AUC sweep; "
             "frozen head and small CNN; paired differences against CE, Holm-corrected)",
        description=("Rare classes (long tail, random class order per seed) and rare conditions (5%% of each "
                     "class: blurred, darkened, fogged); signals oracle-rare, oracle-class, the label-free "
                     "signals of ExperimentConfig.signals (registry names) and a placebo matched to the oracle, "
                     "crossed with the weights eq4(1,5), eq4(0.3,5), cb(4), cb(17), rank(10). Every (cell, seed) "
                     "row is cached as it is trained (--resume continues). Writes training_gfl_runs.csv, "
                     "training_gfl_results.csv, training_gfl_signal_ranking.csv, training_gfl_auc_sweep.csv, "
                     "training_gfl_cost.csv and two figures. See docs/training.md."),
    )
    parser.add_argument("--quick", action="store_true",
                        help="small sets, 2 seeds, 4 epochs (checks the mechanics; writes to build/train-demo-quick)")
    parser.add_argument("--seeds", type=int, default=None, help="frozen-head seeds per arm (default 10)")
    parser.add_argument("--cnn-seeds", type=int, default=None, help="CNN seeds per arm (default 20)")
    parser.add_argument("--cnn-weights", nargs="+", default=None, metavar="WEIGHT",
                        help="the CNN's fractional design: the weights (ExperimentConfig.weights names) every signal "
                             "trains with on the CNN (default eq4(0.3,5) cb(17) rank(10))")
    parser.add_argument("--cnn-settings", nargs="+", default=None, metavar="SETTING",
                        help="the settings the CNN trains in (default: every setting)")
    parser.add_argument("--max-epochs", type=int, default=None,
                        help="most epochs per run, both models (default 300 frozen head, 150 CNN; early stopping "
                             "on the unweighted validation loss ends runs long before)")
    parser.add_argument("--jobs", type=int, default=1, help="(setting, seed) tasks in parallel processes (default 1)")
    parser.add_argument("--from-saved", action="store_true",
                        help="do not train: rewrite the table and figure from the saved per-seed rows")
    parser.add_argument("--resume", action="store_true",
                        help="keep the (cell, seed) rows already cached in the output folder's training_gfl_rows/")
    parser.add_argument("--output-dir", type=Path, default=None, help="where the tables and plot go (default figures/)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deqlib.experiment import experiment_config, output_folder, reproduce

    config = experiment_config(quick=args.quick, seeds=args.seeds, max_epochs=args.max_epochs,
                               cnn_seeds=args.cnn_seeds)
    if args.cnn_weights is not None:
        config.cnn_weights = tuple(args.cnn_weights)
    if args.cnn_settings is not None:
        unknown = sorted(set(args.cnn_settings) - set(config.settings))
        if unknown:
            raise SystemExit(f"--cnn-settings: unknown setting(s) {unknown}; choose from {list(config.settings)}")
        config.cnn_settings = tuple(args.cnn_settings)
    folder = args.output_dir or output_folder(args.quick)
    out = reproduce(config, folder, rerun=not args.from_saved, n_jobs=args.jobs, resume=args.resume,
                    progress=True, log=print)
    summary = out["summary"]
    columns = ["setting", "model", "arm", "n_seeds", "mean", "diff_vs_ce", "holm_low", "holm_high", "p_holm",
               "weight_ratio", "signal_auc", "signal_ap", "hit_cap"]
    part = summary[summary.metric == "accuracy_rare"]
    print(part[[c for c in columns if c in part.columns]].round(4).to_string(index=False))
    if "hit_cap" in out["runs"].columns:
        capped = out["runs"].groupby("model").hit_cap.agg(["sum", "count"])
        print("runs that hit the epoch cap: " + ", ".join(f"{m} {int(r['sum'])} of {int(r['count'])}"
                                                          for m, r in capped.iterrows()))
    print(f"{out['source']}: {len(out['runs'])} runs, {out['seconds']:.0f} s; wrote "
          + ", ".join(str(p) for p in out["written"].values()))
    return 0
