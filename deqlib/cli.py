"""The ``deq`` command line: the same functions as the notebooks, for runs too big for one."""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from deqlib import __version__
from deqlib import commands as _commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deq",
        description=(
            "DatasetEquity workbook: embed images, reduce with 3-D t-SNE, cluster, write "
            "likelihood banks, and weight training losses with the DatasetEquity "
            "Generalized Focal Loss weight (Shrivastava et al. 2023; not Li et al. 2020)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"deq (deqlib) {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(_commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{_commands.__name__}.{info.name}")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        # Expected user errors: one clear line, no traceback (use -v for details).
        if args.verbose:
            raise
        print(f"deq {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
