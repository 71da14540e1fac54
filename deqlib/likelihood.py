"""Sample likelihoods from cluster labels (paper eq. 1-3), noise policies, and a density signal.

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
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

__all__ = [
    "NOISE_POLICIES",
    "DEFAULT_NOISE_POLICY",
    "assign_noise",
    "cluster_sizes",
    "cluster_likelihood",
    "scaled_likelihood",
    "compare_noise_policies",
    "knn_density_likelihood",
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
    effective = assign_noise(labels, noise_policy, coords)
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
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not 0.0 < float(scale) <= 1.0:
        raise ValueError(f"scale (K~) must be a number in (0, 1], got {scale!r}")
    sizes = cluster_sizes(labels, noise_policy, coords)
    return sizes / float(sizes.max()) * float(scale)


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
    if not 0.0 <= reference_quantile < 1.0:
        raise ValueError(f"reference_quantile must be in [0, 1), got {reference_quantile!r}")
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
