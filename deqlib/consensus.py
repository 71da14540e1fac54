"""The statistics of K runs of one analysis: spread, agreement and consensus, as pure functions.

Input is a ``(K, N)`` matrix of likelihoods (NaN where a run did not see a sample) and/or a
``(K, N)`` matrix of cluster labels (``-1`` noise, :data:`ABSENT` = not in the run):

* :func:`per_sample_stability` (mean, standard deviation, rank spread, weight range per sample),
  :func:`run_agreement` (per run pair: ARI, Spearman, share of weights moved by more than 0.1),
  :func:`summarize_stability`, :func:`percentile_ranks`, :func:`spearman`;
* the two consensus signals' maths: :func:`consensus_mean` and :func:`coassociation_consensus`
  (on the embeddings' k-NN graph, :func:`knn_graph`).

No runs are made here (that is :mod:`deqlib.stability`) and no I/O: the rarity signals of
:mod:`deqlib.likelihood` (``consensus-mean``, ``consensus-coassoc``) and :mod:`deqlib.stability`
both import this module, which imports neither.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from deqlib.labels import noise_as_singletons, relabel_by_size
from deqlib.weights import DEFAULT_ETA, DEFAULT_GAMMA, gfl_weight

__all__ = ["ABSENT", "WEIGHT_MOVE", "check_run_matrix", "percentile_ranks", "per_sample_stability", "spearman",
           "run_agreement", "consensus_mean", "coassociation_consensus", "knn_graph", "summarize_stability"]

ABSENT = -2  # label of a sample a run did not see (subsample); -1 stays DBSCAN's noise
WEIGHT_MOVE = 0.1  # a weight that moves by more than this between runs "moved"


def check_run_matrix(likelihoods) -> np.ndarray:
    """``likelihoods`` as a float64 ``(runs, samples)`` matrix (NaN = not in the run); every sample in some run."""
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

    L = check_run_matrix(likelihoods)
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
    L = check_run_matrix(likelihoods)
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


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation of two rankings; two constant rankings agree (1) when equal, else 0, and one
    constant ranking against a varying one gives 0 (scipy would return NaN)."""
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

    L = check_run_matrix(likelihoods)
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != L.shape:
        raise ValueError(f"labels {labels.shape} and likelihoods {L.shape} must have the same shape")
    rows = []
    for a in range(L.shape[0]):
        for b in range(a + 1, L.shape[0]):
            common = np.isfinite(L[a]) & np.isfinite(L[b])
            la, lb = noise_as_singletons(labels[a, common]), noise_as_singletons(labels[b, common])
            wa = gfl_weight(L[a, common], eta=eta, gamma=gamma)
            wb = gfl_weight(L[b, common], eta=eta, gamma=gamma)
            rows.append({"run_a": a, "run_b": b, "n_common": int(common.sum()),
                         "ari": float(adjusted_rand_score(la, lb)),
                         "spearman": spearman(L[a, common], L[b, common]),
                         "weight_moved_share": float((np.abs(wa - wb) > threshold).mean())})
    return pd.DataFrame(rows, columns=["run_a", "run_b", "n_common", "ari", "spearman", "weight_moved_share"])


def consensus_mean(likelihoods) -> np.ndarray:
    """The consensus likelihood as the mean over the runs that saw each sample (in (0, 1])."""
    return np.nanmean(check_run_matrix(likelihoods), axis=0)


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
    return relabel_by_size(out)


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


def knn_graph(X: np.ndarray, k: int = 15, pca_components: int = 50, random_state: int = 0) -> np.ndarray:
    """Each row's ``k + 1`` nearest other rows in the PCA-``pca_components`` space of ``X``: the
    ``(N, min(k + 1, N - 1))`` index array :func:`coassociation_consensus` counts co-association on.

    A row is never its own neighbour (``kneighbors`` without query points leaves it out), so at
    most ``N - 1`` neighbours exist: with few samples (N = 12 and the default k = 15: scikit-learn
    refused "n_neighbors = 12") every other row is a neighbour.
    """
    from sklearn.decomposition import PCA
    from sklearn.neighbors import NearestNeighbors

    if X.shape[0] < 2:
        raise ValueError(f"a neighbour graph needs at least 2 samples, got {X.shape[0]}; add samples")
    if pca_components < min(X.shape):
        X = PCA(pca_components, svd_solver="randomized", random_state=random_state).fit_transform(X)
    n_neighbors = min(k + 1, X.shape[0] - 1)
    return NearestNeighbors(n_neighbors=n_neighbors).fit(X).kneighbors(return_distance=False)
