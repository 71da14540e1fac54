"""Step three of the method: 3-D points -> cluster labels (``-1`` = noise).

Two clusterers behind one interface, ``fit(X) -> ClusterResult``:

:class:`DBSCANClusterer`
    scikit-learn's DBSCAN, the official choice. The paper's per-dataset settings are in
    :data:`PRESETS` (``DBSCANClusterer.from_preset("kitti")``).
:class:`HDBSCANClusterer`
    The ``hdbscan`` library (scikit-learn's own HDBSCAN measured 20x slower on 100k 3-D
    points). Keeps GLOSH outlier scores per sample.

Scale-aware eps
---------------
The presets are distances in scikit-learn's t-SNE output, and a t-SNE's scale depends on the
implementation, learning rate and N (on the same 20,000 points scikit-learn's output spans
~36 units, openTSNE's ~120). DBSCAN's eps is compared with each point's distance to its
``min_samples``-th neighbour, so the natural unit is that distance. ``eps_scale`` says what
unit ``eps`` is in:

``"raw"``
    Coordinates' own units, as the official code (used by the ``reference`` mode).
``"knn"``
    Multiples of the median distance from a point to its ``min_samples``-th nearest
    neighbour (self excluded) in the data being clustered. ``eps=1`` makes the median point
    exactly a core point.
``"official"`` (default)
    The units of the official scikit-learn t-SNE output, i.e. a preset's raw number. The
    effective eps is ``eps * d10(Y) / official_knn_scale(N)``: ``d10(Y)`` is the median
    distance to the 10th neighbour in the points being clustered, ``official_knn_scale(N)``
    the same statistic measured on scikit-learn t-SNE outputs (official configuration) of N
    points (:data:`OFFICIAL_KNN_SCALE`, a power law fitted in
    ``benchmarks/analysis/calibrate_eps.py``). On scikit-learn's own output this leaves eps
    (nearly) unchanged; on openTSNE's it grows by the measured ~1.4x k-NN-scale ratio, so a
    preset gives comparable clusterings with either reducer (``docs/analysis.md``).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np
from sklearn.base import BaseEstimator

from deqlib.reduce import _n_jobs, check_embeddings

__all__ = [
    "PRESETS",
    "EPS_SCALES",
    "OFFICIAL_KNN_SCALE",
    "ClusterResult",
    "DBSCANClusterer",
    "HDBSCANClusterer",
    "get_clusterer",
    "knn_distance_scale",
    "official_knn_scale",
]

#: The paper's DBSCAN settings (Section 4), eps in the official scikit-learn t-SNE units.
PRESETS = {
    "kitti": {"eps": 2.0, "min_samples": 10},
    "nuscenes": {"eps": 1.0, "min_samples": 10},
    "waymo": {"eps": 1.0, "min_samples": 10},
    "bdd100k": {"eps": 1.5, "min_samples": 100},
}
EPS_SCALES = ("official", "knn", "raw")
DEFAULT_EPS_SCALE = "official"

#: Median distance to the 10th nearest neighbour in scikit-learn t-SNE output (official
#: configuration) of N points: ``at_10k * (N / 10_000) ** exponent``. It shrinks slowly with N
#: (the cloud grows slower than the number of points). Fitted on Fashion-MNIST at
#: N = 2,000 to 20,000 (EfficientNet-Lite0 embeddings; PCA-50 pixels give values ~15% lower):
#: benchmarks/analysis/results/calibrate_eps-*.json.
OFFICIAL_KNN_SCALE = {"at_10k": 1.185, "exponent": -0.224}
OFFICIAL_KNN_K = 10


def official_knn_scale(n_samples: int) -> float:
    """Expected median 10-NN distance in the official scikit-learn t-SNE output of ``n_samples``."""
    return OFFICIAL_KNN_SCALE["at_10k"] * (n_samples / 10_000) ** OFFICIAL_KNN_SCALE["exponent"]
_QUANTILE_SAMPLE = 20_000  # query points for the kNN-scale median; the tree holds all points


def knn_distance_scale(X, k: int, random_state: int = 0) -> float:
    """Median distance from a point to its ``k``-th nearest neighbour (self excluded).

    Above 20,000 points the median is taken over a random 20,000 queries (against all
    points), which keeps it fast at a million points and stable to a fraction of a percent.
    """
    from sklearn.neighbors import NearestNeighbors

    X = check_embeddings(X)
    if not 1 <= k < X.shape[0]:
        raise ValueError(f"k must be in [1, N) = [1, {X.shape[0]}), got {k}")
    queries = X
    if X.shape[0] > _QUANTILE_SAMPLE:
        rng = np.random.default_rng(random_state)
        queries = X[rng.choice(X.shape[0], _QUANTILE_SAMPLE, replace=False)]
    distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(queries)
    scale = float(np.median(distances[:, k]))
    if scale <= 0:
        raise ValueError(
            f"over half of the points have {k} exact duplicates, so the k-NN distance scale is 0; "
            "use eps_scale='raw' or deduplicate the embeddings"
        )
    return scale


@dataclass
class ClusterResult:
    """Labels of one clustering run.

    Attributes
    ----------
    labels : ndarray of int64, shape (N,)
        Cluster ids ``0..K-1``; ``-1`` for noise.
    outlier_scores : ndarray of float64 or None
        HDBSCAN's GLOSH score per sample (higher = more outlying); None for DBSCAN.
    params : dict
        The clusterer's parameters, the effective eps, and warnings about degenerate results.
    """

    labels: np.ndarray
    outlier_scores: np.ndarray | None = None
    params: dict = field(default_factory=dict)

    @property
    def n_clusters(self) -> int:
        return int(np.unique(self.labels[self.labels >= 0]).size)

    @property
    def n_noise(self) -> int:
        return int((self.labels == -1).sum())

    @property
    def noise_fraction(self) -> float:
        return self.n_noise / self.labels.size

    @property
    def degenerate(self) -> str | None:
        """Why the result cannot rank samples by rarity, or None when it can."""
        if self.n_clusters == 0:
            return "every sample is noise: no cluster was found (increase eps or lower min_samples)"
        if self.n_clusters == 1 and self.n_noise == 0:
            return "one cluster holds every sample: all likelihoods are 1 (lower eps or raise min_samples)"
        return None

    def summary(self) -> str:
        text = f"{self.n_clusters} clusters, {self.n_noise} noise ({self.noise_fraction:.1%})"
        return text + (f"; DEGENERATE: {self.degenerate}" if self.degenerate else "")


def _check_points(X, min_samples: int) -> np.ndarray:
    X = check_embeddings(X)
    if X.shape[0] <= min_samples:
        raise ValueError(
            f"clustering needs more samples ({X.shape[0]}) than min_samples ({min_samples}); "
            "lower min_samples or add samples"
        )
    return X


def _relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Cluster ids ordered by size (0 = largest, ties by first appearance); -1 kept.

    Makes ids independent of the order DBSCAN/HDBSCAN happened to visit the points, so the same
    partition always gives the same bank.
    """
    labels = np.asarray(labels, dtype=np.int64)
    clustered = labels >= 0
    if not clustered.any():
        return labels.copy()
    ids, first, counts = np.unique(labels[clustered], return_index=True, return_counts=True)
    order = np.lexsort((first, -counts))
    mapping = np.empty(ids.max() + 1, dtype=np.int64)
    mapping[ids[order]] = np.arange(ids.size)
    out = labels.copy()
    out[clustered] = mapping[labels[clustered]]
    return out


class DBSCANClusterer(BaseEstimator):
    """DBSCAN with a raw or scale-aware eps.

    Parameters
    ----------
    eps : float, default=1.0
        Neighbourhood radius in the unit given by ``eps_scale``.
    min_samples : int, default=10
        Neighbours (the point included) that make a core point.
    eps_scale : {'official', 'knn', 'raw'}, default='official'
        See the module docstring.
    n_jobs : int, default=-1
        Threads for the neighbour queries.
    """

    def __init__(self, eps=1.0, min_samples=10, eps_scale=DEFAULT_EPS_SCALE, n_jobs=-1):
        self.eps = eps
        self.min_samples = min_samples
        self.eps_scale = eps_scale
        self.n_jobs = n_jobs

    @classmethod
    def from_preset(cls, name: str, eps_scale: str = DEFAULT_EPS_SCALE, **overrides) -> "DBSCANClusterer":
        """The paper's setting for a dataset (:data:`PRESETS`): ``kitti``, ``nuscenes``, ``waymo``, ``bdd100k``."""
        key = name.lower()
        if key not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[key], "eps_scale": eps_scale, **overrides})

    def _validate(self) -> tuple[float, int]:
        if isinstance(self.eps, bool) or not isinstance(self.eps, numbers.Real) or not self.eps > 0:
            raise ValueError(f"eps must be a positive number, got {self.eps!r}")
        if isinstance(self.min_samples, bool) or not isinstance(self.min_samples, numbers.Integral) \
                or self.min_samples < 1:
            raise ValueError(f"min_samples must be an integer >= 1, got {self.min_samples!r}")
        if self.eps_scale not in EPS_SCALES:
            raise ValueError(f"eps_scale must be one of {EPS_SCALES}, got {self.eps_scale!r}")
        return float(self.eps), int(self.min_samples)

    def cache_key(self) -> dict:
        eps, min_samples = self._validate()
        return {"clusterer": "dbscan", "eps": eps, "min_samples": min_samples, "eps_scale": self.eps_scale,
                "official_knn_scale": dict(OFFICIAL_KNN_SCALE) if self.eps_scale == "official" else None}

    def effective_eps(self, X) -> tuple[float, float | None]:
        """The raw eps used on ``X`` and the k-NN scale it came from (None for ``'raw'``)."""
        eps, min_samples = self._validate()
        if self.eps_scale == "raw":
            return eps, None
        if self.eps_scale == "official":
            if X.shape[0] <= OFFICIAL_KNN_K:
                raise ValueError(
                    f"eps_scale='official' measures each point's distance to its {OFFICIAL_KNN_K}th neighbour, so it "
                    f"needs more than {OFFICIAL_KNN_K} samples; got {X.shape[0]}. Use eps_scale='raw' (eps in the "
                    "points' own units; CLI --eps-scale raw) or add samples")
            # A ratio of scales between two embeddings: the 10-NN distance, as calibrated.
            scale = knn_distance_scale(X, OFFICIAL_KNN_K)
            return eps * scale / official_knn_scale(X.shape[0]), scale
        # DBSCAN counts the point itself in min_samples, so its radius test is on the
        # (min_samples - 1)-th neighbour other than itself.
        scale = knn_distance_scale(X, max(min_samples - 1, 1))
        return eps * scale, scale

    def fit(self, X) -> ClusterResult:
        from sklearn.cluster import DBSCAN

        eps, min_samples = self._validate()
        X = _check_points(X, min_samples)
        raw_eps, scale = self.effective_eps(X)
        labels = DBSCAN(eps=raw_eps, min_samples=min_samples, n_jobs=_n_jobs(self.n_jobs)).fit_predict(X)
        result = ClusterResult(labels=_relabel_by_size(labels))
        result.params = {**self.cache_key(), "effective_eps": raw_eps, "knn_scale": scale,
                         "n_clusters": result.n_clusters, "noise_fraction": result.noise_fraction,
                         "degenerate": result.degenerate}
        return result


class HDBSCANClusterer(BaseEstimator):
    """HDBSCAN (the ``hdbscan`` library) with per-sample outlier scores.

    Parameters
    ----------
    min_cluster_size : int, default=10
        Smallest group that counts as a cluster.
    min_samples : int or None, default=None
        Density smoothing (None: ``min_cluster_size``, as the library does).
    cluster_selection_epsilon : float, default=0.0
        Merge clusters closer than this (raw units).
    cluster_selection_method : {'eom', 'leaf'}, default='eom'
    n_jobs : int, default=-1
        Threads for the core distances.
    """

    def __init__(self, min_cluster_size=10, min_samples=None, cluster_selection_epsilon=0.0,
                 cluster_selection_method="eom", n_jobs=-1):
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.cluster_selection_epsilon = cluster_selection_epsilon
        self.cluster_selection_method = cluster_selection_method
        self.n_jobs = n_jobs

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "HDBSCANClusterer":
        """A dataset's preset as HDBSCAN: ``min_cluster_size = min_samples`` of :data:`PRESETS`."""
        key = name.lower()
        if key not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls(**{"min_cluster_size": PRESETS[key]["min_samples"], **overrides})

    def cache_key(self) -> dict:
        if isinstance(self.min_cluster_size, bool) or not isinstance(self.min_cluster_size, numbers.Integral) \
                or self.min_cluster_size < 2:
            raise ValueError(f"min_cluster_size must be an integer >= 2, got {self.min_cluster_size!r}")
        if self.min_samples is not None and (not isinstance(self.min_samples, numbers.Integral) or self.min_samples < 1):
            raise ValueError(f"min_samples must be None or an integer >= 1, got {self.min_samples!r}")
        if self.cluster_selection_method not in ("eom", "leaf"):
            raise ValueError(f"cluster_selection_method must be 'eom' or 'leaf', got {self.cluster_selection_method!r}")
        from importlib.metadata import version

        return {"clusterer": "hdbscan", "min_cluster_size": int(self.min_cluster_size),
                "min_samples": None if self.min_samples is None else int(self.min_samples),
                "cluster_selection_epsilon": float(self.cluster_selection_epsilon),
                "cluster_selection_method": self.cluster_selection_method, "hdbscan": version("hdbscan")}

    def fit(self, X) -> ClusterResult:
        import hdbscan

        key = self.cache_key()
        X = _check_points(X, max(key["min_cluster_size"], key["min_samples"] or 0))
        model = hdbscan.HDBSCAN(
            min_cluster_size=key["min_cluster_size"], min_samples=key["min_samples"],
            cluster_selection_epsilon=key["cluster_selection_epsilon"],
            cluster_selection_method=key["cluster_selection_method"], core_dist_n_jobs=_n_jobs(self.n_jobs),
        )
        labels = model.fit_predict(X)
        scores = np.asarray(model.outlier_scores_, dtype=np.float64)
        scores = np.where(np.isfinite(scores), scores, 1.0)  # GLOSH is NaN for exact duplicates
        result = ClusterResult(labels=_relabel_by_size(labels), outlier_scores=scores)
        result.params = {**key, "n_clusters": result.n_clusters, "noise_fraction": result.noise_fraction,
                         "degenerate": result.degenerate}
        return result


def get_clusterer(name: str = "dbscan", preset: str | None = None, **params):
    """A clusterer by name (``'dbscan'`` or ``'hdbscan'``), optionally from a dataset preset."""
    key = name.lower()
    params = {k: v for k, v in params.items() if v is not None}  # None: keep the default or the preset's
    if key == "dbscan":
        return DBSCANClusterer.from_preset(preset, **params) if preset else DBSCANClusterer(**params)
    if key == "hdbscan":
        return HDBSCANClusterer.from_preset(preset, **params) if preset else HDBSCANClusterer(**params)
    raise ValueError(f"unknown clusterer {name!r}; choose 'dbscan' or 'hdbscan'")
