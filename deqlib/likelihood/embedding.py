"""Rarity signals measured in the embedding space, with no clusters: LOF, cosine k-NN distance,
a two-sided density, IsolationForest, cleanlab's out-of-distribution score, and GLOSH.

Each reads ``context.embeddings`` (GLOSH: ``context.outlier_scores``) and works in
:func:`deqlib.likelihood.space.embedding_space` (unit vectors, centred, PCA to ``n_components``;
deterministic). A score where larger means rarer becomes a likelihood in (0, 1] by
:func:`~deqlib.likelihood.space.relative_likelihood` (relative to the most typical 1 percent, like
``knn-density``) unless the score already is a ratio (LOF).
"""

from __future__ import annotations

import numpy as np

from deqlib._validation import check_int, check_real
from deqlib.likelihood.base import RaritySignal, _register
from deqlib.likelihood.space import embedding_space, kth_neighbour_distance, relative_likelihood

__all__ = ["signal_space", "local_outlier_factor", "LOFSignal", "KNNCosineSignal", "TwoSidedDensitySignal",
           "IsolationForestSignal", "CleanlabOODSignal", "GLOSHSignal"]


def signal_space(signal: RaritySignal, context, n_components, whiten: bool = False, centre: bool = True) -> np.ndarray:
    """``context.embeddings`` in :func:`embedding_space` (the error names ``signal`` when they are missing)."""
    X = signal._need(context, "embeddings", "the encoder's vectors, one row per sample")
    return embedding_space(X, n_components=n_components, whiten=whiten, centre=centre)


def _check_neighbours(name: str, value, n_samples: int) -> int:
    value = check_int(name, value, 1)
    if value >= n_samples:
        raise ValueError(f"{name} must be below the number of samples N = {n_samples}, got {value}; "
                         "use a smaller value or more samples")
    return value


def local_outlier_factor(Z: np.ndarray, n_neighbors: int = 20) -> np.ndarray:
    """scikit-learn's LOF of each row of ``Z`` (about 1 inside a cluster, larger the sparser than its neighbours)."""
    from sklearn.neighbors import LocalOutlierFactor

    lof = LocalOutlierFactor(n_neighbors=n_neighbors).fit(Z)
    return -lof.negative_outlier_factor_


@_register("LOF (k=20) in the embedding space (unit vectors, PCA-50): likelihood = min(1, 1 / LOF)")
class LOFSignal(RaritySignal):
    """The local outlier factor in the embedding space: a sample's density against its neighbours'.

    ``likelihood = min(1, 1 / LOF)``: LOF is the ratio of the neighbours' local reachability density
    to the sample's own, so ``1 / LOF`` is the sample's density relative to its neighbourhood;
    samples as dense as their neighbours (or denser) get 1.

    Parameters
    ----------
    n_neighbors : int, default=20
        k of the LOF (scikit-learn's default), ``1 <= k < N``.
    n_components : int or None, default=50
        PCA components of the embedding space (:func:`deqlib.likelihood.space.embedding_space`);
        None: the unit vectors without PCA.

    Attributes
    ----------
    likelihood_, params_
        See :class:`~deqlib.likelihood.RaritySignal`; ``params_`` adds ``n_outliers`` (LOF > 1.5).
    outlier_factor_ : ndarray (N,)
        The LOF per sample.
    """

    name = "lof"
    needs = ("embeddings",)

    def __init__(self, n_neighbors: int = 20, n_components: int | None = 50):
        self.n_neighbors = n_neighbors
        self.n_components = n_components

    def fit(self, context) -> "LOFSignal":
        Z = signal_space(self, context, self.n_components)
        k = _check_neighbours("n_neighbors", self.n_neighbors, Z.shape[0])
        self.outlier_factor_ = local_outlier_factor(Z, k)
        with np.errstate(divide="ignore"):
            likelihood = np.minimum(1.0, np.where(self.outlier_factor_ > 0, 1.0 / self.outlier_factor_, 1.0))
        return self._finish(likelihood, n_outliers=int((self.outlier_factor_ > 1.5).sum()))


@_register("cosine distance to the k-th nearest neighbour (k=10) in the embedding space, relative to the "
           "densest 1 percent")
class KNNCosineSignal(RaritySignal):
    """Cosine k-NN distance: ``min(1, d_ref / d_i)`` with ``d_i`` the cosine distance to the ``k``-th neighbour.

    The vectors are made unit length before :func:`~deqlib.likelihood.space.embedding_space`'s
    PCA, which keeps distances up to the dropped components, so for its rows ``a, b``
    ``|a - b|^2 / 2 = 1 - cos`` of the original vectors: the Euclidean neighbours are the cosine ones.

    Parameters
    ----------
    k : int, default=10
        Neighbourhood size, ``1 <= k < N``.
    reference_quantile : float, default=0.01
        Quantile of the distances that maps to likelihood 1, in ``[0, 1)``.
    n_components : int or None, default=50
        PCA components of the space the cosine is measured in; None: the raw vectors' directions.
    """

    name = "knn-cosine"
    needs = ("embeddings",)

    def __init__(self, k: int = 10, reference_quantile: float = 0.01, n_components: int | None = 50):
        self.k = k
        self.reference_quantile = reference_quantile
        self.n_components = n_components

    def fit(self, context) -> "KNNCosineSignal":
        _check_quantile(self.reference_quantile)
        Z = signal_space(self, context, self.n_components)
        k = _check_neighbours("k", self.k, Z.shape[0])
        cosine_distance = kth_neighbour_distance(Z, k) ** 2 / 2.0
        return self._finish(relative_likelihood(cosine_distance, self.reference_quantile))


def _check_quantile(value, name: str = "reference_quantile") -> float:
    check_real(name, value, 0.0)
    if not value < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


@_register("two-sided density: the k-NN radius against the typical (median) one, either way, so a tight "
           "small group is rare too")
class TwoSidedDensitySignal(RaritySignal):
    """A sample is common where its neighbourhood is as dense as the typical sample's; denser *or* sparser is rare.

    With ``r_i`` the distance to the ``k``-th neighbour in the embedding space and ``r_typ`` the
    ``reference_quantile`` of all radii (the median by default)::

        likelihood = min(r_i / r_typ, r_typ / r_i)

    A one-sided density (``knn-density``, ``knn-cosine``) calls a tight group common; images that
    an artefact makes alike (blurred, overexposed) form such a group, small and far denser than a
    class, and this signal calls them rare.

    Parameters
    ----------
    k : int, default=10
        Neighbourhood size, ``1 <= k < N``.
    reference_quantile : float, default=0.5
        Quantile of the radii taken as typical, in ``[0, 1)`` (``method='lower'``: one sample's radius,
        so that sample gets exactly 1).
    n_components : int or None, default=50
        PCA components of the embedding space.
    """

    name = "two-sided-density"
    needs = ("embeddings",)

    def __init__(self, k: int = 10, reference_quantile: float = 0.5, n_components: int | None = 50):
        self.k = k
        self.reference_quantile = reference_quantile
        self.n_components = n_components

    def fit(self, context) -> "TwoSidedDensitySignal":
        quantile = _check_quantile(self.reference_quantile)
        Z = signal_space(self, context, self.n_components)
        k = _check_neighbours("k", self.k, Z.shape[0])
        radius = kth_neighbour_distance(Z, k)
        typical = float(np.quantile(radius, quantile, method="lower"))
        floor = np.finfo(np.float64).tiny
        if typical <= 0:  # over half the samples are exact duplicates: they are the typical ones
            likelihood = np.where(radius > 0, 0.5, 1.0)
        else:
            ratio = np.maximum(radius, floor) / typical
            likelihood = np.minimum(ratio, 1.0 / ratio)
        likelihood = np.maximum(likelihood, floor)
        return self._finish(likelihood, typical_radius=typical,
                            n_denser=int((radius < typical).sum()), n_sparser=int((radius > typical).sum()))


@_register("scikit-learn IsolationForest (200 trees, seeded) in the embedding space, relative to the most "
           "normal 1 percent")
class IsolationForestSignal(RaritySignal):
    """scikit-learn's IsolationForest: ``s`` = its anomaly score ``2^(-E[h] / c(n))`` (0.5 normal, towards 1 anomalous).

    ``likelihood = min(1, s_ref / s)`` with ``s_ref`` the ``reference_quantile`` of the scores.

    Parameters
    ----------
    n_estimators : int, default=200
        Trees.
    max_samples : int or 'auto', default='auto'
        Samples per tree (scikit-learn's ``min(256, N)``).
    reference_quantile : float, default=0.01
        Quantile of the anomaly scores that maps to likelihood 1.
    n_components : int or None, default=50
        PCA components of the embedding space.
    random_state : int, default=0
        The forest's seed: the same seed gives the same likelihood whatever ``n_jobs``.
    n_jobs : int or None, default=None
        Threads (scikit-learn's meaning); the result does not depend on it.
    """

    name = "isolation-forest"
    needs = ("embeddings",)

    def __init__(self, n_estimators: int = 200, max_samples="auto", reference_quantile: float = 0.01,
                 n_components: int | None = 50, random_state: int = 0, n_jobs: int | None = None):
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.reference_quantile = reference_quantile
        self.n_components = n_components
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(self, context) -> "IsolationForestSignal":
        from sklearn.ensemble import IsolationForest

        n_estimators = check_int("n_estimators", self.n_estimators, 1)
        quantile = _check_quantile(self.reference_quantile)
        seed = check_int("random_state", self.random_state, 0)
        if self.max_samples != "auto":
            check_int("max_samples", self.max_samples, 2)
        Z = signal_space(self, context, self.n_components)
        forest = IsolationForest(n_estimators=n_estimators, max_samples=self.max_samples, random_state=seed,
                                 n_jobs=self.n_jobs).fit(Z)
        anomaly = -forest.score_samples(Z)  # in (0, 1]
        return self._finish(relative_likelihood(anomaly, quantile))


@_register("cleanlab's OutOfDistribution score from features (mean cosine distance to the k=10 nearest "
           "neighbours, exp-transformed), over its maximum", requires=("cleanlab",))
class CleanlabOODSignal(RaritySignal):
    """cleanlab's feature-based out-of-distribution score (``cleanlab.outlier.OutOfDistribution``), run as is.

    cleanlab scores each sample in [0, 1] (smaller = less typical) from its mean distance to its
    ``k`` nearest neighbours (cosine above 3 dimensions), ``exp(-t * d)``. The likelihood is the score
    over its maximum (the most typical sample gets 1).

    Parameters
    ----------
    k : int, default=10
        cleanlab's ``k`` (its default), ``1 <= k < N``.
    n_components : int or None, default=50
        The features cleanlab gets: the unit vectors projected on the embedding space's PCA
        components, not centred (so cleanlab's cosine is the original vectors' up to the dropped
        components); None: the unit vectors, full width (slower, O(N^2 D)).
    """

    name = "cleanlab-ood"
    needs = ("embeddings",)

    def __init__(self, k: int = 10, n_components: int | None = 50):
        self.k = k
        self.n_components = n_components

    def fit(self, context) -> "CleanlabOODSignal":
        from cleanlab.outlier import OutOfDistribution

        Z = signal_space(self, context, self.n_components, centre=False)
        k = _check_neighbours("k", self.k, Z.shape[0])
        detector = OutOfDistribution(params={"k": k})
        scores = np.asarray(detector.fit_score(features=Z, verbose=False), dtype=np.float64)
        floor = np.finfo(np.float64).tiny
        scores = np.maximum(scores, floor)
        return self._finish(scores / scores.max(), cleanlab_version=_version("cleanlab"))


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


@_register("GLOSH: one minus HDBSCAN's outlier score (needs a clusterer with outlier_scores_, e.g. hdbscan)")
class GLOSHSignal(RaritySignal):
    """HDBSCAN's GLOSH outlier score as a likelihood: ``max(1 - s, min_likelihood)``, over its maximum.

    GLOSH (``outlier_scores_`` of ``hdbscan.HDBSCAN``, here ``context.outlier_scores``) is 0 for a
    cluster's densest points and near 1 for points far from any cluster, relative to the density
    of the cluster they fall out of. A non-finite score (HDBSCAN gives NaN where exact duplicates
    make the density infinite) counts as 0 (as typical as a cluster core); how many did is in
    ``params_['n_nonfinite']``.

    Parameters
    ----------
    min_likelihood : float, default=1e-3
        Floor for a score of 1 (a likelihood must be above 0), in (0, 1].
    """

    name = "glosh"
    needs = ("outlier_scores",)

    def __init__(self, min_likelihood: float = 1e-3):
        self.min_likelihood = min_likelihood

    def fit(self, context) -> "GLOSHSignal":
        floor = check_real("min_likelihood", self.min_likelihood, 0.0, exclusive=True)
        if floor > 1:
            raise ValueError(f"min_likelihood must be a number in (0, 1], got {self.min_likelihood!r}")
        scores = np.asarray(self._need(context, "outlier_scores", "HDBSCAN's GLOSH outlier_scores_; cluster with "
                                       "'hdbscan'"), dtype=np.float64)
        if scores.ndim != 1 or scores.size == 0:
            raise ValueError(f"outlier_scores must be a non-empty 1-D array, got shape {scores.shape}")
        finite = np.isfinite(scores)
        if ((scores[finite] < 0) | (scores[finite] > 1)).any():
            raise ValueError("outlier_scores must lie in [0, 1] (GLOSH); these are not GLOSH scores")
        likelihood = np.maximum(1.0 - np.where(finite, scores, 0.0), floor)
        return self._finish(likelihood / likelihood.max(), n_nonfinite=int((~finite).sum()))
