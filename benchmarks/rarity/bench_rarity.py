"""The rarity benchmark: how well each registered rarity signal finds planted rare subpopulations.

    .venv/bin/python benchmarks/rarity/bench_rarity.py embed            # the universe, once per encoder
    .venv/bin/python benchmarks/rarity/bench_rarity.py run              # every cell not cached yet, then the table
    .venv/bin/python benchmarks/rarity/bench_rarity.py run --quick      # tiny N, for tests
    .venv/bin/python benchmarks/rarity/bench_rarity.py table            # the table from the cached cells

See benchmarks/rarity/README.md for the tasks, metrics, tiers and caches.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # benchmarks/_host.py

import universe as U  # noqa: E402

ENCODERS = ("efficientnet-lite0", "efficientnet-lite2")


def cmd_embed(args) -> None:
    spec = U.QUICK if args.quick else U.FULL
    for encoder in args.encoders:
        U.embed_universe(spec, encoder, progress=True, threads=args.threads)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    embed = sub.add_parser("embed", help="embed the universe and the altered candidates (cached)")
    embed.add_argument("--encoders", nargs="+", default=list(ENCODERS))
    embed.add_argument("--quick", action="store_true", help="the tiny universe of --quick runs")
    embed.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared machine)")
    embed.set_defaults(func=cmd_embed)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
