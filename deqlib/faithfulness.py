"""How faithful a low-dimensional map is to the embeddings it was made from.

:func:`trustworthiness` (scikit-learn's) and :func:`knn_recall` (k = 10) of the coordinates
against the embeddings, on a random sample of 5,000 (their cost grows with N^2), and
:func:`pca_cross_check`: the same clusterer in the embeddings' PCA-50 space, its ARI with the
map's clusters. :func:`faithfulness` gives all three; ``analyze(..., faithfulness=True)``
(:mod:`deqlib.pipeline`) and ``StabilityResult.faithfulness`` (:mod:`deqlib.stability`) call it.
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.base import clone

from deqlib._validation import check_embeddings
from deqlib.labels import noise_as_singletons

__all__ = ["FAITHFULNESS_K", "FAITHFULNESS_SAMPLE", "trustworthiness", "knn_recall", "pca_cross_check",
           "faithfulness"]

FAITHFULNESS_K = 10
FAITHFULNESS_SAMPLE = 5000


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
            "pca_ari": float(adjusted_rand_score(noise_as_singletons(mine), noise_as_singletons(result.labels)))}


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
