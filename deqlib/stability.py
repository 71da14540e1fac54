"""How far to trust a likelihood: K runs of one analysis, their spread, agreement and consensus bank.

One analysis is one draw of a noisy process: the t-SNE seed, the row order, float rounding
and DBSCAN's eps all move clusters, and with them the likelihoods and weights
(``docs/analysis.md``, "How stable are the likelihoods?"). This module measures that noise and
averages it out.

:func:`stability_runs`
    K analyses of the same embeddings that vary what the user chooses (:data:`VARIATIONS`):
    ``"seed"`` (the t-SNE seed), ``"subsample"`` (each run sees a random share of the
    samples), ``"band"`` (eps or min_cluster_size drawn within a band around the chosen value)
    and ``"order"`` (rows shuffled before the t-SNE). The embeddings are computed once by the
    caller; when only the seed varies, the PCA and t-SNE affinities (k-NN graph) are computed
    once and every run starts openTSNE's optimisation from its own random initialisation
    (:meth:`deqlib.reduce.OpenTSNEReducer.fit_affinities`), optionally on a cheaper iteration
    schedule (``run_schedule='consensus'``, :data:`RUN_SCHEDULES`).
The statistics of the K runs
    :func:`per_sample_stability`, :func:`run_agreement`, :func:`summarize_stability` and the
    consensus signals' maths live in :mod:`deqlib.consensus` (pure functions, re-exported here);
    the 3-D map's faithfulness (:func:`faithfulness`) in :mod:`deqlib.faithfulness`.
:func:`consensus_bank`
    A bank whose ``likelihood`` is a consensus signal, with ``likelihood_std`` and
    ``likelihood_rank_spread`` columns and ``signal``, ``K``, the runs' seeds and row orders and
    the stability figures in its metadata.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.base import clone

from deqlib._validation import check_embeddings, duplicate_groups
from deqlib.bank import bank_from_likelihood
from deqlib.consensus import (ABSENT, WEIGHT_MOVE, coassociation_consensus, consensus_mean, knn_graph,
                              per_sample_stability, percentile_ranks, run_agreement, summarize_stability)
from deqlib.faithfulness import faithfulness
from deqlib.likelihood import RARITY_SIGNALS, ClusterSignal, RarityContext, scaled_likelihood
from deqlib.pipeline import embeddings_from_source, run_digest
from deqlib.progress import stage_message
from deqlib.reduce import OpenTSNEReducer
from deqlib.stages import Stages, checked_stages

__all__ = [
    "VARIATIONS",
    "SIGNALS",
    "RUN_SCHEDULES",
    "StabilityResult",
    "stability_runs",
    "stability_of_source",
    "consensus_bank",
    # re-exported from deqlib.consensus and deqlib.faithfulness
    "percentile_ranks",
    "per_sample_stability",
    "run_agreement",
    "consensus_mean",
    "coassociation_consensus",
    "summarize_stability",
    "faithfulness",
]

logger = logging.getLogger(__name__)

#: What may vary between the K runs.
VARIATIONS = ("seed", "subsample", "band", "order")
#: Consensus signals a bank can carry (its ``signal`` metadata), registered in
#: ``deqlib.likelihood.RARITY_SIGNALS``; only the co-association one is a partition (cluster-based),
#: so only it can be written to the forks' pickle.
SIGNALS = tuple(n for n in RARITY_SIGNALS.names() if RARITY_SIGNALS.entry(n).extra.get("needs_runs"))
DEFAULT_K = 5
DEFAULT_SUBSAMPLE = 0.8
DEFAULT_BAND = (0.8, 1.25)
#: Iteration schedules of the K runs' openTSNE optimisations (:func:`stability_runs`'s ``run_schedule``).
#: ``'analysis'``: each run optimises as one analysis does (the reducer's own schedule, ``'fast'`` =
#: 125 + 100 iterations, theta 0.8, by default). ``'consensus'``: 100 + 50 iterations, theta 1.0, over
#: the shared affinities; measured at N = 20,000 (``benchmarks/stability/bench_schedules.py``,
#: ``docs/analysis.md``): a K = 5 report 2.6x one analysis, the same NMI with the classes per run
#: (0.452 both) and consensus agreement within 0.011 of ``'analysis'`` at K = 1, 3, 5. Not the
#: default: at N = 70,000 its runs found fewer clusters (227-238 vs 333-348) and agreed less
#: (run-pair Spearman 0.58 vs 0.65), so its savings there cost agreement.
RUN_SCHEDULES = {"analysis": None,
                 "consensus": {"early_exaggeration_iter": 100, "n_iter": 50, "theta": 1.0}}
DEFAULT_RUN_SCHEDULE = "analysis"


# ------------------------------------------------------------------------------------ the runs
@dataclass
class StabilityResult:
    """K runs of one analysis and what they say about its likelihoods.

    Attributes
    ----------
    sample_ids : list of str
    likelihoods : ndarray (K, N)
        Scaled likelihood per run and sample; NaN where the run did not see the sample.
    labels : ndarray (K, N) of int64
        Cluster labels per run (``-1`` noise, ``-2`` not in the run).
    runs : DataFrame
        One row per run: ``run, seed, order`` (a hash of the row order, ``'input'`` if unchanged),
        ``n_samples``, the clusterer setting used (``eps`` or ``min_cluster_size``),
        ``n_clusters, noise_fraction, seconds``.
    per_sample : DataFrame
        :func:`per_sample_stability`, plus ``consensus_coassoc`` (the co-association consensus
        likelihood) and ``consensus_cluster_id``.
    pairs : DataFrame
        :func:`run_agreement`.
    summary : dict
        :func:`summarize_stability` plus timings.
    params : dict
        What was varied, the seeds, the band, the stages' parameters, whether affinities were shared.
    coords : ndarray (K, N, 3) or None
        Each run's 3-D map in input order (NaN rows for samples a run did not see): for
        :func:`faithfulness` without another t-SNE, or to cluster the same maps differently.
    """

    sample_ids: list[str]
    likelihoods: np.ndarray
    labels: np.ndarray
    runs: pd.DataFrame
    per_sample: pd.DataFrame
    pairs: pd.DataFrame
    summary: dict
    params: dict = field(default_factory=dict)
    coords: np.ndarray | None = None

    @property
    def run_id(self) -> str:
        """8 hex digits naming these K runs in bank file names (:func:`deqlib.pipeline.default_bank_path`):
        a digest of the parameters (seeds, what varied, the stages), the sample ids and the K runs'
        likelihoods, so other data or other settings never share a consensus bank's path."""
        return run_digest({k: v for k, v in self.params.items() if k != "embedding"}, self.sample_ids,
                          np.nan_to_num(np.asarray(self.likelihoods, dtype=np.float64), nan=-1.0))

    def faithfulness(self, embeddings, clusterer=None, **options) -> dict:
        """:func:`faithfulness` of the first run's map (on the samples it saw) against ``embeddings``."""
        seen = np.isfinite(self.coords[0]).all(axis=1)
        labels = self.labels[0, seen] if clusterer is not None else None
        return faithfulness(np.asarray(embeddings)[seen], self.coords[0, seen], labels, clusterer, **options)

    def consensus(self, signal: str = "consensus-mean") -> np.ndarray:
        """The consensus likelihood per sample: ``'consensus-mean'`` or ``'consensus-coassoc'``."""
        if signal == "consensus-mean":
            return self.per_sample["likelihood_mean"].to_numpy()
        if signal == "consensus-coassoc":
            return self.per_sample["consensus_coassoc"].to_numpy()
        raise ValueError(f"signal must be one of {SIGNALS}, got {signal!r}")

    def report(self) -> str:
        """A few lines: agreement, spread, weights that moved, cost."""
        s = self.summary
        lines = [f"{s['K']} runs on {s['n_samples']} samples, varying {', '.join(self.params['vary'])} "
                 f"({s['seconds']:.0f}s; affinities shared: {self.params['shared_affinities']})",
                 f"run pairs: ARI mean {s.get('pair_ari_mean', float('nan')):.3f} "
                 f"(min {s.get('pair_ari_min', float('nan')):.3f}), Spearman mean "
                 f"{s.get('pair_spearman_mean', float('nan')):.3f} (min {s.get('pair_spearman_min', float('nan')):.3f})",
                 f"per sample: likelihood std median {s['likelihood_std_median']:.3g} (q90 {s['likelihood_std_q90']:.3g}), "
                 f"rank spread median {s['rank_spread_median']:.3f} (q90 {s['rank_spread_q90']:.3f})",
                 f"weights (eta {self.params['eta']:g}, gamma {self.params['gamma']:g}) moving by more than "
                 f"{WEIGHT_MOVE:g}: {s['weight_moved_share']:.1%} of samples across the {s['K']} runs, "
                 f"{s.get('pair_weight_moved_share_mean', float('nan')):.1%} per run pair"]
        return "\n".join(lines)


def _say(progress: bool, message: str) -> None:
    stage_message(logger, "deq stability", progress, message)


def _band_clusterer(clusterer, factor: float):
    """The clusterer with its main setting scaled by ``factor`` (eps for DBSCAN, min_cluster_size for HDBSCAN)."""
    params = clusterer.get_params()
    if "eps" in params:
        return clone(clusterer).set_params(eps=float(params["eps"]) * factor), {"eps": float(params["eps"]) * factor}
    if "min_cluster_size" in params:
        size = max(2, int(round(params["min_cluster_size"] * factor)))
        return clone(clusterer).set_params(min_cluster_size=size), {"min_cluster_size": size}
    raise ValueError(f"vary='band' needs a clusterer with eps or min_cluster_size, got {type(clusterer).__name__}")


def _order_hash(order: np.ndarray | None) -> str:
    if order is None:
        return "input"
    return hashlib.blake2b(np.ascontiguousarray(order, dtype=np.int64).tobytes(), digest_size=8).hexdigest()


def _left_out(n: int, subsample: float, run: int, seed: int) -> np.ndarray:
    """Samples run ``run`` leaves out: consecutive blocks of one random permutation (seeded by the
    first run's seed), so the left-out sets are disjoint while they fit and every sample is in
    at least one run (a sample in no run would have no consensus likelihood)."""
    left = min(n - 1, n - max(int(round(subsample * n)), 1))
    order = np.random.default_rng(seed).permutation(n)
    return order[(np.arange(left) + run * left) % n]


def stability_runs(embeddings, sample_ids: Sequence[str] | None = None, stages=None, *, K: int = DEFAULT_K,
                   seeds: Sequence[int] | None = None, vary: Sequence[str] = ("seed",),
                   subsample: float = DEFAULT_SUBSAMPLE, band: tuple[float, float] = DEFAULT_BAND,
                   share_affinities: bool = True, run_schedule: str = DEFAULT_RUN_SCHEDULE,
                   coassoc_threshold: float = 0.5, progress: bool = False) -> StabilityResult:
    """Run the analysis K times on the same embeddings, varying ``vary``, and measure the spread.

    Parameters
    ----------
    embeddings : array (N, D)
        The vectors (embedded once; never recomputed here).
    sample_ids : sequence of str, optional
        Default ``'0'..'N-1'``.
    K : int, default=5
        Number of runs.
    seeds : sequence of int, optional
        One per run (default ``33, 34, ...``). Two consensus runs to compare use disjoint seeds.
        Each run's seed drives every random choice of that run (t-SNE start, subsample, order, band).
    vary : subset of {'seed', 'subsample', 'band', 'order'}, default=('seed',)
        What changes between runs. The t-SNE seed always follows the run's seed; ``'seed'``
        alone keeps everything else fixed.
    stages : deqlib.stages.Stages, optional
        What each run runs, from :func:`deqlib.stages.build_stages` (e.g. the stages an analysis
        ran); None: ``build_stages()``. Its mode, noise policy and eq. 4's ``eta`` and ``gamma``
        (the weight figures) apply to every run; unlike :func:`deqlib.pipeline.analyze`, each
        run's seed replaces the reducer's ``random_state``, also that of a passed-in reducer: the
        seeds are what the runs vary. The rarity signal is not used: the runs are compared on
        eq. 3 (the consensus signals are made from them).
    subsample : float, default=0.8
        Share of samples each run sees with ``'subsample'`` (without replacement: duplicated
        rows would distort the t-SNE). The left-out shares of the runs are disjoint while they
        fit (K = 5 at 0.8 leaves each sample out exactly once), so every sample is in some run.
    band : (low, high), default=(0.8, 1.25)
        With ``'band'``, each run multiplies eps (DBSCAN) or min_cluster_size (HDBSCAN) by a
        factor drawn log-uniformly in this range.
    share_affinities : bool, default=True
        With openTSNE and only ``'seed'`` / ``'band'`` varying, compute the PCA and affinities
        once (seeded by the first seed) and start each run from its own random initialisation.
        Otherwise every run is a full t-SNE fit.
    run_schedule : {'analysis', 'consensus'}, default='analysis'
        How each run's openTSNE optimisation iterates (:data:`RUN_SCHEDULES`). ``'consensus'``
        sets early exaggeration, iterations and theta to the cheaper consensus numbers wherever
        the reducer leaves them to its named schedule (numbers given explicitly on a passed-in
        reducer are kept); ``'analysis'`` runs each as one analysis would (the behaviour before
        the consensus schedule). Reducers other than openTSNE are run as given.
        ``params['run_schedule']`` records it. Measured trade-off in ``docs/analysis.md``: at
        20,000 samples the same agreement for about half the cost; at 70,000 less agreement.
    coassoc_threshold : float, default=0.5
        Link two neighbours when they share a cluster in more than this share of runs.
    progress : bool, default=False
        One line per run on stdout (:func:`deqlib.progress.stage_message`).

    Returns
    -------
    StabilityResult
    """
    started_all = time.perf_counter()
    if isinstance(sample_ids, Stages):
        raise TypeError("the second argument of stability_runs is sample_ids; pass the stages by name: "
                        "stability_runs(X, stages=build_stages(...))")
    X = check_embeddings(embeddings, name="embeddings")
    n = X.shape[0]
    ids = [str(i) for i in range(n)] if sample_ids is None else [str(s) for s in sample_ids]
    if len(ids) != n or len(set(ids)) != n:
        raise ValueError(f"sample_ids must be {n} unique ids, one per embedding row")
    if isinstance(K, bool) or not isinstance(K, (int, np.integer)) or K < 2:
        raise ValueError(f"K must be an integer >= 2 (a spread needs two runs), got {K!r}")
    seeds = list(range(33, 33 + K)) if seeds is None else [int(s) for s in seeds]
    if len(seeds) != K or len(set(seeds)) != K:
        raise ValueError(f"seeds must be {K} distinct integers (one per run), got {seeds}")
    vary = tuple(vary)
    unknown = [v for v in vary if v not in VARIATIONS]
    if unknown or not vary:
        raise ValueError(f"vary must name some of {VARIATIONS}, got {vary!r}")
    if not 0 < subsample <= 1:
        raise ValueError(f"subsample must be a share in (0, 1], got {subsample!r}")
    low, high = (float(b) for b in band)
    if not 0 < low <= high:
        raise ValueError(f"band must be (low, high) with 0 < low <= high, got {band!r}")

    stages = checked_stages(stages, seed=seeds[0])
    mode, eta, gamma = stages.mode, stages.eta, stages.gamma
    # The runs' seeds are asked for explicitly: they replace the reducer's own random_state, also
    # for a passed-in reducer (the shared affinities follow the first seed).
    base_reducer = stages.reducer.set_params(random_state=seeds[0])
    base_clusterer, noise_policy = stages.clusterer, stages.noise_policy
    if run_schedule not in RUN_SCHEDULES:
        raise ValueError(f"run_schedule must be one of {sorted(RUN_SCHEDULES)}, got {run_schedule!r}")
    run_overrides = {}
    if RUN_SCHEDULES[run_schedule] is not None and isinstance(base_reducer, OpenTSNEReducer):
        # only what the reducer leaves to its named schedule: explicit numbers are the user's choice
        run_overrides = {key: value for key, value in RUN_SCHEDULES[run_schedule].items()
                         if base_reducer.get_params()[key] is None}
    shared = (share_affinities and isinstance(base_reducer, OpenTSNEReducer)
              and not {"subsample", "order"} & set(vary) and n <= base_reducer.sample_threshold)
    affinities = None
    # identical vectors get one position per run (a t-SNE would spread copies apart): fit the distinct ones
    distinct, inverse, _ = duplicate_groups(X)
    has_duplicates = distinct.size < n
    started = time.perf_counter()
    if shared:
        _say(progress, f"affinities of {n} x {X.shape[1]} once (seed {seeds[0]}) ...")
        base_reducer = clone(base_reducer).set_params(initialization="random")
        affinities = base_reducer.fit_affinities(X[distinct] if has_duplicates else X)
    affinity_seconds = time.perf_counter() - started

    likelihoods = np.full((K, n), np.nan)
    labels = np.full((K, n), ABSENT, dtype=np.int64)
    runs = []
    all_coords = None
    for run, seed in enumerate(seeds):
        started = time.perf_counter()
        rng = np.random.default_rng(seed)
        rows = np.arange(n)
        if "subsample" in vary:
            rows = np.setdiff1d(rows, _left_out(n, subsample, run, seeds[0]))
        order = rng.permutation(rows.size) if "order" in vary else None
        if order is not None:
            rows = rows[order]
        run_reducer = clone(base_reducer).set_params(random_state=seed, **run_overrides)
        setting = {}
        run_clusterer = clone(base_clusterer)
        if "band" in vary:
            run_clusterer, setting = _band_clusterer(base_clusterer, float(np.exp(rng.uniform(np.log(low),
                                                                                              np.log(high)))))
        if shared:
            coords = run_reducer.fit_transform(X[distinct] if has_duplicates else X, affinities=affinities)
            coords = coords[inverse] if has_duplicates else coords
        else:
            run_distinct, run_inverse, _ = duplicate_groups(X[rows])
            coords = run_reducer.fit_transform(X[rows][run_distinct])[run_inverse]
        result = run_clusterer.fit(coords).result_
        if all_coords is None:
            all_coords = np.full((K, n, coords.shape[1]), np.nan)
        all_coords[run, rows] = coords
        labels[run, rows] = result.labels
        likelihoods[run, rows] = scaled_likelihood(result.labels, noise_policy, coords)
        runs.append({"run": run, "seed": seed, "order": _order_hash(order), "n_samples": int(rows.size), **setting,
                     "n_clusters": result.n_clusters, "noise_fraction": result.noise_fraction,
                     "seconds": time.perf_counter() - started})
        _say(progress, f"run {run + 1}/{K} (seed {seed}): {result.summary()} in {runs[-1]['seconds']:.1f}s")

    per_sample = per_sample_stability(likelihoods, ids, eta=eta, gamma=gamma)
    pairs = run_agreement(labels, likelihoods, eta=eta, gamma=gamma)
    started = time.perf_counter()
    neighbors = knn_graph(X, random_state=seeds[0])
    consensus_labels = coassociation_consensus(labels, neighbors, threshold=coassoc_threshold)
    per_sample["consensus_cluster_id"] = consensus_labels
    per_sample["consensus_coassoc"] = scaled_likelihood(consensus_labels, "singleton")
    coassoc_seconds = time.perf_counter() - started
    summary = summarize_stability(per_sample, pairs)
    summary.update({"K": K,  # not the most runs any sample was in: with 'subsample' that can be K - 1
                    "seconds": time.perf_counter() - started_all, "affinity_seconds": affinity_seconds,
                    "run_seconds": float(sum(r["seconds"] for r in runs)), "coassoc_seconds": coassoc_seconds,
                    "consensus_coassoc_n_clusters": int(np.unique(consensus_labels[consensus_labels >= 0]).size),
                    "consensus_coassoc_noise_fraction": float((consensus_labels < 0).mean())})
    params = {"K": K, "seeds": seeds, "vary": list(vary), "mode": mode, "noise_policy": noise_policy,
              "subsample": subsample if "subsample" in vary else None, "band": [low, high] if "band" in vary else None,
              "shared_affinities": bool(shared), "run_schedule": run_schedule, "run_overrides": run_overrides,
              "eta": float(eta), "gamma": float(gamma),
              "coassoc_threshold": coassoc_threshold,
              "reducer": clone(base_reducer).set_params(**run_overrides).cache_key(),
              "cluster": base_clusterer.cache_key(), "row_orders": [r["order"] for r in runs]}
    return StabilityResult(sample_ids=ids, likelihoods=likelihoods, labels=labels, runs=pd.DataFrame(runs),
                           per_sample=per_sample, pairs=pairs, summary=summary, params=params, coords=all_coords)


def stability_of_source(source, encoder, embed_options: dict | None = None, progress: bool = False,
                        **options) -> StabilityResult:
    """:func:`stability_runs` on a source's embeddings (read from the embedding cache when present).

    ``options`` are :func:`stability_runs`'s (``stages``, ``K``, ``seeds``, ``vary``, ...);
    ``embed_options`` go to :func:`deqlib.embed.embed_source`, as in :func:`deqlib.pipeline.analyze`
    (in the stages' mode: ``'reference'`` embeds in float32).
    """
    stages = options.get("stages")
    ids, vectors, _, info = embeddings_from_source(source, encoder, embed_options, progress,
                                                   mode=stages.mode if stages is not None else "default")
    result = stability_runs(vectors, ids, progress=progress, **options)
    result.params["embedding"] = {k: info.get(k) for k in ("dataset", "encoder", "precision", "source_fingerprint")}
    return result


# ------------------------------------------------------------------------------------- banks
def consensus_bank(result: StabilityResult, signal: str = "consensus-mean", metadata: dict | None = None):
    """A bank whose likelihood is a consensus signal, with its spread beside it.

    ``cluster_id, cluster_size, largest_cluster_size`` are the co-association consensus
    partition (noise as singletons), the only partition the K runs agree on; with
    ``signal='consensus-coassoc'`` the likelihood is exactly that partition's (eq. 2-3, the
    ``cluster`` signal), so the bank exports to the forks' pickle; with ``'consensus-mean'`` it is
    the mean over the runs (not a cluster size ratio: :func:`deqlib.bank.export_official_pickle`
    refuses it, as the signal is registered as not cluster-based).
    Extra columns: ``likelihood_std``, ``likelihood_rank_spread`` (over the K runs).
    """
    if signal not in SIGNALS:
        raise ValueError(f"signal must be one of {SIGNALS}, got {signal!r}")
    per_sample = result.per_sample
    partition = ClusterSignal("singleton").fit(RarityContext(labels=per_sample["consensus_cluster_id"].to_numpy()))
    likelihood = partition.likelihood_ if signal == "consensus-coassoc" else per_sample["likelihood_mean"].to_numpy()
    signal_params = {"K": int(result.params["K"])}
    if signal == "consensus-coassoc":
        signal_params["threshold"] = result.params.get("coassoc_threshold")
    meta = {"noise_policy": "singleton", "K": int(result.params["K"]), "stability": dict(result.summary),
            "stability_params": dict(result.params), **(metadata or {})}
    return bank_from_likelihood(
        result.sample_ids, likelihood, signal, signal_params, metadata=meta,
        extra_columns={"likelihood_std": per_sample["likelihood_std"].to_numpy(),
                       "likelihood_rank_spread": per_sample["likelihood_rank_spread"].to_numpy()},
        clusters={"cluster_id": partition.cluster_id_, "cluster_size": partition.cluster_size_,
                  "largest_cluster_size": partition.largest_cluster_size_})
