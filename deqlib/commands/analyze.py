"""``deq analyze``: images or embeddings -> 3-D t-SNE -> clusters -> likelihood bank (+ official pickle)."""

from __future__ import annotations

import argparse
from pathlib import Path

from deqlib.commands import (
    DEFAULT_ENCODER, ENCODERS_HELP, DefaultsHelpFormatter, add_source_arguments, source_from_args)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="embed, reduce (3-D t-SNE), cluster and write a likelihood bank",
        description=(
            "Run the DatasetEquity analysis on a dataset (or on saved embeddings) and write its "
            "likelihood bank as Parquet, optionally also as the official forks' pickle. Every stage "
            "is cached: re-running with another eps reuses the t-SNE. --mode reference reproduces "
            "the official analysis (scikit-learn TSNE, DBSCAN on the raw eps, noise as one cluster)."
        ),
        formatter_class=DefaultsHelpFormatter,
    )
    data = parser.add_argument_group("input")
    add_source_arguments(data)
    data.add_argument("--embeddings", default=None, metavar="FILE.npz",
                      help="precomputed embeddings instead of images: an .npz with 'vectors' and 'sample_ids' "
                           "(other 1-D arrays of the same length, e.g. 'labels', become metadata columns)")
    data.add_argument("--encoder", default=DEFAULT_ENCODER, help=f"encoder, one of: {ENCODERS_HELP}")
    data.add_argument("--weights", default=None, metavar="FILE", help="local encoder weights file")
    data.add_argument("--device", default="auto", help="embedding device: auto, cpu, cuda, cuda:N")
    data.add_argument("--batch-size", type=int, default=None, help="embedding batch size")
    data.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto",
                      help="embedding compute precision (auto: float32 on every CPU, so banks do not depend on the CPU "
                           "type; bf16 on CUDA. bf16 on a CPU only when asked for. --mode reference: always fp32)")

    stages = parser.add_argument_group("analysis")
    add_stage_arguments(stages, rarity=True)
    stages.add_argument("--seed", type=int, default=None,
                        help="seed of the t-SNE and the other seeded parts (default: 0, as the notebooks; "
                             "--mode reference: 33, the official code's np.random.seed(33))")

    out = parser.add_argument_group("output")
    out.add_argument("--output", default=None, metavar="BANK.parquet",
                     help="bank path (default: data/processed/<dataset>_<encoder>_<mode>_<noise policy>_n<N>_<run id>.parquet, "
                          "one file per run: the run id digests the data and every parameter, seed included)")
    out.add_argument("--export-official", default=None, metavar="PATH.pkl",
                     help="also write the official forks' pickle (e.g. kitti_training_cluster_info.pkl); a signal "
                          "without clusters is written as pairs (round(p * 10**6), 10**6)")
    out.add_argument("--missing", choices=("error", "rarest", "median"), default="error",
                     help="--export-official: samples whose images could not be embedded are refused (error), "
                          "or written as the rarest (cluster_size 1) or a median sample (docs/training.md)")
    out.add_argument("--samples-csv", default=None, metavar="PATH.csv",
                     help="also write the full per-sample table (coordinates, weights, metadata)")
    out.add_argument("--cache-dir", default=None, help="stage cache root (default: data/interim/analysis)")
    out.add_argument("--no-cache", action="store_true", help="recompute every stage")
    out.add_argument("--no-progress", action="store_true", help="no progress lines")
    parser.set_defaults(func=run)


def _choices(registry) -> list[str]:
    """Names and aliases a registry accepts (argparse compares strings exactly)."""
    return [*registry.names(), *(a for name in registry.names() for a in registry.entry(name).aliases)]


def add_stage_arguments(stages, reducer: bool = True, rarity: bool = False) -> None:
    """The analysis options read by :func:`stages_from_args` (and the noise policy, eta, gamma of eq. 3-4).

    One definition for ``deq analyze`` and ``deq stability``; the choices come from the
    registries (:data:`deqlib.reduce.REDUCERS`, :data:`deqlib.cluster.CLUSTERERS`) and
    :data:`deqlib.cluster.PRESETS`. ``reducer=False`` leaves out ``--reducer``; ``rarity=True`` adds
    ``--rarity`` / ``--rarity-param`` (the single-run signals of :data:`deqlib.likelihood.RARITY_SIGNALS`;
    ``deq stability`` has its own ``--signal``).
    """
    from deqlib.cluster import CLUSTERERS, EPS_SCALES, PRESETS
    from deqlib.likelihood import NOISE_POLICIES
    from deqlib.stages import MODES
    from deqlib.reduce import REDUCERS, SCHEDULES

    stages.add_argument("--mode", choices=MODES, default="default",
                        help="'reference' = the official analysis step for step")
    stages.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="the paper's DBSCAN eps / min_samples for a dataset (HDBSCAN: min_cluster_size)")
    if reducer:
        stages.add_argument("--reducer", choices=_choices(REDUCERS), default=None, metavar="NAME",
                            help=f"one of {', '.join(REDUCERS.names())} "
                                 "(default: opentsne; sklearn in reference mode)")
    stages.add_argument("--reducer-param", action="append", default=[], metavar="KEY=VALUE",
                        help="a reducer parameter, repeatable (none by default): e.g. n_neighbors=30 (umap), "
                             "theta=0.5 (opentsne)")
    stages.add_argument("--schedule", choices=sorted(SCHEDULES), default=None,
                        help="openTSNE iterations: fast = 125+100 (theta 0.8, the default), official = 250+250 "
                             "(theta 0.5)")
    stages.add_argument("--perplexity", type=float, default=None, help="t-SNE perplexity (default 30)")
    stages.add_argument("--pca", type=int, default=None, metavar="DIMS",
                        help="PCA pre-reduction of openTSNE / UMAP (default 50; 0 = none)")
    stages.add_argument("--clusterer", choices=_choices(CLUSTERERS), default=None, metavar="NAME",
                        help=f"one of {', '.join(CLUSTERERS.names())} (default: dbscan)")
    stages.add_argument("--clusterer-param", action="append", default=[], metavar="KEY=VALUE",
                        help="a clusterer parameter, repeatable (none by default): e.g. "
                             "cluster_selection_method=leaf (hdbscan)")
    stages.add_argument("--eps", type=float, default=None, help="DBSCAN eps (default: the preset's, else 1.0)")
    stages.add_argument("--min-samples", type=int, default=None,
                        help="DBSCAN / HDBSCAN min_samples (default: DBSCAN the preset's, else 10)")
    stages.add_argument("--eps-scale", choices=EPS_SCALES, default=None,
                        help="unit of eps: official sklearn t-SNE units (default after a t-SNE), k-NN distance "
                             "(default after UMAP), raw (reference mode: raw)")
    stages.add_argument("--min-cluster-size", type=int, default=None,
                        help="HDBSCAN min_cluster_size (default: the preset's min_samples, else 10)")
    stages.add_argument("--noise-policy", choices=NOISE_POLICIES, default=None,
                        help="likelihood of DBSCAN noise (default singleton; reference: as_cluster)")
    if rarity:
        from deqlib.likelihood import DEFAULT_RARITY_SIGNAL, PAPER_RARITY_SIGNAL, RARITY_SIGNALS

        single_run = [n for n in RARITY_SIGNALS.names() if not RARITY_SIGNALS.entry(n).extra.get("needs_runs")]
        stages.add_argument("--rarity", choices=single_run, default=None,
                            help=f"rarity signal that makes the likelihood (docs/rarity.md; default "
                                 f"{DEFAULT_RARITY_SIGNAL}, the rarity benchmark's best; {PAPER_RARITY_SIGNAL} "
                                 "(the paper's eq. 3) in --mode reference): "
                                 + "; ".join(f"{n}: {RARITY_SIGNALS.entry(n).summary}" for n in single_run))
        stages.add_argument("--rarity-param", action="append", default=[], metavar="KEY=VALUE",
                            help="a rarity signal parameter, repeatable (none by default): e.g. k=15 (knn-density)")
    stages.add_argument("--eta", type=float, default=1.0, help="weight floor of eq. 4 (for the summary's weights)")
    stages.add_argument("--gamma", type=float, default=5.0, help="focusing exponent of eq. 4")


#: Convenience flags -> the parameter they set (on whichever part takes it; another part refuses it).
_REDUCER_FLAGS = {"schedule": "schedule", "perplexity": "perplexity", "pca": "pca_components"}
_CLUSTERER_FLAGS = {"eps": "eps", "min_samples": "min_samples", "eps_scale": "eps_scale",
                    "min_cluster_size": "min_cluster_size"}


def _params(args: argparse.Namespace, pairs_attr: str, flags: dict, flag: str) -> dict:
    from deqlib.commands import parse_source_options

    params = parse_source_options(getattr(args, pairs_attr, None), flag=flag)
    for attr, key in flags.items():
        value = getattr(args, attr, None)
        if value is None:
            continue
        if key in params:
            raise ValueError(f"--{attr.replace('_', '-')} and {flag} {key}=... both set {key}; give it once")
        params[key] = (value or None) if attr == "pca" else value  # --pca 0: no PCA
    return params


def stages_from_args(args: argparse.Namespace, seed: int | None = None):
    """:func:`deqlib.stages.build_stages` from the options of :func:`add_stage_arguments`.

    A convenience flag a part does not take (``--schedule`` with ``--reducer umap``) is refused
    by the builder with the part's valid parameters, never dropped.
    """
    from deqlib.stages import build_stages

    return build_stages(
        args.mode, reducer=getattr(args, "reducer", None),
        reducer_params=_params(args, "reducer_param", _REDUCER_FLAGS, "--reducer-param"),
        clusterer=args.clusterer,
        clusterer_params=_params(args, "clusterer_param", _CLUSTERER_FLAGS, "--clusterer-param"),
        noise_policy=args.noise_policy, preset=args.preset, seed=seed, rarity=getattr(args, "rarity", None),
        rarity_params=_params(args, "rarity_param", {}, "--rarity-param"), eta=args.eta, gamma=args.gamma)


def _load_embeddings(path: str):
    """Vectors, sample ids and a metadata frame (other 1-D arrays of the file, or None)."""
    import numpy as np
    import pandas as pd

    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"no embeddings file at {file}")
    with np.load(file, allow_pickle=False) as data:
        missing = {"vectors", "sample_ids"} - set(data.files)
        if missing:
            raise ValueError(f"{file} must hold arrays 'vectors' and 'sample_ids'; missing {sorted(missing)}")
        ids = [str(s) for s in data["sample_ids"]]
        extra = {k: data[k] for k in data.files
                 if k not in ("vectors", "sample_ids") and data[k].ndim == 1 and len(data[k]) == len(ids)}
        return data["vectors"], ids, (pd.DataFrame({"sample_id": ids, **extra}) if extra else None)


def run(args: argparse.Namespace) -> int:
    import logging

    from deqlib.pipeline import analyze

    if not args.verbose:  # openTSNE logs every phase at INFO; our progress lines say enough
        logging.getLogger("openTSNE").setLevel(logging.WARNING)

    for flag, value in (("--output", args.output), ("--export-official", args.export_official),
                        ("--samples-csv", args.samples_csv)):
        if value and Path(value).is_dir():  # say so now, not after the whole analysis
            raise ValueError(f"{flag} {value} is a folder, but a file path is needed; "
                             f"pass a file name, e.g. {flag} {Path(value) / 'bank.parquet'}")
    from deqlib.stages import default_seed

    stages = stages_from_args(args, seed=default_seed(args.mode) if args.seed is None else args.seed)
    common = dict(stages=stages, cache=False if args.no_cache else (args.cache_dir or True),
                  progress=not args.no_progress)
    if args.embeddings:
        vectors, ids, metadata = _load_embeddings(args.embeddings)
        result = analyze(embeddings=vectors, sample_ids=ids, metadata=metadata, dataset=Path(args.embeddings).stem,
                         **common)
        encoder_name = "precomputed"
    else:
        from deqlib.embed import get_encoder

        source = source_from_args(args)
        encoder = get_encoder(args.encoder, weights=args.weights)
        embed_options = {"device": args.device, "precision": args.precision}
        if args.batch_size:
            embed_options["batch_size"] = args.batch_size
        result = analyze(source=source, encoder=encoder, embed_options=embed_options, **common)
        encoder_name = encoder.name
    output = Path(args.output) if args.output else result.default_path(encoder_name)
    print(f"deq analyze: {result.summary()}")
    exported = None
    if args.export_official:
        from deqlib.bank import BankFormatError

        try:  # first, so that the bank's metadata records what the export did with missing samples
            exported = result.export_official(args.export_official, missing=args.missing)
        except BankFormatError:
            result.write(output)
            print(f"deq analyze: bank written to {output}; the official pickle was NOT written")
            raise
    result.write(output)
    print(f"deq analyze: bank written to {output}")
    if exported is not None:
        record = result.bank.metadata["official_export"]
        extra = f" ({record['n_missing']} missing samples written as {record['missing']})" if record["n_missing"] else ""
        print(f"deq analyze: official pickle written to {exported}{extra}")
    if args.samples_csv:
        result.write_samples_csv(args.samples_csv)  # quoted: any file name reads back as one field
        print(f"deq analyze: per-sample table written to {args.samples_csv}")
    return 0
