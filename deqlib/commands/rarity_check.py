"""``deq rarity-check``: plant rare conditions into a sample of your images and see which signal finds them."""

from __future__ import annotations

import argparse
from pathlib import Path

from deqlib import paths
from deqlib.commands import (
    DEFAULT_ENCODER, ENCODERS_HELP, DefaultsHelpFormatter, add_source_arguments, source_from_args)


DEFAULT_N_SAMPLES = 1000  # --n-samples when not given; a smaller dataset (a user's folder) is taken whole


def register(subparsers) -> None:
    from deqlib.conditions import DRIVING_CONDITIONS

    parser = subparsers.add_parser(
        "rarity-check",
        help="plant rare conditions (fog, night, blur, ...) into a sample of your images: which signal finds them?",
        description=(
            "Draw a seeded sample of a dataset's images, show a small share of it with each condition of "
            "deqlib.conditions (night, fog, rain, snow, glare, defocus, motion blur, sensor noise, dead pixels, "
            "lens dirt), embed with your encoder and report how well every registered rarity signal finds the "
            "planted images (ROC AUC per condition and signal, next to a linear probe's ceiling): a table on "
            "stdout, and CSV, JSON and a heat map in --output. Vectors and results are cached under "
            "data/interim/rarity-check; nothing is written next to the images."),
        formatter_class=DefaultsHelpFormatter,
    )
    add_source_arguments(parser, max_images=False)
    parser.add_argument("--encoder", default=DEFAULT_ENCODER, help=f"encoder, one of: {ENCODERS_HELP}")
    parser.add_argument("--weights", default=None, metavar="FILE", help="local weights file for the encoder")
    parser.add_argument("--n-samples", type=int, default=None,
                        help=f"images drawn (seeded) from the dataset (default: {DEFAULT_N_SAMPLES}, or every image "
                             "of a smaller dataset)")
    parser.add_argument("--prevalence", type=float, default=0.03, help="share of the sample shown with each condition")
    parser.add_argument("--conditions", nargs="+", default=list(DRIVING_CONDITIONS), metavar="NAME",
                        help="conditions to plant (deqlib.conditions.CONDITIONS)")
    parser.add_argument("--strength", type=float, default=None, help="every condition's strength in [0, 1] "
                        "(default: each condition's own, the benchmark's)")
    parser.add_argument("--signals", nargs="+", default=None, metavar="NAME",
                        help="rarity signals to evaluate (default: every registered one in --tiers)")
    parser.add_argument("--tiers", nargs="+", default=["cheap", "analysis"], choices=("cheap", "analysis", "consensus"),
                        help="cheap: embeddings only; analysis: one t-SNE + clustering; consensus: K runs")
    parser.add_argument("--K", type=int, default=3, help="runs per consensus bank (tier consensus)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the sample, the planted images and the analyses")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for a CPU run")
    parser.add_argument("--cache", default=None, metavar="DIR", help="cache root (default: data/interim/rarity-check)")
    parser.add_argument("--output", default=None, metavar="DIR",
                        help="where the table, cells, parameters and figure go "
                             "(default: data/processed/rarity-check/<dataset>)")
    parser.add_argument("--no-progress", action="store_true", help="no progress lines or bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deqlib.embed import get_encoder
    from deqlib.rarity_check import rarity_check

    source = source_from_args(args)
    encoder = get_encoder(args.encoder, weights=args.weights)
    embed_options = {"device": args.device}
    if args.threads is not None:
        embed_options["num_threads"] = args.threads
    n_samples = args.n_samples if args.n_samples is not None else min(DEFAULT_N_SAMPLES, len(source))
    result = rarity_check(source, encoder, n_samples=n_samples, prevalence=args.prevalence,
                          conditions=args.conditions, strength=args.strength, signals=args.signals,
                          tiers=tuple(args.tiers), K=args.K, seed=args.seed, cache_dir=args.cache,
                          embed_options=embed_options, progress=not args.no_progress)
    output = Path(args.output) if args.output else paths.processed_dir() / "rarity-check" / source.name
    raw = paths.raw_dir().resolve()
    if output.resolve() == raw or raw in output.resolve().parents:
        raise ValueError(f"--output {output} lies in data/raw, which the workbook never writes; choose another folder")
    written = result.write(output)
    print(result.table().round(3).to_string())
    print(f"deq rarity-check: best signal here: {result.best()}; wrote {', '.join(str(p) for p in written.values())}")
    return 0
