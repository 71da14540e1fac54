"""``deq notebook``: list the workbook's notebooks or execute one with parameters (papermill)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any


def parse_value(text: str) -> Any:
    """A ``-p`` value: JSON when it parses (numbers, true/false/null, lists, dicts), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _quiet_papermill(args: argparse.Namespace) -> None:
    # papermill logs every input/output path at INFO; keep them for -v only.
    if not getattr(args, "verbose", False):
        logging.getLogger("papermill").setLevel(logging.WARNING)


def register(subparsers) -> None:
    parser = subparsers.add_parser("notebook", help="list or execute the workbook's notebooks (papermill)")
    actions = parser.add_subparsers(dest="notebook_command", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="list notebooks/*.ipynb")
    listing.set_defaults(func=list_command)

    run = actions.add_parser(
        "run", help="execute one notebook headlessly; the executed copy goes to build/notebooks/",
        description="Execute one notebook with papermill, e.g.: deq notebook run 01 -p etas '[0, 0.5]' -p gammas '[2]'",
    )
    run.add_argument("name", help="notebook path, name or number prefix (e.g. 01)")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                     help="set a parameter of the cell tagged 'parameters'; VALUE is read as JSON when it parses")
    run.add_argument("--output-dir", type=Path, default=None,
                     help="folder for the executed notebook (default: build/notebooks)")
    run.add_argument("--kernel", default=None, help="Jupyter kernel (default: 'deqlib', else 'python3')")
    run.add_argument("--timeout", type=float, default=None, help="seconds allowed per cell (default: no limit)")
    run.set_defaults(func=run_command)

    generate = actions.add_parser(
        "generate", help="write the dataset notebooks (02-05) from notebooks/templates/ (--check: only compare)",
        description="Render notebooks/<name>.ipynb from notebooks/templates/dataset_notebook.cells (the shared flow) "
                    "and notebooks/templates/<name>.cells (the dataset's narrative, parameters and own cells).")
    generate.add_argument("names", nargs="*", help="which notebooks (default: every one with a .cells file)")
    generate.add_argument("--check", action="store_true",
                          help="write nothing; exit 1 when a committed notebook differs from its rendering")
    generate.set_defaults(func=generate_command)


def list_command(args: argparse.Namespace) -> int:
    from deqlib.notebooks import MAIN_NOTEBOOKS, list_notebooks

    for path in list_notebooks():
        role = "main job" if path.stem in MAIN_NOTEBOOKS else "on demand"
        print(f"{path.stem}  ({role})")
    return 0


def run_command(args: argparse.Namespace) -> int:
    from deqlib.notebooks import execute_notebook

    _quiet_papermill(args)
    parameters = {key: parse_value(value) for key, value in args.parameter}
    executed = execute_notebook(args.name, parameters=parameters, output_dir=args.output_dir,
                                kernel_name=args.kernel, timeout=args.timeout)
    print(executed)
    return 0


def generate_command(args: argparse.Namespace) -> int:
    from deqlib.notebook_templates import generate

    changed = generate(args.names or None, check=args.check)
    for name, differs in changed.items():
        state = ("differs from its template" if args.check else "written") if differs else "up to date"
        print(f"notebooks/{name}.ipynb: {state}")
    if args.check and any(changed.values()):
        print("edit notebooks/templates/*.cells (not the .ipynb files), then run `deq notebook generate`")
        return 1
    return 0
