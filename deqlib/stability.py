"""How far to trust a likelihood: K runs, per-sample spread, run agreement, consensus, faithfulness.

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
Pure functions on a ``(K, N)`` matrix of likelihoods (NaN where a sample was not in a run)
    :func:`per_sample_stability` (mean, standard deviation, rank spread, weight range),
    :func:`run_agreement` (per run pair: ARI, Spearman, share of weights moved by > 0.1),
    :func:`consensus_mean` and :func:`coassociation_consensus` (two consensus signals),
    :func:`summarize_stability`.
Faithfulness of the 3-D map
    :func:`trustworthiness`, :func:`knn_recall` (k = 10) of the coordinates against the
    embedding on a sample of 5,000, and :func:`pca_cross_check` (the same clusterer in the
    embedding's PCA-50 space, ARI with the 3-D clusters); :func:`faithfulness` gives all three.
:func:`consensus_bank`
    A bank whose ``likelihood`` is a consensus signal, with ``likelihood_std`` and
    ``likelihood_rank_spread`` columns and ``signal``, ``K``, the runs' seeds and row orders and
    the stability figures in its metadata.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.base import clone

from deqlib.likelihood import RARITY_SIGNALS, scaled_likelihood
from deqlib.reduce import OpenTSNEReducer, check_embeddings
from deqlib.weights import DEFAULT_ETA, DEFAULT_GAMMA, gfl_weight

__all__ = [
    "VARIATIONS",
    "SIGNALS",
    "StabilityResult",
    "stability_runs",
    "percentile_ranks",
    "per_sample_stability",
    "run_agreement",
    "consensus_mean",
    "coassociation_consensus",
    "summarize_stability",
    "trustworthiness",
    "knn_recall",
    "pca_cross_check",
    "faithfulness",
    "consensus_bank",
    "stability_of_source",
]

logger = logging.getLogger(__name__)

#: What may vary between the K runs.
VARIATIONS = ("seed", "subsample", "band", "order")
#: Consensus signals a bank can carry (its ``signal`` metadata), registered in
#: ``deqlib.likelihood.RARITY_SIGNALS``; only the co-association one is a partition (cluster-based),
#: so only it can be written to the forks' pickle.
SIGNALS = tuple(n for n in RARITY_SIGNALS.names() if RARITY_SIGNALS.entry(n).extra.get("needs_runs"))
ABSENT = -2  # label of a sample a run did not see (subsample); -1 stays DBSCAN's noise
DEFAULT_K = 5
DEFAULT_SUBSAMPLE = 0.8
DEFAULT_BAND = (0.8, 1.25)
WEIGHT_MOVE = 0.1  # a weight that moves by more than this between runs "moved"
FAITHFULNESS_K = 10
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
FAITHFULNESS_SAMPLE = 5000


# ------------------------------------------------------------------------------ pure statistics
def _check_matrix(likelihoods) -> np.ndarray:
    L = np.asarray(likelihoods, dtype=np.float64)
    if L.ndim != 2 or L.shape[0] < 1 or L.shape[1] < 1:
        raise ValueError(f"likelihoods must be a (runs, samples) matrix, got shape {L.shape}")
    seen = np.isfinite(L)
    if not seen.any(axis=0).all():
        missing = np.flatnonzero(~seen.any(axis=0))
        raise ValueError(f"{missing.size} samples are in no run (e.g. columns {missing[:5].tolist()}); "
                         "raise the subsample share or the number of runs")
    return L


def percentile_ranks(likelihoods) -> np.ndarray:
    """Per run, each sample's rank by likelihood as a fraction in (0, 1] (ties share their mean rank).

    NaN (sample not in the run) stays NaN; ranks are over the samples the run saw.
    """
    from scipy.stats import rankdata

    L = _check_matrix(likelihoods)
    ranks = np.full_like(L, np.nan)
    for run, row in enumerate(L):
        seen = np.isfinite(row)
        ranks[run, seen] = rankdata(row[seen]) / seen.sum()
    return ranks


def per_sample_stability(likelihoods, sample_ids: Sequence[str] | None = None, eta: float = DEFAULT_ETA,
                         gamma: float = DEFAULT_GAMMA) -> pd.DataFrame:
    """Per sample: likelihood mean, standard deviation and rank spread over the runs that saw it.

    Returns
    -------
    DataFrame
        ``sample_id, n_runs, likelihood_mean, likelihood_std`` (population std, 0 for one run),
        ``likelihood_rank_spread`` (max - min of the sample's percentile rank, 0 = always the
        same place in the ranking, 1 = from one end to the other), ``weight_mean`` and
        ``weight_range`` (max - min of eq. 4's weight at ``eta``, ``gamma``).
    """
    L = _check_matrix(likelihoods)
    ranks = percentile_ranks(L)
    weights = np.where(np.isfinite(L), gfl_weight(np.nan_to_num(L, nan=1.0), eta=eta, gamma=gamma), np.nan)
    ids = [str(i) for i in range(L.shape[1])] if sample_ids is None else [str(s) for s in sample_ids]
    if len(ids) != L.shape[1]:
        raise ValueError(f"got {len(ids)} sample ids for {L.shape[1]} samples")
    return pd.DataFrame({
        "sample_id": ids,
        "n_runs": np.isfinite(L).sum(axis=0).astype(np.int64),
        "likelihood_mean": np.nanmean(L, axis=0),
        "likelihood_std": np.nanstd(L, axis=0),
        "likelihood_rank_spread": np.nanmax(ranks, axis=0) - np.nanmin(ranks, axis=0),
        "weight_mean": np.nanmean(weights, axis=0),
        "weight_range": np.nanmax(weights, axis=0) - np.nanmin(weights, axis=0),
    })


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return 1.0 if np.array_equal(a, b) else 0.0  # two constant rankings: identical or unrelated
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0  # one run ranks nothing: no agreement to speak of
    return float(spearmanr(a, b).statistic)


def run_agreement(labels, likelihoods, eta: float = DEFAULT_ETA, gamma: float = DEFAULT_GAMMA,
                  threshold: float = WEIGHT_MOVE) -> pd.DataFrame:
    """Per pair of runs, on the samples both saw: ARI of the partitions, Spearman of the likelihoods,
    and the share of samples whose weight (eq. 4) differs by more than ``threshold``.

    ``labels``: ``(K, N)`` cluster labels (``-1`` noise, each noise sample counted as its own
    group for the ARI, ``-2`` = not in the run); ``likelihoods``: ``(K, N)`` with NaN where absent.
    """
    from sklearn.metrics import adjusted_rand_score

    L = _check_matrix(likelihoods)
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != L.shape:
        raise ValueError(f"labels {labels.shape} and likelihoods {L.shape} must have the same shape")
    rows = []
    for a in range(L.shape[0]):
        for b in range(a + 1, L.shape[0]):
            common = np.isfinite(L[a]) & np.isfinite(L[b])
            la, lb = _noise_as_singletons(labels[a, common]), _noise_as_singletons(labels[b, common])
            wa = gfl_weight(L[a, common], eta=eta, gamma=gamma)
            wb = gfl_weight(L[b, common], eta=eta, gamma=gamma)
            rows.append({"run_a": a, "run_b": b, "n_common": int(common.sum()),
                         "ari": float(adjusted_rand_score(la, lb)),
                         "spearman": _spearman(L[a, common], L[b, common]),
                         "weight_moved_share": float((np.abs(wa - wb) > threshold).mean())})
    return pd.DataFrame(rows, columns=["run_a", "run_b", "n_common", "ari", "spearman", "weight_moved_share"])


def _noise_as_singletons(labels: np.ndarray) -> np.ndarray:
    out = labels.copy()
    noise = out < 0
    out[noise] = out.max(initial=-1) + 1 + np.arange(noise.sum())
    return out


def consensus_mean(likelihoods) -> np.ndarray:
    """The consensus likelihood as the mean over the runs that saw each sample (in (0, 1])."""
    return np.nanmean(_check_matrix(likelihoods), axis=0)


def coassociation_consensus(labels, neighbors, threshold: float = 0.5) -> np.ndarray:
    """Consensus partition from co-association on a k-NN graph.

    Two neighbouring samples (an edge of ``neighbors``, an ``(N, k)`` index array, e.g. the
    embedding's k-NN) are linked when they share a (non-noise) cluster in more than
    ``threshold`` of the runs that saw both; consensus clusters are the connected components.
    A sample linked to nobody is noise (``-1``). Restricting co-association to k-NN edges keeps
    it O(N k) instead of the O(N^2) full matrix. Identical runs give back their partition
    wherever each cluster is connected in the k-NN graph.

    Returns
    -------
    ndarray of int64
        Labels ``0..C-1`` ordered by size (0 = largest), ``-1`` for noise.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from deqlib.cluster import _relabel_by_size

    labels = np.asarray(labels, dtype=np.int64)
    if labels.ndim != 2:
        raise ValueError(f"labels must be a (runs, samples) matrix, got shape {labels.shape}")
    neighbors = np.asarray(neighbors, dtype=np.int64)
    n = labels.shape[1]
    if neighbors.ndim != 2 or neighbors.shape[0] != n:
        raise ValueError(f"neighbors must be an (N, k) index array with N = {n}, got shape {neighbors.shape}")
    if isinstance(threshold, bool) or not 0 <= threshold < 1:  # True is 1 to Python, never a share
        raise ValueError(f"threshold must be a number in [0, 1), got {threshold!r}")
    src = np.repeat(np.arange(n), neighbors.shape[1])
    dst = neighbors.ravel()
    keep = src != dst
    src, dst = src[keep], dst[keep]
    a, b = labels[:, src], labels[:, dst]
    both = (a != ABSENT) & (b != ABSENT)
    together = both & (a == b) & (a >= 0)
    share = together.sum(axis=0) / np.maximum(both.sum(axis=0), 1)
    linked = share > threshold
    graph = coo_matrix((np.ones(linked.sum()), (src[linked], dst[linked])), shape=(n, n))
    _, components = connected_components(graph, directed=False)
    sizes = np.bincount(components)
    out = np.where(sizes[components] > 1, components, -1).astype(np.int64)
    return _relabel_by_size(out)


def summarize_stability(per_sample: pd.DataFrame, pairs: pd.DataFrame, threshold: float = WEIGHT_MOVE) -> dict:
    """Overall figures: run agreement (mean / min ARI and Spearman), spread, share of weights that moved."""
    summary = {
        "K": int(per_sample["n_runs"].max()),  # the most runs a sample was in
        "n_samples": int(len(per_sample)),
        "likelihood_std_median": float(per_sample["likelihood_std"].median()),
        "likelihood_std_q90": float(per_sample["likelihood_std"].quantile(0.9)),
        "rank_spread_median": float(per_sample["likelihood_rank_spread"].median()),
        "rank_spread_q90": float(per_sample["likelihood_rank_spread"].quantile(0.9)),
        # share of samples whose weight spans more than `threshold` across the K runs
        "weight_moved_share": float((per_sample["weight_range"] > threshold).mean()),
    }
    if len(pairs):
        summary.update({
            "pair_ari_mean": float(pairs["ari"].mean()), "pair_ari_min": float(pairs["ari"].min()),
            "pair_spearman_mean": float(pairs["spearman"].mean()),
            "pair_spearman_min": float(pairs["spearman"].min()),
            # the same per pair of runs: does not grow with K
            "pair_weight_moved_share_mean": float(pairs["weight_moved_share"].mean()),
        })
    return summary


# ---------------------------------------------------------------------------------- faithfulness
def _sample_rows(n: int, sample_size: int | None, random_state: int) -> np.ndarray:
    if sample_size is None or n <= sample_size:
        return np.arange(n)
    return np.sort(np.random.default_rng(random_state).choice(n, sample_size, replace=False))


def trustworthiness(X, Y, k: int = FAITHFULNESS_K, sample_size: int | None = FAITHFULNESS_SAMPLE,
                    random_state: int = 0) -> float:
    """scikit-learn's trustworthiness of the map ``Y`` of ``X`` (1 = no false neighbours in the map).

    On a random sample of ``sample_size`` rows when there are more (its cost is quadratic).
    """
    from sklearn.manifold import trustworthiness as _trust

    X, Y = check_embeddings(X, "X"), check_embeddings(Y, "Y")
    rows = _sample_rows(X.shape[0], sample_size, random_state)
    if rows.size <= 2 * k:
        raise ValueError(f"trustworthiness with k={k} needs more than {2 * k} samples, got {rows.size}")
    return float(_trust(X[rows], Y[rows], n_neighbors=k))


def knn_recall(X, Y, k: int = FAITHFULNESS_K, sample_size: int | None = FAITHFULNESS_SAMPLE,
               random_state: int = 0) -> float:
    """Mean share of each sample's ``k`` nearest neighbours in ``X`` that are also among its ``k`` in ``Y``."""
    from sklearn.neighbors import NearestNeighbors

    X, Y = check_embeddings(X, "X"), check_embeddings(Y, "Y")
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows and Y {Y.shape[0]}: they must be the same samples")
    rows = _sample_rows(X.shape[0], sample_size, random_state)
    if rows.size <= k:
        raise ValueError(f"k-NN recall with k={k} needs more than {k} samples, got {rows.size}")
    high = NearestNeighbors(n_neighbors=k + 1).fit(X[rows]).kneighbors(return_distance=False)[:, :k]
    low = NearestNeighbors(n_neighbors=k + 1).fit(Y[rows]).kneighbors(return_distance=False)[:, :k]
    hits = [np.intersect1d(h, l, assume_unique=True).size for h, l in zip(high, low)]
    return float(np.mean(hits) / k)


def pca_cross_check(X, labels, clusterer, n_components: int = 50, sample_size: int | None = FAITHFULNESS_SAMPLE,
                    random_state: int = 0) -> dict:
    """The same clusterer on the embedding's PCA space: do its clusters match the 3-D map's?

    A low ARI says the 3-D clusters are partly t-SNE's making (or that the clusterer's
    setting means something else in 50 dimensions: read it with the cluster counts).
    """
    from sklearn.decomposition import PCA
    from sklearn.metrics import adjusted_rand_score

    X = check_embeddings(X)
    labels = np.asarray(labels, dtype=np.int64)
    rows = _sample_rows(X.shape[0], sample_size, random_state)
    sub = X[rows]
    if n_components < min(sub.shape):
        sub = PCA(n_components, random_state=random_state).fit_transform(sub)
    result = clone(clusterer).fit(sub).result_
    mine = labels[rows]
    return {"pca_components": int(min(n_components, sub.shape[1])), "pca_n_clusters": result.n_clusters,
            "pca_noise_fraction": result.noise_fraction, "map_n_clusters": int(np.unique(mine[mine >= 0]).size),
            "pca_ari": float(adjusted_rand_score(_noise_as_singletons(mine), _noise_as_singletons(result.labels)))}


def faithfulness(X, coords, labels=None, clusterer=None, k: int = FAITHFULNESS_K,
                 sample_size: int | None = FAITHFULNESS_SAMPLE, random_state: int = 0) -> dict:
    """Trustworthiness and k-NN recall of ``coords`` against ``X``; with ``labels`` and
    ``clusterer``, :func:`pca_cross_check` too. All on one random sample of ``sample_size``."""
    started = time.perf_counter()
    n = len(coords)
    if n <= 2 * k:  # trustworthiness needs k < n / 2: too few samples to say anything
        return {"k": int(k), "sample_size": int(n), "skipped": f"{n} samples are too few for {k}-NN measures"}
    out = {"k": int(k), "sample_size": int(min(sample_size or n, n)),
           "trustworthiness": trustworthiness(X, coords, k, sample_size, random_state),
           "knn_recall": knn_recall(X, coords, k, sample_size, random_state)}
    if labels is not None and clusterer is not None:
        out.update(pca_cross_check(X, labels, clusterer, sample_size=sample_size, random_state=random_state))
    out["seconds"] = time.perf_counter() - started
    return out


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
    if progress:
        print(f"[deq stability] {message}", file=sys.stderr, flush=True)
    else:
        logger.debug(message)


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


def _knn_graph(X: np.ndarray, k: int = 15, pca_components: int = 50, random_state: int = 0) -> np.ndarray:
    from sklearn.decomposition import PCA
    from sklearn.neighbors import NearestNeighbors

    if pca_components < min(X.shape):
        X = PCA(pca_components, svd_solver="randomized", random_state=random_state).fit_transform(X)
    k = min(k, X.shape[0] - 1)
    return NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(return_distance=False)


def stability_runs(embeddings, sample_ids: Sequence[str] | None = None, *, K: int = DEFAULT_K,
                   seeds: Sequence[int] | None = None, vary: Sequence[str] = ("seed",), mode: str = "default",
                   reducer=None, clusterer=None, noise_policy: str | None = None, preset: str | None = None,
                   stages=None,
                   subsample: float = DEFAULT_SUBSAMPLE, band: tuple[float, float] = DEFAULT_BAND,
                   share_affinities: bool = True, run_schedule: str = DEFAULT_RUN_SCHEDULE,
                   eta: float = DEFAULT_ETA, gamma: float = DEFAULT_GAMMA,
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
    mode, reducer, clusterer, noise_policy, preset
        As in :func:`deqlib.pipeline.analyze`, built by :func:`deqlib.pipeline.build_stages`
        (``mode='reference'``: scikit-learn's t-SNE, raw eps, noise as one cluster). Unlike
        ``analyze``, each run's seed replaces the reducer's ``random_state``, also that of a
        passed-in reducer: the seeds are what the runs vary.
    stages : deqlib.pipeline.Stages, optional
        Stages from :func:`deqlib.pipeline.build_stages` (e.g. the ones an analysis ran), instead
        of ``reducer``, ``clusterer``, ``noise_policy`` and ``preset`` (passing both is an error).
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
    eta, gamma : float
        Weight parameters of eq. 4 for the weight figures.
    coassoc_threshold : float, default=0.5
        Link two neighbours when they share a cluster in more than this share of runs.
    progress : bool, default=False
        One line per run on stderr.

    Returns
    -------
    StabilityResult
    """
    from deqlib.pipeline import build_stages

    started_all = time.perf_counter()
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

    if stages is not None:
        given = [k for k, v in (("reducer", reducer), ("clusterer", clusterer), ("noise_policy", noise_policy),
                                ("preset", preset)) if v is not None]
        if given:
            raise ValueError(f"pass stages= or {', '.join(given)}, not both")
        reducer, clusterer, noise_policy = stages.reducer, stages.clusterer, stages.noise_policy
    stages = build_stages(mode, reducer=reducer, clusterer=clusterer, noise_policy=noise_policy, preset=preset,
                          seed=seeds[0])
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
    started = time.perf_counter()
    if shared:
        _say(progress, f"affinities of {n} x {X.shape[1]} once (seed {seeds[0]}) ...")
        base_reducer = clone(base_reducer).set_params(initialization="random")
        affinities = base_reducer.fit_affinities(X)
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
        coords = (run_reducer.fit_transform(X, affinities=affinities) if shared
                  else run_reducer.fit_transform(X[rows]))
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
    neighbors = _knn_graph(X, random_state=seeds[0])
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

    ``options`` are :func:`stability_runs`'s (``K``, ``seeds``, ``vary``, ``reducer``, ...);
    ``embed_options`` go to :func:`deqlib.embed.embed_source`, as in :func:`deqlib.pipeline.analyze`.
    """
    from deqlib.pipeline import _embeddings_from_source

    ids, vectors, _, info = _embeddings_from_source(source, encoder, embed_options, progress)
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
    from deqlib.bank import bank_from_likelihood
    from deqlib.likelihood import ClusterSignal, RarityContext

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
