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
            "spread or metadata, box and lasso selection with a CSV of the selected ids, paged cluster galleries. "
            "Thumbnails go to a folder beside the page. Optionally also export the run for TensorBoard's Embedding "
            "Projector (with the real embedding vectors), Apple's Embedding Atlas and a FiftyOne dataset."
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
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")

    parser.add_argument("--signals", default=None, metavar="NAME[,NAME...]",
                        help="also colour by these rarity signals (registered names, e.g. lof,multi-granularity+lof): "
                             "each is fitted on the bank's vectors (see --embeddings) and becomes a 'signal:NAME' "
                             "column of the page's colour menu and filters")
    projector = parser.add_argument_group("TensorBoard Embedding Projector")
    projector.add_argument("--projector", default=None, metavar="DIR",
                           help="also write Embedding Projector files here (`tensorboard --logdir DIR`): the "
                                "embedding vectors and the 3-D map, metadata, sprite")
    projector.add_argument("--embeddings", default="auto", metavar="auto|none|FILE.npz",
                           help="the vectors of --projector and --signals. auto: from the embedding cache of the encoder the bank "
                                "was made with (images not cached are embedded); FILE.npz: arrays 'vectors' and "
                                "'sample_ids' (what `deq analyze --embeddings` reads); none: the 3-D map only")
    projector.add_argument("--pca-dims", type=int, default=50, metavar="N",
                           help="export vectors with more dimensions as their PCA to N (0: as they are)")
    projector.add_argument("--weights", default=None, metavar="FILE",
                           help="--embeddings auto: the encoder weights the bank was made with, if not the default")
    projector.add_argument("--embedding-cache", default=None, metavar="DIR",
                           help="--embeddings auto: the embedding cache root (default: data/interim/embeddings)")

    others = parser.add_argument_group("other viewers")
    others.add_argument("--atlas", default=None, metavar="TABLE.parquet",
                        help="also write a Parquet table for Embedding Atlas (`embedding-atlas TABLE.parquet`)")
    others.add_argument("--fiftyone", default=None, metavar="DATASET",
                        help="also add the run's fields (deq_likelihood, deq_weight, deq_cluster_id, ...) to this "
                             "FiftyOne dataset (needs `pip install fiftyone` and its database running)")
    others.add_argument("--fiftyone-key-field", default="filepath", metavar="FIELD",
                        help="the dataset field that identifies a sample")
    others.add_argument("--fiftyone-key-column", default="location", metavar="COLUMN",
                        help="the run's column holding the same values (sample_id when the dataset stores ids)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deqlib import paths
    from deqlib.bank import read_bank
    from deqlib.plots.explorer import explorer_summary, samples_from_bank, write_explorer

    if args.pca_dims < 0:
        raise ValueError(f"--pca-dims must be >= 0 (0: the vectors as they are), got {args.pca_dims}")
    bank_path = Path(args.bank)
    bank = read_bank(bank_path)
    source = source_from_args(args)
    samples = samples_from_bank(bank, source)
    dataset = None
    if args.fiftyone:  # before the long work: a FiftyOne that cannot start says so at once
        from deqlib.export.fiftyone import load_dataset

        dataset = load_dataset(args.fiftyone)
    vectors = None
    if (args.projector or args.signals) and args.embeddings != "none":
        vectors = _projector_vectors(args, bank, source, samples)
    if args.signals:
        samples = _with_signal_columns(samples, vectors, args.signals, args.seed)
    output = Path(args.output) if args.output else paths.figures_dir() / f"{bank_path.stem}_explorer.html"
    page = write_explorer(samples, source, output, thumb_height=args.thumb_height, max_points=args.max_points,
                          seed=args.seed, progress=not args.no_progress)
    print(f"deq explore: {explorer_summary(page)}")
    if args.projector:
        from deqlib.export.projector import write_projector

        folder = write_projector(samples, source, args.projector, vectors=vectors, max_points=args.max_points,
                                 seed=args.seed, pca_dims=args.pca_dims or None)
        what = "the 3-D map only (--embeddings none)" if vectors is None else \
            f"{vectors.shape[1]}-d embedding vectors and the 3-D map"
        print(f"deq explore: Embedding Projector files in {folder}, {what} (open with: tensorboard --logdir {folder})")
    if args.atlas:
        from deqlib.export.atlas import write_atlas_table

        table = write_atlas_table(samples, source, args.atlas, thumb_height=args.thumb_height)
        print(f"deq explore: Embedding Atlas table {table} (open with: embedding-atlas {table} --x x --y y "
              f"--image image)")
    if dataset is not None:
        from deqlib.export.fiftyone import add_fields

        fields = add_fields(dataset, samples, key_field=args.fiftyone_key_field, key_column=args.fiftyone_key_column)
        print(f"deq explore: FiftyOne dataset {args.fiftyone!r}: wrote {', '.join(fields)} on "
              f"{len(dataset.values(args.fiftyone_key_field))} samples")
    return 0


def _with_signal_columns(samples, vectors, names: str, seed: int):
    """``samples`` plus a ``signal:NAME`` likelihood column per named rarity signal, fitted on ``vectors``."""
    from deqlib.likelihood import RarityContext, signal_columns

    outlier_scores = samples["outlier_score"].to_numpy() if "outlier_score" in samples.columns else None
    context = RarityContext(embeddings=vectors, coords=samples[["x", "y", "z"]].to_numpy(),
                            labels=samples["cluster_id"].to_numpy(), outlier_scores=outlier_scores)
    columns = signal_columns(context, names, seed=seed)
    print(f"deq explore: colour menu gains {', '.join(columns)}")
    return samples.assign(**columns)


def _projector_vectors(args, bank, source, samples):
    """The bank's embedding vectors in the order of ``samples``: from --embeddings FILE.npz, or the cache."""
    import numpy as np

    from deqlib.export.projector import align_vectors

    ids = samples["sample_id"].astype(str).tolist()
    if args.embeddings != "auto":
        file = Path(args.embeddings)
        if not file.is_file():
            raise FileNotFoundError(f"--embeddings {file}: no such file; pass an .npz with 'vectors' and "
                                    "'sample_ids', 'auto' (the embedding cache) or 'none' (the 3-D map only)")
        with np.load(file, allow_pickle=False) as data:
            if not {"vectors", "sample_ids"} <= set(data.files):
                raise ValueError(f"--embeddings {file} must hold arrays 'vectors' and 'sample_ids'; it has {data.files}")
            return align_vectors(ids, [str(s) for s in data["sample_ids"]], data["vectors"], where=str(file))
    from deqlib import paths
    from deqlib.embed import cache_key, embed_source, get_encoder

    record = bank.metadata.get("embedding") or {}
    name = record.get("encoder")
    if not name or name == "precomputed":
        raise ValueError("the bank names no encoder whose cache holds its vectors (it was made from precomputed "
                         "vectors, e.g. deq analyze --embeddings): pass them with --embeddings FILE.npz, or "
                         "--embeddings none for the 3-D map only")
    encoder = get_encoder(name, weights=args.weights)
    precision = record.get("precision") or "fp32"
    stored, current = record.get("encoder_key"), cache_key(encoder, precision)
    if stored and stored != current:
        differ = sorted(k for k in set(stored) | set(current) if stored.get(k) != current.get(k))
        raise ValueError(f"the bank's vectors came from {name} with another {', '.join(differ)} than this one "
                         f"(bank: {', '.join(f'{k}={stored.get(k)!r}' for k in differ)}): pass --weights with the "
                         "weights the bank was made with, or the vectors with --embeddings FILE.npz")
    position = {str(s): i for i, s in enumerate(source.sample_ids)}
    result = embed_source(source.subset([position[s] for s in ids]), encoder,
                          cache_dir=args.embedding_cache or paths.interim_dir() / "embeddings",
                          precision=precision, progress=not args.no_progress)
    if len(result.failures):
        raise ValueError(f"{len(result.failures)} images of the bank could not be embedded for the projector, e.g. "
                         f"{result.failures['sample_id'].head(3).tolist()}: pass --embeddings none or a file")
    print(f"deq explore: projector vectors from the {name} embedding cache ({result.stats['n_cached']} cached, "
          f"{result.stats['n_embedded']} embedded now)")
    if record.get("dim") and int(record["dim"]) != result.vectors.shape[1]:
        raise ValueError(f"the cache's {name} vectors have {result.vectors.shape[1]} dimensions, the bank's had "
                         f"{record['dim']}: pass the bank's vectors with --embeddings FILE.npz")
    return align_vectors(ids, result.sample_ids, result.vectors, where=f"the {name} cache")
