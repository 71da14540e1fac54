"""``deq sources``: the registered dataset kinds and encoders, and where to get each dataset."""

from __future__ import annotations

import argparse
import textwrap

from deqlib.commands import DefaultsHelpFormatter


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "sources",
        help="list the dataset kinds (--source) and encoders (--encoder), with where to get each dataset",
        description="List every registered source kind with its summary and how to get its data, and every "
                    "registered encoder with whether its default weights work offline.",
        formatter_class=DefaultsHelpFormatter,
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deqlib.encoders import ENCODERS
    from deqlib.sources import SOURCES, download_hint

    print("source kinds (--source KIND):")
    for kind in SOURCES.names():
        print(f"  {kind}: {SOURCES.entry(kind).summary}")
        print(textwrap.fill(download_hint(kind), width=100, initial_indent="      ", subsequent_indent="      ",
                            break_on_hyphens=False))
    print("encoders (--encoder NAME):")
    for name in ENCODERS.names():
        entry = ENCODERS.entry(name)
        weights = "offline" if entry.extra.get("offline") else "downloads its weights (or --weights FILE)"
        missing = entry.missing_packages()
        needs = f"; not installed here: pip install {entry.extra.get('pip', ' '.join(missing))}" if missing else ""
        print(f"  {entry.extra.get('spelling', name)}: {entry.summary}; {weights}{needs}")
    return 0
