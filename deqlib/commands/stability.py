"""``deq stability``: K runs of one analysis -> how stable the likelihoods are, and a consensus bank."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from deqlib.commands import DEFAULT_ENCODER, ENCODERS_HELP, DefaultsHelpFormatter, add_source_arguments, source_from_args
from deqlib.commands.analyze import add_stage_arguments
from deqlib.likelihood import RARITY_SIGNALS

#: The rarity signals made from K runs (deqlib.likelihood.RARITY_SIGNALS entries with needs_runs).
CONSENSUS_SIGNALS = tuple(n for n in RARITY_SIGNALS.names() if RARITY_SIGNALS.entry(n).extra.get("needs_runs"))


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "stability",
        help="run the analysis K times (seeds, subsamples, eps band, row order): spread, agreement, consensus bank",
        description=(
            "Run the analysis K times on the same embeddings, varying what --vary names, and report per "
            "sample the likelihood's mean, standard deviation and rank spread, per run pair the ARI and "
            "Spearman correlation, the share of weights that move by more than 0.1, and the 3-D map's "
            "faithfulness (trustworthiness, 10-NN recall, PCA-50 cross-check). Writes a consensus bank "
            "(likelihood_std and likelihood_rank_spread columns) and the two stability figures."
        ),
        formatter_class=DefaultsHelpFormatter,
    )
    data = parser.add_argument_group("input")
    add_source_arguments(data)
    data.add_argument("--embeddings", default=None, metavar="FILE.npz",
                      help="precomputed embeddings instead of images: an .npz with 'vectors' and 'sample_ids'")
    data.add_argument("--encoder", default=DEFAULT_ENCODER, help=f"encoder, one of: {ENCODERS_HELP}")
    data.add_argument("--weights", default=None, metavar="FILE", help="local encoder weights file")
    data.add_argument("--device", default="auto", help="embedding device: auto, cpu, cuda, cuda:N")
    data.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto",
                      help="embedding compute precision (auto: float32 on every CPU, bf16 on CUDA)")

    stages = parser.add_argument_group("analysis (as for deq analyze)")
    add_stage_arguments(stages)

    runs = parser.add_argument_group("runs")
    runs.add_argument("-K", "--runs", dest="K", type=int, default=5, help="number of runs")
    runs.add_argument("--seeds", default=None, metavar="S1,S2,...",
                      help="one seed per run (default: 0, 1, ..., K-1, as the notebooks' stability report; --mode reference: "
                           "33, 34, ..., from the official code's seed 33); use disjoint sets to compare two "
                           "consensus runs")
    runs.add_argument("--vary", nargs="+", choices=("seed", "subsample", "band", "order"), default=["seed"],
                      help="what changes between runs")
    runs.add_argument("--subsample", type=float, default=0.8, help="share of samples per run with --vary subsample")
    runs.add_argument("--band", type=float, nargs=2, default=(0.8, 1.25), metavar=("LOW", "HIGH"),
                      help="factor range for eps / min_cluster_size with --vary band")
    runs.add_argument("--no-shared-affinities", action="store_true",
                      help="a full t-SNE fit per run (default: compute the affinities once when only the seed varies)")
    from deqlib.stability import DEFAULT_RUN_SCHEDULE, RUN_SCHEDULES

    runs.add_argument("--run-schedule", choices=tuple(RUN_SCHEDULES), default=DEFAULT_RUN_SCHEDULE,
                      help="openTSNE iterations of each run: 'analysis' (each run as one analysis) or "
                           "'consensus' (fewer, about half the cost; same agreement at 20,000 samples, less "
                           "at 70,000: docs/analysis.md)")
    runs.add_argument("--signal", choices=CONSENSUS_SIGNALS, default="consensus-mean",
                      help="the bank's likelihood: mean over the runs, or the co-association consensus partition "
                           "(the only one the forks' pickle can carry)")
    runs.add_argument("--threads", type=int, default=1,
                      help="threads for the t-SNE and the neighbour searches: the t-SNE maps depend on the "
                           "count, so the default is a constant (recorded in the bank); -1 (every core) is faster "
                           "but the results then follow the machine's core count")
    runs.add_argument("--no-faithfulness", action="store_true", help="skip the 3-D map's faithfulness figures")

    out = parser.add_argument_group("output")
    out.add_argument("--output", default=None, metavar="BANK.parquet",
                     help="consensus bank (default: data/processed/<dataset>_<encoder>_<mode>_<signal>_n<N>_<run id>.parquet, "
                          "one file per run)")
    out.add_argument("--export-official", default=None, metavar="PATH.pkl",
                     help="also write the forks' pickle (consensus-coassoc: its cluster sizes; consensus-mean: "
                          "each likelihood p as the pair (round(p * 10**6), 10**6))")
    out.add_argument("--report", default=None, metavar="REPORT.json",
                     help="also write the summary, runs, run pairs and faithfulness as JSON")
    out.add_argument("--figures", default=None, metavar="DIR",
                     help="write stability_mean_vs_spread.png and stability_agreement.png there")
    out.add_argument("--no-progress", action="store_true", help="no progress lines")
    parser.set_defaults(func=run)


def _stages(args: argparse.Namespace, seed: int):
    from deqlib.commands.analyze import stages_from_args

    if args.threads == 0 or args.threads < -1:
        raise ValueError(f"--threads must be -1 (every core) or a positive number, got {args.threads}")
    stages = stages_from_args(args, seed=seed)
    for part in (stages.reducer, stages.clusterer):  # the t-SNE maps depend on the thread count (recorded)
        if "n_jobs" in part.get_params():
            part.set_params(n_jobs=args.threads)
        if "n_threads" in part.get_params():  # scikit-learn's t-SNE gradient (reference mode)
            part.set_params(n_threads=args.threads)
    return stages


def _embeddings(args: argparse.Namespace):
    """Vectors, sample ids, dataset name, encoder name and what the embedding recorded (precision)."""
    if args.embeddings:
        from deqlib.commands.analyze import _load_embeddings

        vectors, ids, _ = _load_embeddings(args.embeddings)
        return vectors, ids, Path(args.embeddings).stem, "precomputed", {}
    from deqlib.embed import get_encoder
    from deqlib.pipeline import embeddings_from_source

    source = source_from_args(args)
    encoder = get_encoder(args.encoder, weights=args.weights)
    options = {"device": args.device, "precision": args.precision}
    ids, vectors, _, info = embeddings_from_source(source, encoder, options, not args.no_progress, mode=args.mode)
    return vectors, ids, info["dataset"], encoder.name, info


def run(args: argparse.Namespace) -> int:
    import logging

    from deqlib._atomic import write_text_atomic
    from deqlib.bank import write_bank
    from deqlib.pipeline import default_bank_path
    from deqlib.stability import consensus_bank, stability_runs

    logging.getLogger("openTSNE").setLevel(logging.WARNING)
    seeds = None
    if args.seeds:
        try:
            seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        except ValueError as exc:
            raise ValueError(f"--seeds must be comma-separated integers, got {args.seeds!r}") from exc
        if len(seeds) != args.K:
            raise ValueError(f"--seeds lists {len(seeds)} seeds for -K {args.K} runs; give one per run")
    if seeds is None:
        from deqlib.stages import default_seed

        seeds = list(range(default_seed(args.mode), default_seed(args.mode) + args.K))
    stages = _stages(args, seed=seeds[0])
    vectors, ids, dataset, encoder_name, embed_info = _embeddings(args)
    result = stability_runs(vectors, ids, stages, K=args.K, seeds=seeds, vary=args.vary, subsample=args.subsample,
                            band=tuple(args.band), share_affinities=not args.no_shared_affinities,
                            run_schedule=args.run_schedule, progress=not args.no_progress)
    print(f"deq stability: {result.report()}")
    faithful = None
    if not args.no_faithfulness:
        faithful = result.faithfulness(vectors, clusterer=stages.clusterer)
    if faithful and not faithful.get("skipped"):
        print(f"deq stability: 3-D map (seed {result.params['seeds'][0]}): trustworthiness "
              f"{faithful['trustworthiness']:.3f}, 10-NN recall {faithful['knn_recall']:.3f}, PCA-{faithful['pca_components']}"
              f" clustering ARI {faithful['pca_ari']:.3f} ({faithful['pca_n_clusters']} vs "
              f"{faithful['map_n_clusters']} clusters) on {faithful['sample_size']} samples")
    bank = consensus_bank(result, args.signal, metadata={
        "dataset": dataset, "encoder": encoder_name, "mode": args.mode,
        "precision": embed_info.get("precision"), "faithfulness": faithful})
    output = Path(args.output) if args.output else default_bank_path(
        dataset, args.mode, encoder_name, args.signal, signal=args.signal, n_samples=len(bank), run_id=result.run_id)
    write_bank(output, bank)
    print(f"deq stability: {args.signal} bank ({args.K} runs) written to {output}")
    if args.export_official:
        from deqlib.bank import export_official_pickle

        export_official_pickle(bank, args.export_official)
        print(f"deq stability: official pickle written to {args.export_official}")
    if args.figures:
        from deqlib.plots.clusters import save_figure
        from deqlib.plots.stability import agreement_matrix, mean_vs_spread

        folder = Path(args.figures)
        caption = {"dataset": dataset, "K": args.K, "vary": "+".join(args.vary), "mode": args.mode}
        for name, figure in (("stability_mean_vs_spread.png", mean_vs_spread(result.per_sample)),
                             ("stability_agreement.png", agreement_matrix(result.pairs))):
            save_figure(figure, folder / name, caption)
            print(f"deq stability: figure written to {folder / name}")
    if args.report:
        record = {"summary": result.summary, "params": result.params, "runs": result.runs.to_dict("records"),
                  "pairs": result.pairs.to_dict("records"), "faithfulness": faithful, "dataset": dataset}
        write_text_atomic(args.report, json.dumps(record, indent=1, default=str))
        print(f"deq stability: report written to {args.report}")
    return 0
