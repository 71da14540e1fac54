"""``deq sweep``: execute a notebook over a parameter grid with papermill and print the gathered table."""

from __future__ import annotations

import argparse
from pathlib import Path


def _axis(text: str) -> tuple[str, list]:
    from deqlib.commands.notebook import parse_value

    name, sep, values = text.partition("=")
    if not sep or not name or not values:
        raise argparse.ArgumentTypeError(f"--grid takes NAME=V1,V2,..., got {text!r}")
    return name, [parse_value(v) for v in values.split(",")]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "sweep", help="run a notebook over a parameter grid (papermill) and gather each run's summary",
        description="Execute NOTEBOOK once per grid point, each into its own folder, and print one row per run.")
    parser.add_argument("notebook", help="notebook name, number prefix or path (e.g. 00_quickstart)")
    parser.add_argument("--grid", type=_axis, action="append", required=True, metavar="NAME=V1,V2",
                        help="one axis of the grid; repeat for more axes. NAME may set one key of a dict "
                             "parameter: --grid clusterer_params.eps=0.5,1,2 (the table shows it as eps)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="a parameter held fixed in every run (JSON values are parsed)")
    parser.add_argument("--output-root", type=Path, default=None, help="runs folder (default build/sweeps/<notebook>)")
    parser.add_argument("--force", action="store_true", help="re-run points that already have a summary")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deqlib.commands.notebook import _quiet_papermill, parse_value
    from deqlib.sweep import parameter_grid, run_sweep

    _quiet_papermill(args)
    grid = parameter_grid(**dict(args.grid))
    base = {name: parse_value(value) for name, value in args.parameter}
    table = run_sweep(args.notebook, grid, base, output_root=args.output_root, force=args.force)
    shown = [c for c in table.columns if c != "likelihood_counts" and not c.startswith(("likelihood_q", "weight_q"))]
    print(table[shown].to_string(index=False))
    return 1 if (table["status"] == "failed").any() else 0
