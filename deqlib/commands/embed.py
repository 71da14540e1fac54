"""``deq embed``: a dataset's images -> cached, resumable embeddings (also under ``torchrun``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deqlib import paths
from deqlib.commands import (
    DEFAULT_ENCODER, ENCODERS_HELP, DefaultsHelpFormatter, add_source_arguments, source_from_args)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "embed",
        help="embed a dataset's images (cached, resumable, torchrun-aware)",
        description=(
            "Embed every image of a dataset with an encoder and cache the vectors in shards "
            "(an interrupted run resumes; added images embed only the new ones). Runs under "
            "`torchrun --nproc_per_node N` too: each rank embeds a share, rank 0 checks the merge."
        ),
        formatter_class=DefaultsHelpFormatter,
    )
    add_source_arguments(parser)
    parser.add_argument("--encoder", default=DEFAULT_ENCODER, help=f"encoder, one of: {ENCODERS_HELP}")
    parser.add_argument("--weights", default=None, metavar="FILE",
                        help="local weights file (or a hub tag, or 'random' for speed tests)")
    parser.add_argument("--preprocessing", choices=("reference", "fast"), default=None,
                        help="'reference' decodes every image in full; 'fast' allows JPEG draft mode "
                             "(default: the encoder's own; resnet101 is 'reference')")
    parser.add_argument("--batch-size", type=int, default=None, help="override the per-device table")
    parser.add_argument("--workers", type=int, default=None, help="decode worker processes (0: main process)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for a CPU run (override)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto",
                        help="compute precision (autocast; auto: float32 on every CPU, bf16 on CUDA; bf16 on a CPU only when "
                             "asked for); outputs are float32 either way")
    parser.add_argument("--normalize", action="store_true", help="L2-normalise the vectors")
    parser.add_argument("--output", default=None, metavar="DIR",
                        help="cache/output root (default: data/interim/embeddings)")
    parser.add_argument("--shard-size", type=int, default=1024, help="samples per cache shard")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deqlib.embed import embed_source, get_encoder, init_distributed

    output = Path(args.output) if args.output else paths.interim_dir() / "embeddings"
    if output.exists() and not output.is_dir():
        raise ValueError(f"--output {output} is a file; it must be a folder (the cache root), e.g. "
                         f"--output {output.parent / 'embeddings'}")
    distributed = init_distributed()
    source = source_from_args(args)  # --max-images: seeded subsample; --first: the first N
    kwargs = {"preprocessing": args.preprocessing} if args.preprocessing else {}
    encoder = get_encoder(args.encoder, weights=args.weights, **kwargs)
    result = embed_source(
        source, encoder, cache_dir=output, batch_size=args.batch_size, num_workers=args.workers,
        device=args.device, normalize=args.normalize, progress=not args.no_progress,
        shard_size=args.shard_size, num_threads=args.threads, precision=args.precision)
    rank = 0
    if distributed:
        import torch.distributed

        rank = torch.distributed.get_rank()
    if rank == 0:
        print(f"deq embed: {source.name} with {encoder.name}: {result.summary()}")
        if len(result.failures):
            print(f"deq embed: {len(result.failures)} images failed; see {result.cache_path / 'failures.csv'}")
    if distributed:
        torch.distributed.destroy_process_group()
    errors = result.stats.get("cache_write_errors") or []
    if rank == 0 and errors:
        # The cache is this command's output: vectors that could not be written are lost with the run.
        print(f"deq embed: error: the cache could not be written ({errors[0]}); {len(errors)} cache files not written; "
              f"free disk space or make {result.cache_path} writable, or pass another --output DIR, "
              "then run again (what was written is kept)", file=sys.stderr)
        return 1
    return 0
