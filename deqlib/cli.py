"""The ``deq`` command line: the same functions as the notebooks, for runs too big for one."""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import pkgutil
import signal
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


#: The signals ``deq`` turns into a clean stop, and how the stop is worded.
STOP_SIGNALS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; unwinds like Ctrl-C (DataLoader workers stop quietly on it).

    Parameters
    ----------
    signum : int
        The signal that arrived; ``deq`` exits with ``128 + signum`` (130 for SIGINT, 143 for SIGTERM).
    """

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class StopSignalHandlers:
    """SIGINT and SIGTERM raise :class:`Interrupted` while ``deq`` runs, whatever it inherited.

    A job started in the background (``nohup deq ... &``, CI runners, schedulers) inherits SIGINT
    *ignored*, so Python installs no KeyboardInterrupt handler; SIGTERM, which schedulers send,
    kills Python without unwinding. This context installs one handler for both, so either stops
    the run the same way as Ctrl-C: atomic caches keep what finished, one line, exit 128 + signal.
    A second signal while the first unwinds exits at once (``os._exit``), still with one line.
    The previous handlers come back on exit (``deq`` also runs inside tests and notebooks).
    Outside the main thread (where Python allows no handlers) it does nothing.

    Parameters
    ----------
    command : str
        The subcommand, for the one line printed on a second signal.
    """

    def __init__(self, command: str):
        self.command = command
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame):
        if self.received is not None:  # a second signal while unwinding: stop now
            os.write(2, f"deq {self.command}: {STOP_SIGNALS[signum]} again; stopped at once\n".encode())
            os._exit(128 + signum)
        self.received = signum
        raise Interrupted(signum)

    def __enter__(self) -> StopSignalHandlers:
        try:
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        except ValueError:  # not the main thread of the main interpreter
            self._restore()
        return self

    def _restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()

    def __exit__(self, *exc_info) -> None:
        self._restore()


def _no_third_party_info(record: logging.LogRecord) -> bool:
    """Drop INFO and DEBUG records on the root logger: deqlib logs on named loggers, while some
    libraries (open_clip) call ``logging.info`` directly, which printed "INFO root: ..." lines
    around a one-line refusal. ``-v`` shows them."""
    return record.levelno >= logging.WARNING or record.name != "root"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    if not args.verbose:
        handler.addFilter(_no_third_party_info)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[handler])
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    with StopSignalHandlers(args.command):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    """Run the subcommand; expected failures and stop signals become one line and an exit status."""
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt as exc:
        # Ctrl-C, SIGINT or SIGTERM: every cache file is written atomically, so what finished is kept.
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        print(f"deq {args.command}: {STOP_SIGNALS[signum]} ({signal.Signals(signum).name}); finished work is "
              "cached (complete shards, stage caches): run the same command again to resume", file=sys.stderr)
        return 128 + signum
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
