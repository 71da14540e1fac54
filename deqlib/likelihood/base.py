"""Rarity signals: a likelihood in (0, 1] per sample (paper eq. 1-3, noise policies, density, consensus).

Every sample gets the likelihood of the cluster it belongs to:

* eq. 1, :func:`cluster_likelihood`: ``P(C_i) = |C_i| / N``;
* eq. 2-3, :func:`scaled_likelihood`: ``L_s(i) = |C_i| / max_j |C_j| * K~`` with ``K~ = 1``
  by default, i.e. the likelihood relative to the largest cluster. This is what the
  training forks feed into the weight (``cluster_size / largest_cluster_size``).

DBSCAN and HDBSCAN label low-density samples ``-1`` ("noise"). The paper does not say what
their likelihood is; the official code silently counts all noise samples as one cluster.
Here the choice is explicit, by name (``noise_policy``):

``"singleton"`` (default)
    Each noise sample is a cluster of its own, of size 1: the rarest possible. Noise is by
    definition what lies in no dense region, so it should get the *lowest* likelihood and
    the *highest* weight. This is the default because it never lets the amount of noise
    change how common a noise sample looks.
``"as_cluster"``
    All noise samples form one group, of size ``n_noise``: what the official code does.
    Use it to reproduce the published banks. When noise is a large share of the data the
    group can become the *largest* cluster, so the rarest samples look the most common.
``"nearest"``
    Each noise sample joins the cluster whose centroid in the reduced space (``coords``) is
    nearest. Use it when noise is mostly the fringe of real clusters.

See ``docs/likelihood.md`` for a small worked example of how far the policies disagree.

Rarity as a stage
-----------------
Eq. 3 is one *rarity signal* among others. A signal is a small estimator
(:class:`RaritySignal`): ``signal.fit(context)`` reads what it needs from a
:class:`RarityContext` (the stage outputs: ``embeddings``, ``coords``, ``labels``,
``outlier_scores``, and ``runs`` for the K-run consensus signals) and sets ``likelihood_``
(float64 in (0, 1] per sample, 1 = most common) and ``params_``. Signals are registered by
name in :data:`RARITY_SIGNALS`:

``cluster`` (the default)
    Eq. 3 with a noise policy: the paper's signal, exactly :func:`scaled_likelihood`.
``knn-density``
    :func:`knn_density_likelihood`: no clusters, no noise policy.
``consensus-mean``, ``consensus-coassoc``
    The mean over K runs, and eq. 3 on the co-association consensus partition of K runs
    (their maths in :mod:`deqlib.consensus`; the K runs come from :mod:`deqlib.stability`).

A *cluster-based* signal (``cluster``, ``consensus-coassoc``) also sets ``cluster_id_``,
``cluster_size_`` and ``largest_cluster_size_``: only its banks can be written to the forks'
pickle, which holds cluster sizes (:func:`deqlib.bank.export_official_pickle`).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from deqlib._validation import check_int, check_real
from deqlib.consensus import coassociation_consensus, consensus_mean, knn_graph
from deqlib.registry import Registry

__all__ = [
    "NOISE_POLICIES",
    "DEFAULT_NOISE_POLICY",
    "assign_noise",
    "cluster_sizes",
    "cluster_likelihood",
    "scaled_likelihood",
    "compare_noise_policies",
    "knn_density_likelihood",
    "RarityContext",
    "RaritySignal",
    "RARITY_SIGNALS",
    "DEFAULT_RARITY_SIGNAL",
    "PAPER_RARITY_SIGNAL",
    "ClusterSignal",
    "KNNDensitySignal",
    "ConsensusMeanSignal",
    "CoassociationSignal",
    "get_rarity_signal",
    "is_cluster_based",
]

NOISE_POLICIES = ("singleton", "as_cluster", "nearest")
DEFAULT_NOISE_POLICY = "singleton"
NOISE_LABEL = -1


def _validate_labels(labels) -> np.ndarray:
    array = np.asarray(labels)
    if array.ndim != 1:
        raise ValueError(f"labels must be a 1-D array of cluster ids, got shape {array.shape}")
    if array.size == 0:
        raise ValueError("labels is empty: there are no samples to compute likelihoods for")
    if array.dtype == bool or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"labels must be integers (cluster ids, -1 for noise), got dtype {array.dtype}; "
            "convert them with labels.astype(int) if they are whole numbers"
        )
    if (array < NOISE_LABEL).any():
        bad = int(array[array < NOISE_LABEL][0])
        raise ValueError(f"labels must be >= -1 (-1 marks noise), got {bad}")
    return array.astype(np.int64, copy=False)


def _validate_policy(noise_policy: str) -> str:
    if noise_policy not in NOISE_POLICIES:
        raise ValueError(f"noise_policy must be one of {NOISE_POLICIES}, got {noise_policy!r}")
    return noise_policy


def _check_scale(scale) -> float:
    # The one check of K~ (scaled_likelihood, ClusterSignal and, through it, bank.bank_from_labels), in
    # deqlib._validation's message style; that module has no upper bound, hence this local check.
    if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, numbers.Real) or not 0.0 < float(scale) <= 1.0:
        raise ValueError(f"scale (K~) must be a number in (0, 1], got {scale!r}")
    return float(scale)


def _validate_coords(coords, n_samples: int) -> np.ndarray:
    if coords is None:
        raise ValueError(
            "noise_policy='nearest' needs coords: the reduced coordinates (e.g. the 3-D t-SNE points), "
            "one row per sample"
        )
    array = np.asarray(coords, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != n_samples:
        raise ValueError(f"coords must have shape ({n_samples}, d) to match labels, got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("coords contain NaN or infinite values")
    return array


def assign_noise(labels, noise_policy: str = DEFAULT_NOISE_POLICY, coords=None) -> np.ndarray:
    """Labels of the groups that likelihoods are counted over, after the noise policy.

    Parameters
    ----------
    labels : array-like of int, shape (N,)
        Cluster ids, ``-1`` for noise.
    noise_policy : {'singleton', 'as_cluster', 'nearest'}, default='singleton'
        See the module docstring.
    coords : array-like, shape (N, d), optional
        Reduced coordinates; required for ``'nearest'``.

    Returns
    -------
    numpy.ndarray of int64, shape (N,)
        ``'singleton'``: noise samples get fresh ids ``max(labels) + 1, ...`` (one each);
        ``'as_cluster'``: labels unchanged (noise stays one group, ``-1``);
        ``'nearest'``: noise samples get the id of the nearest cluster centroid.
    """
    labels = _validate_labels(labels)
    noise_policy = _validate_policy(noise_policy)
    noise = labels == NOISE_LABEL
    if noise_policy == "as_cluster" or not noise.any():
        if noise_policy == "nearest":
            _validate_coords(coords, labels.size)
        return labels.copy()
    if noise_policy == "singleton":
        effective = labels.copy()
        first_free = max(int(labels.max()), NOISE_LABEL) + 1
        effective[noise] = np.arange(first_free, first_free + int(noise.sum()))
        return effective
    # nearest
    coords = _validate_coords(coords, labels.size)
    cluster_ids = np.unique(labels[~noise])
    if cluster_ids.size == 0:
        raise ValueError(
            "noise_policy='nearest' needs at least one cluster, but every sample is noise; "
            "use 'singleton' or 'as_cluster', or cluster with a larger eps / smaller min_samples"
        )
    centroids = np.stack([coords[labels == cid].mean(axis=0) for cid in cluster_ids])
    distances = ((coords[noise, None, :] - centroids[None, :, :]) ** 2).sum(axis=-1)
    effective = labels.copy()
    effective[noise] = cluster_ids[np.argmin(distances, axis=1)]  # ties: lowest cluster id
    return effective


def cluster_sizes(labels, noise_policy: str = DEFAULT_NOISE_POLICY, coords=None) -> np.ndarray:
    """Per-sample size ``|C_i|`` of the group each sample is counted in (int64, shape (N,))."""
    return _group_sizes(assign_noise(labels, noise_policy, coords))


def _group_sizes(effective: np.ndarray) -> np.ndarray:
    _, inverse, counts = np.unique(effective, return_inverse=True, return_counts=True)
    return counts[inverse].astype(np.int64)


def cluster_likelihood(labels, noise_policy: str = DEFAULT_NOISE_POLICY, coords=None) -> np.ndarray:
    """Eq. 1: ``P(C_i) = |C_i| / N`` per sample (float64, shape (N,))."""
    sizes = cluster_sizes(labels, noise_policy, coords)
    return sizes / float(sizes.size)


def scaled_likelihood(
    labels, noise_policy: str = DEFAULT_NOISE_POLICY, coords=None, scale: float = 1.0
) -> np.ndarray:
    """Eq. 2-3: ``L_s(i) = |C_i| / max_j |C_j| * K~`` per sample (float64, shape (N,)).

    Parameters
    ----------
    labels, noise_policy, coords
        As in :func:`assign_noise`.
    scale : float, default=1.0
        The paper's scale factor ``K~`` in ``(0, 1]``. ``1.0`` (the paper's choice) makes the
        largest cluster's likelihood 1; ``max_j |C_j| / N`` gives back eq. 1.
    """
    signal = ClusterSignal(noise_policy=noise_policy, scale=scale)
    return signal.fit(RarityContext(labels=labels, coords=coords)).likelihood_


def compare_noise_policies(labels, coords=None) -> pd.DataFrame:
    """Scaled likelihood of every sample under every noise policy, side by side.

    ``'nearest'`` is included when ``coords`` is given and at least one cluster exists.
    Columns: ``label``, ``is_noise``, then ``likelihood_<policy>`` for each policy.
    """
    labels = _validate_labels(labels)
    table = pd.DataFrame({"label": labels, "is_noise": labels == NOISE_LABEL})
    for policy in NOISE_POLICIES:
        if policy == "nearest" and (coords is None or (labels != NOISE_LABEL).sum() == 0):
            continue
        table[f"likelihood_{policy}"] = scaled_likelihood(labels, policy, coords)
    return table


def knn_density_likelihood(X, k: int = 10, reference_quantile: float = 0.01) -> np.ndarray:
    """Label-free likelihood from local density: how crowded each sample's neighbourhood is.

    For each sample, ``r_i`` is the distance to its ``k``-th nearest neighbour (itself
    excluded) in ``X``; a small ``r_i`` means a dense, common region. The likelihood is::

        min(1, r_ref / r_i)

    with ``r_ref`` the ``reference_quantile`` of all ``r_i``: like eq. 3 it is relative to
    the densest region, and taking a low quantile instead of the minimum keeps exact
    duplicates (``r = 0``) from setting the scale. Values lie in ``(0, 1]``; the densest
    ``reference_quantile`` of samples get 1. It ranks samples exactly as the k-NN density
    estimate does (monotone in ``r_i``), without clusters, so no noise policy is needed.

    Parameters
    ----------
    X : array-like, shape (N, D)
        Embeddings or reduced coordinates.
    k : int, default=10
        Neighbourhood size, ``1 <= k < N``.
    reference_quantile : float, default=0.01
        Quantile of the k-NN distances that maps to likelihood 1, in ``[0, 1)``.
    """
    from sklearn.neighbors import NearestNeighbors

    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"X must be a non-empty 2-D array (samples x features), got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("X contains NaN or infinite values")
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k < X.shape[0]:
        raise ValueError(f"k must be an integer with 1 <= k < N = {X.shape[0]}, got {k!r}")
    check_real("reference_quantile", reference_quantile, 0.0)
    if not reference_quantile < 1.0:
        raise ValueError(f"reference_quantile must be a number in [0, 1), got {reference_quantile!r}")
    distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X)
    radius = distances[:, k]  # column 0 is the sample itself
    reference = float(np.quantile(radius, reference_quantile))
    if reference <= 0:
        positive = radius[radius > 0]
        if positive.size == 0:
            return np.ones(X.shape[0])  # every sample identical: all equally common
        reference = float(positive.min())
    with np.errstate(divide="ignore"):
        likelihood = np.where(radius > 0, reference / radius, 1.0)
    return np.minimum(likelihood, 1.0)


# --------------------------------------------------------------------------------------------------
# Rarity as a stage: one interface, one registry
@dataclass(frozen=True)
class RarityContext:
    """The stage outputs a rarity signal may read (each optional; a signal says which it needs).

    Any object with these attributes works as a context (the training experiment's computes
    ``coords`` and ``labels`` lazily, so a signal that needs neither never pays for a t-SNE).

    Attributes
    ----------
    embeddings : ndarray (N, D), optional
        The encoder's vectors.
    coords : ndarray (N, d), optional
        The reduced coordinates (the 3-D t-SNE map).
    labels : ndarray (N,) of int, optional
        Cluster labels, ``-1`` for noise.
    outlier_scores : ndarray (N,), optional
        The clusterer's outlier scores (HDBSCAN's GLOSH), where it has them.
    runs : object, optional
        K runs of the analysis, for the consensus signals: anything with ``labels`` and
        ``likelihoods``, both ``(K, N)`` (``-2`` / NaN where a run did not see a sample), and
        optionally ``params['seeds']``; a :class:`deqlib.stability.StabilityResult` is one.
    """

    embeddings: Any = None
    coords: Any = None
    labels: Any = None
    outlier_scores: Any = None
    runs: Any = None


class RaritySignal(BaseEstimator):
    """Base of the rarity signals: ``fit(context)`` returns ``self`` with ``likelihood_`` and ``params_``.

    Subclasses set the class attributes below, take their parameters as keyword arguments (so
    ``get_params`` / ``sklearn.base.clone`` work) and implement ``fit``.

    Attributes
    ----------
    name : str
        The registry name (``RARITY_SIGNALS``), recorded in a bank's ``metadata['signal']``.
    cluster_based : bool
        The likelihood is eq. 3 of a partition: ``fit`` also sets ``cluster_id_``,
        ``cluster_size_`` and ``largest_cluster_size_``, and a bank made from it can be written to
        the forks' pickle (which holds cluster sizes). Other signals' banks are Parquet only.
    scaled : bool
        The most common sample gets exactly 1 (with the default parameters).
    needs : tuple of str
        The :class:`RarityContext` attributes ``fit`` reads.
    likelihood_ : ndarray (N,) of float64
        After ``fit``: the likelihood per sample, in (0, 1], 1 = most common.
    params_ : dict
        After ``fit``: ``signal`` (the name), the parameters, and what the fit found.
    """

    name: ClassVar[str] = ""
    cluster_based: ClassVar[bool] = False
    scaled: ClassVar[bool] = True
    needs: ClassVar[tuple[str, ...]] = ()

    def fit(self, context) -> "RaritySignal":  # pragma: no cover - every registered signal overrides it
        raise NotImplementedError

    def fit_likelihood(self, context) -> np.ndarray:
        """``fit(context).likelihood_``."""
        return self.fit(context).likelihood_

    def _need(self, context, attribute: str, what: str):
        value = getattr(context, attribute, None)
        if value is None:
            raise ValueError(f"the rarity signal {self.name!r} needs context.{attribute} ({what}); the context "
                             f"has none. Pass it in the RarityContext, or choose a signal that uses what you have "
                             f"(registered: {', '.join(RARITY_SIGNALS.names())})")
        return value

    def _finish(self, likelihood: np.ndarray, **found) -> "RaritySignal":
        likelihood = np.asarray(likelihood, dtype=np.float64)
        if likelihood.ndim != 1 or not ((likelihood > 0) & (likelihood <= 1)).all():
            raise ValueError(f"the rarity signal {self.name!r} produced likelihoods outside (0, 1]")  # a bug, not input
        self.likelihood_ = likelihood
        self.params_ = {"signal": self.name, **self.get_params(), **found}
        return self


#: Rarity signals by name; the first is the paper's eq. 3 (``cluster``).
RARITY_SIGNALS = Registry("rarity signal")
#: The paper's eq. 3: the only signal of ``mode='reference'`` (the official code's), one name away otherwise.
PAPER_RARITY_SIGNAL = "cluster"
#: What an analysis in ``mode='default'`` computes unless told otherwise: the rarity benchmark's best
#: signal (benchmarks/rarity, docs/rarity.md), stable across seeds, row orders and machines.
DEFAULT_RARITY_SIGNAL = "multi-granularity+lof"


def _register(summary: str, **extra):
    """Register a signal class under its ``name``, with its ``cluster_based``/``scaled``/``needs`` as extra."""
    def decorate(cls):
        return RARITY_SIGNALS.register(cls.name, summary=summary, cluster_based=cls.cluster_based,
                                       scaled=cls.scaled, needs=cls.needs, **extra)(cls)
    return decorate


def _cluster_fields(signal: RaritySignal, labels: np.ndarray, effective: np.ndarray, written_ids: np.ndarray,
                    scale: float) -> RaritySignal:
    """Eq. 2-3, the one implementation: sizes of the effective groups over the largest, times K~."""
    sizes = _group_sizes(effective)
    largest = int(sizes.max())
    signal.cluster_id_ = np.asarray(written_ids, dtype=np.int64)
    signal.cluster_size_ = sizes
    signal.largest_cluster_size_ = largest
    n_noise = int((labels == NOISE_LABEL).sum())
    return signal._finish(sizes / float(largest) * scale,
                          n_clusters=int(np.unique(labels[labels != NOISE_LABEL]).size), n_noise=n_noise)


@_register("eq. 3: the size of each sample's cluster over the largest cluster's (noise by noise_policy)")
class ClusterSignal(RaritySignal):
    """Eq. 2-3 with a noise policy: ``L(i) = |C_i| / max_j |C_j| * K~`` (the paper's signal; the default).

    Parameters
    ----------
    noise_policy : {'singleton', 'as_cluster', 'nearest'}, default='singleton'
        How noise (label ``-1``) is counted (module docstring); ``'nearest'`` needs ``context.coords``.
    scale : float, default=1.0
        The paper's ``K~`` in (0, 1].

    Attributes
    ----------
    likelihood_, params_
        See :class:`RaritySignal`; ``params_`` adds ``n_clusters`` and ``n_noise``.
    cluster_id_ : ndarray (N,) of int64
        The clusterer's label (``-1`` for noise), except under ``'nearest'``, where noise samples
        take the id of the cluster they joined: what the bank's ``cluster_id`` column holds.
    cluster_size_ : ndarray (N,) of int64
        ``|C_i|`` after the noise policy.
    largest_cluster_size_ : int
    """

    name = "cluster"
    cluster_based = True
    needs = ("labels",)  # and coords under 'nearest'

    def __init__(self, noise_policy: str = DEFAULT_NOISE_POLICY, scale: float = 1.0):
        self.noise_policy = noise_policy
        self.scale = scale

    def fit(self, context) -> "ClusterSignal":
        scale = _check_scale(self.scale)
        labels = _validate_labels(self._need(context, "labels", "cluster labels, -1 for noise"))
        coords = getattr(context, "coords", None)
        effective = assign_noise(labels, self.noise_policy, coords)
        return _cluster_fields(self, labels, effective, effective if self.noise_policy == "nearest" else labels,
                               scale)


@_register("local density: distance to the k-th nearest neighbour, relative to the densest 1 percent "
           "(no clusters)")
class KNNDensitySignal(RaritySignal):
    """:func:`knn_density_likelihood` as a signal: no clusters, so no noise policy.

    Parameters
    ----------
    k : int, default=10
        Neighbourhood size: a sample's rarity is its distance to its ``k``-th nearest neighbour.
        10 is the faithfulness metrics' k and what the training experiment measured.
    reference_quantile : float, default=0.01
        Quantile of the k-NN distances that maps to likelihood 1.
    space : {'embeddings', 'coords'}, default='embeddings'
        Where distances are measured: the encoder's vectors (no t-SNE artefacts; the experiment's
        choice) or the reduced map.
    """

    name = "knn-density"
    needs = ("embeddings",)  # or coords with space='coords'

    def __init__(self, k: int = 10, reference_quantile: float = 0.01, space: str = "embeddings"):
        self.k = k
        self.reference_quantile = reference_quantile
        self.space = space

    def fit(self, context) -> "KNNDensitySignal":
        if self.space not in ("embeddings", "coords"):
            raise ValueError(f"space must be 'embeddings' or 'coords', got {self.space!r}")
        X = self._need(context, self.space, "the vectors whose k-NN distances measure density")
        return self._finish(knn_density_likelihood(X, k=self.k, reference_quantile=self.reference_quantile))


def _runs(signal: RaritySignal, context, attribute: str) -> np.ndarray:
    runs = signal._need(context, "runs", "K runs of the analysis, e.g. deqlib.stability.stability_runs(...)")
    value = getattr(runs, attribute, None)
    if value is None:
        raise ValueError(f"the rarity signal {signal.name!r} needs context.runs.{attribute}, a (K, N) matrix")
    return np.asarray(value)


@_register("the mean likelihood over K runs of the analysis (deqlib.stability)", needs_runs=True)
class ConsensusMeanSignal(RaritySignal):
    """The mean of each sample's likelihood over the K runs that saw it (:func:`deqlib.consensus.consensus_mean`).

    Not a cluster size ratio, so its banks are Parquet only; its maximum may be below 1.
    """

    name = "consensus-mean"
    scaled = False
    needs = ("runs",)

    def fit(self, context) -> "ConsensusMeanSignal":
        likelihoods = _runs(self, context, "likelihoods")
        return self._finish(consensus_mean(likelihoods), K=int(likelihoods.shape[0]))


@_register("eq. 3 on the co-association consensus partition of K runs (deqlib.stability)", needs_runs=True)
class CoassociationSignal(RaritySignal):
    """Eq. 3 (noise as singletons) on the partition the K runs agree on
    (:func:`deqlib.consensus.coassociation_consensus` on the embeddings' k-NN graph).

    Parameters
    ----------
    threshold : float, default=0.5
        Two neighbours are linked when they share a cluster in more than this share of runs.
    n_neighbors : int, default=15
        k of the k-NN graph (PCA-50 of the embeddings) the co-association is counted on.
    random_state : int, optional
        Seed of that PCA; None takes the runs' first seed (``runs.params['seeds'][0]``, as
        :func:`deqlib.stability.stability_runs` does), else 0.
    """

    name = "consensus-coassoc"
    cluster_based = True
    needs = ("runs", "embeddings")

    def __init__(self, threshold: float = 0.5, n_neighbors: int = 15, random_state: int | None = None):
        self.threshold = threshold
        self.n_neighbors = n_neighbors
        self.random_state = random_state

    def fit(self, context) -> "CoassociationSignal":
        n_neighbors = check_int("n_neighbors", self.n_neighbors, 1)
        check_real("threshold", self.threshold, 0.0)
        labels = _runs(self, context, "labels")
        X = np.asarray(self._need(context, "embeddings", "the vectors whose k-NN graph links samples"),
                       dtype=np.float64)
        seed = self.random_state
        if seed is None:
            seeds = (getattr(context.runs, "params", None) or {}).get("seeds") or [0]
            seed = int(seeds[0])
        neighbors = knn_graph(X, k=n_neighbors, random_state=seed)
        consensus = coassociation_consensus(labels, neighbors, threshold=self.threshold)
        effective = assign_noise(consensus, "singleton")
        return _cluster_fields(self, consensus, effective, consensus, 1.0)


def is_cluster_based(name: str) -> bool:
    """Whether the registered signal ``name`` is cluster-based (its entry's ``cluster_based``, else its class's)."""
    entry = RARITY_SIGNALS.entry(name)
    return bool(entry.extra.get("cluster_based", getattr(entry.factory, "cluster_based", False)))


def get_rarity_signal(signal=None, **params) -> RaritySignal:
    """A rarity signal: a registered name (None = :data:`DEFAULT_RARITY_SIGNAL`) made with ``params``, or an instance as given.

    Raises
    ------
    ValueError
        Unknown name (the message lists the registered ones), or parameters for an instance.
    """
    if signal is None:
        signal = DEFAULT_RARITY_SIGNAL
    if isinstance(signal, str):
        return RARITY_SIGNALS.create(signal, **params)
    if params:
        raise ValueError("rarity_params are for a signal given by name; set them on the instance instead")
    if not callable(getattr(signal, "fit", None)):
        raise TypeError(f"a rarity signal must be a registered name or an object with fit(context), "
                        f"got {type(signal).__name__}")
    return signal
