"""``deq figures``: regenerate figures/ by executing the main-job notebooks with papermill.

``bash workbook.sh main`` runs this command. Executed notebooks go to ``build/notebooks``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


def _quiet_papermill(args: argparse.Namespace) -> None:
    # papermill logs every input/output path at INFO; keep them for -v only.
    if not getattr(args, "verbose", False):
        logging.getLogger("papermill").setLevel(logging.WARNING)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "figures",
        help="execute the main-job notebooks headlessly (papermill) and regenerate figures/",
        description=(
            "Execute the main-job notebooks in order with papermill, write their figures and check "
            "that every expected figure was written. Executed copies go to build/notebooks/."
        ),
    )
    parser.add_argument("--only", nargs="+", metavar="NAME", default=None,
                        help="run only these notebooks (name or number prefix, e.g. 01 90)")
    parser.add_argument("--output-dir", type=Path, default=None,
                        help="figures folder (default: $DEQ_FIGURES_DIR or figures/)")
    parser.add_argument("--build-dir", type=Path, default=None,
                        help="folder for the executed notebooks (default: $DEQ_BUILD_DIR/notebooks or build/notebooks)")
    parser.add_argument("--kernel", default=None,
                        help="Jupyter kernel (default: 'deqlib', else 'python3' with a warning)")
    parser.add_argument("--list", action="store_true",
                        help="list the main-job notebooks and their figures, run nothing")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here so that `deq --help` stays fast.
    from deqlib.notebooks import MAIN_NOTEBOOKS, regenerate_figures

    if args.list:
        for name in sorted(MAIN_NOTEBOOKS):
            print(f"{name}: {', '.join(MAIN_NOTEBOOKS[name]) or '(no figures)'}")
        return 0
    _quiet_papermill(args)
    runs = regenerate_figures(notebooks=args.only, figures_dir=args.output_dir, build_dir=args.build_dir,
                              kernel_name=args.kernel, progress=False)
    for done in runs:
        figures = ", ".join(str(p) for p in done.figures) or "no figures"
        print(f"{done.name} ({done.seconds:.1f} s): {figures}; executed copy {done.executed}")
    return 0
