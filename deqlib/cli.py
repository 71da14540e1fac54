"""The ``deq`` command line: the same functions as the notebooks, for runs too big for one."""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import pkgutil
import sys
from pathlib import Path

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
    except KeyboardInterrupt:
        # Ctrl-C: every cache file is written atomically, so what finished is kept.
        print(f"deq {args.command}: interrupted; finished work is cached (complete shards, stage caches): "
              "run the same command again to resume", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        # Expected user errors: one clear line, no traceback (use -v for details).
        if args.verbose:
            raise
        print(f"deq {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # disk full, a folder where a file belongs, permissions: name the file and the fix
        if args.verbose:
            raise
        print(f"deq {args.command}: error: {os_error_message(exc)}", file=sys.stderr)
        return 1


def os_error_message(exc: OSError) -> str:
    """One line for an operating-system error: what happened, to which file, and what to do."""
    where = exc.filename if exc.filename is not None else "a file"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on the device writing {where}; free disk space or write elsewhere (--output)"
    if exc.errno == errno.EISDIR:
        return f"{where} is a folder, but a file path is needed here; pass a file name (e.g. {Path(str(where)) / 'bank.parquet'})"
    if exc.errno == errno.ENOTDIR:
        return f"{where}: a path component is a file, but a folder is needed here; pass a folder path"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {where} ({exc.strerror}); make it writable or write elsewhere (--output)"
    return f"{where}: {exc.strerror or exc}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
