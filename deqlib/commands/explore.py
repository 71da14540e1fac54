"""``deq explore``: a likelihood bank and its images -> the HTML explorer (and exports for other viewers)."""

from __future__ import annotations

import argparse
from pathlib import Path

from deqlib.commands import DefaultsHelpFormatter, add_source_arguments, source_from_args


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "explore",
        help="write the HTML explorer of a bank (every point, thumbnails, search, filters)",
        description=(
            "Write the offline HTML explorer of a likelihood bank: every sample as a point of the 3-D t-SNE, its "
            "image on hover, search by sample id, filters and colours by cluster, likelihood, weight, stability "
            "spread or metadata, cluster galleries. Thumbnails go to a folder beside the page. Optionally also "
            "export the run for TensorBoard's Embedding Projector and Apple's Embedding Atlas."
        ),
        formatter_class=DefaultsHelpFormatter,
    )
    parser.add_argument("bank", help="the bank (.parquet) written by `deq analyze`")
    add_source_arguments(parser, max_images=False)  # the source the bank was made from
    parser.add_argument("--output", default=None, metavar="PAGE.html",
                        help="explorer page (default: figures/<bank name>_explorer.html)")
    parser.add_argument("--max-points", type=int, default=None, metavar="N",
                        help="show a subset stratified by cluster (default: every point)")
    parser.add_argument("--thumb-height", type=int, default=72, help="thumbnail height in pixels (width follows "
                        "the images' aspect ratio; never above the images' own height)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --max-points subset")
    parser.add_argument("--projector", default=None, metavar="DIR",
                        help="also write TensorBoard Embedding Projector files here (`tensorboard --logdir DIR`)")
    parser.add_argument("--atlas", default=None, metavar="TABLE.parquet",
                        help="also write a Parquet table for Embedding Atlas (`embedding-atlas TABLE.parquet`)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar while thumbnails are written")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deqlib import paths
    from deqlib.bank import read_bank
    from deqlib.plots.explorer import explorer_summary, samples_from_bank, write_explorer

    bank_path = Path(args.bank)
    bank = read_bank(bank_path)
    source = source_from_args(args)
    samples = samples_from_bank(bank, source)
    output = Path(args.output) if args.output else paths.figures_dir() / f"{bank_path.stem}_explorer.html"
    page = write_explorer(samples, source, output, thumb_height=args.thumb_height, max_points=args.max_points,
                          seed=args.seed, progress=not args.no_progress)
    print(f"deq explore: {explorer_summary(page)}")
    if args.projector:
        from deqlib.export.projector import write_projector

        folder = write_projector(samples, source, args.projector, max_points=args.max_points, seed=args.seed)
        print(f"deq explore: Embedding Projector files in {folder} (open with: tensorboard --logdir {folder})")
    if args.atlas:
        from deqlib.export.atlas import write_atlas_table

        table = write_atlas_table(samples, source, args.atlas, thumb_height=args.thumb_height)
        print(f"deq explore: Embedding Atlas table {table} (open with: embedding-atlas {table} --x x --y y "
              f"--image image)")
    return 0
