"""Step three of the method: 3-D points -> cluster labels (``-1`` = noise).

Clusterers are scikit-learn estimators registered in :data:`CLUSTERERS` (``get_clusterer(name)``
or ``CLUSTERERS.create(name, **params)``). ``fit(X)`` returns ``self`` and sets ``labels_``
(int64, ids ``0..K-1`` ordered by cluster size, largest first; ``-1`` = noise),
``outlier_scores_`` (None where the algorithm has none), ``params_`` (the parameters, the
effective eps, cluster count, noise share, degeneracy) and ``result_`` (all of it as a
:class:`ClusterResult`); ``fit_predict(X)`` returns ``labels_``. Registered:

:class:`DBSCANClusterer` (``'dbscan'``)
    scikit-learn's DBSCAN, the official choice. The paper's per-dataset settings are in
    :data:`PRESETS` (``DBSCANClusterer.from_preset("kitti")``).
:class:`HDBSCANClusterer` (``'hdbscan'``)
    The ``hdbscan`` library (scikit-learn's own HDBSCAN measured 20x slower on 100k 3-D
    points). Keeps GLOSH outlier scores per sample.
:class:`FastHDBSCANClusterer` (``'fast-hdbscan'``, needs ``fast-hdbscan``)
    The numba ``fast_hdbscan`` library's HDBSCAN (no outlier scores).

Any other scikit-learn-style clusterer (``fit_predict``, or ``fit`` then ``labels_``: KMeans,
Birch, OPTICS, AgglomerativeClustering, ...) plugs in through :class:`SklearnClusterer`:
``CLUSTERERS.register("optics")(SklearnClusterer.wrapping(OPTICS))`` registers a class, and
:func:`as_clusterer` adapts an instance (:func:`deqlib.pipeline.build_stages` does it for any
object passed as ``clusterer``).

Every clusterer accepts its points in any memory order (a pandas ``bank[["x", "y", "z"]].to_numpy()``
is Fortran-ordered, on which the numba code of ``fast_hdbscan`` fails) and sets ``n_features_in_``.

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
    preset gives comparable clusterings with either reducer (``docs/analysis.md``). The
    calibration assumes t-SNE output (:data:`EPS_CALIBRATED_ON`, recorded in ``params_``):
    :func:`deqlib.pipeline.build_stages` refuses it after a reducer whose registry entry is not
    ``output='tsne'`` (UMAP) and defaults such reducers to ``"knn"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin

from deqlib._validation import (check_choice, check_embeddings, check_int, check_real, check_samples,
                                duplicate_groups, resolve_n_jobs)
from deqlib.adapters import WrappingEstimator
from deqlib.labels import relabel_by_size
from deqlib.registry import Registry

__all__ = [
    "CLUSTERERS",
    "EPS_CALIBRATED_ON",
    "PRESETS",
    "EPS_SCALES",
    "OFFICIAL_KNN_SCALE",
    "ClusterResult",
    "DBSCANClusterer",
    "HDBSCANClusterer",
    "FastHDBSCANClusterer",
    "SklearnClusterer",
    "as_clusterer",
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
#: The output :data:`OFFICIAL_KNN_SCALE` was measured on. Its ratio rescales eps between t-SNE
#: implementations (openTSNE measured against it); another reducer's geometry is not a t-SNE's.
EPS_CALIBRATED_ON = "sklearn-tsne"
#: Reducer output families (``REDUCERS`` entries' ``output``) that ``eps_scale='official'`` accepts.
OFFICIAL_EPS_OUTPUTS = ("tsne",)

#: Every clusterer by name. An entry's ``extra`` may give ``preset_params`` (a function from a
#: :data:`PRESETS` setting to constructor parameters, so ``preset=`` works with it),
#: ``test_params`` (for the contract tests) and ``invalid_params`` (a bad value the contract
#: tests expect a ValueError naming the parameter for).
CLUSTERERS = Registry("clusterer")


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
    # C-contiguous and writable: the hdbscan library's Cython code refuses read-only memory maps and
    # fast_hdbscan's numba code Fortran-ordered arrays. Points are low-dimensional: a copy is cheap.
    X = check_samples(X, min_samples=2, writeable=True)
    if X.shape[0] <= min_samples:
        raise ValueError(
            f"clustering needs more samples than min_samples ({min_samples}), got {X.shape[0]} sample(s); "
            "lower min_samples or add samples"
        )
    return X


class _FittedLabels(ClusterMixin):
    """``fit_predict`` (from ClusterMixin) and the fitted attributes every clusterer sets."""

    def _set_fitted(self, labels, outlier_scores, params: dict, n_features: int):
        self.n_features_in_ = int(n_features)
        result = ClusterResult(labels=relabel_by_size(labels), outlier_scores=outlier_scores)
        result.params = {**params, "n_clusters": result.n_clusters, "noise_fraction": result.noise_fraction,
                         "degenerate": result.degenerate}
        self.labels_, self.outlier_scores_, self.params_, self.result_ = (
            result.labels, result.outlier_scores, result.params, result)
        return self


def _dbscan_preset(setting: dict) -> dict:
    return {"eps": setting["eps"], "min_samples": setting["min_samples"]}


def _hdbscan_preset(setting: dict) -> dict:
    return {"min_cluster_size": setting["min_samples"]}


@CLUSTERERS.register("dbscan", summary="scikit-learn DBSCAN with a raw or scale-aware eps (the paper's)",
                     preset_params=_dbscan_preset, test_params={"eps": 2.0, "min_samples": 5, "eps_scale": "knn"},
                     invalid_params={"min_samples": True})
class DBSCANClusterer(_FittedLabels, BaseEstimator):
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

    Attributes
    ----------
    labels_ : ndarray of int64, shape (N,)
    outlier_scores_ : None
        DBSCAN has none.
    effective_eps_ : float
        The raw eps used on the last ``X``.
    params_ : dict
        Parameters (with ``eps_calibrated_on``), effective eps, k-NN scale, cluster count, noise share.
    result_ : ClusterResult
    """

    def __init__(self, eps=1.0, min_samples=10, eps_scale=DEFAULT_EPS_SCALE, n_jobs=-1):
        self.eps = eps
        self.min_samples = min_samples
        self.eps_scale = eps_scale
        self.n_jobs = n_jobs

    @classmethod
    def from_preset(cls, name: str, eps_scale: str = DEFAULT_EPS_SCALE, **overrides) -> "DBSCANClusterer":
        """The paper's setting for a dataset (:data:`PRESETS`): ``kitti``, ``nuscenes``, ``waymo``, ``bdd100k``."""
        return cls(**{**_dbscan_preset(preset_setting(name)), "eps_scale": eps_scale, **overrides})

    def _validate(self) -> tuple[float, int]:
        eps = check_real("eps", self.eps, 0, exclusive=True)
        min_samples = check_int("min_samples", self.min_samples, 1)
        check_choice("eps_scale", self.eps_scale, EPS_SCALES)
        return eps, min_samples

    def cache_key(self) -> dict:
        eps, min_samples = self._validate()
        official = self.eps_scale == "official"
        return {"clusterer": "dbscan", "eps": eps, "min_samples": min_samples, "eps_scale": self.eps_scale,
                "official_knn_scale": dict(OFFICIAL_KNN_SCALE) if official else None,
                "eps_calibrated_on": EPS_CALIBRATED_ON if official else None}

    def effective_eps(self, X) -> tuple[float, float | None]:
        """The raw eps used on ``X`` and the k-NN scale it came from (None for ``'raw'``)."""
        eps, min_samples = self._validate()
        if self.eps_scale == "raw":
            return eps, None
        # The spacing of the map is that of its distinct points: copies of one vector share one position
        # (deqlib.pipeline fits the reducer on distinct vectors), and would otherwise shrink the scale to 0.
        X = check_embeddings(X)
        distinct = duplicate_groups(X)[0]
        if distinct.size < X.shape[0]:
            X = X[distinct]
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

    def fit(self, X, y=None) -> "DBSCANClusterer":
        """Cluster ``X`` (N x d points); sets :attr:`labels_` and the other fitted attributes."""
        from sklearn.cluster import DBSCAN

        eps, min_samples = self._validate()
        X = _check_points(X, min_samples)
        raw_eps, scale = self.effective_eps(X)
        labels = DBSCAN(eps=raw_eps, min_samples=min_samples, n_jobs=resolve_n_jobs(self.n_jobs)).fit_predict(X)
        self.effective_eps_ = raw_eps
        return self._set_fitted(labels, None, {**self.cache_key(), "effective_eps": raw_eps, "knn_scale": scale},
                                X.shape[1])


@CLUSTERERS.register("hdbscan", summary="HDBSCAN (the hdbscan library) with GLOSH outlier scores",
                     requires=("hdbscan",), preset_params=_hdbscan_preset, test_params={"min_cluster_size": 15},
                     invalid_params={"cluster_selection_epsilon": -5})
class HDBSCANClusterer(_FittedLabels, BaseEstimator):
    """HDBSCAN (the ``hdbscan`` library) with per-sample outlier scores.

    Parameters
    ----------
    min_cluster_size : int, default=10
        Smallest group that counts as a cluster.
    min_samples : int or None, default=None
        Density smoothing (None: ``min_cluster_size``, as the library does).
    cluster_selection_epsilon : float, default=0.0
        Merge clusters closer than this (raw units, >= 0).
    cluster_selection_method : {'eom', 'leaf'}, default='eom'
    n_jobs : int, default=-1
        Threads for the core distances.

    Attributes
    ----------
    labels_ : ndarray of int64, shape (N,)
    outlier_scores_ : ndarray of float64, shape (N,)
        GLOSH score per sample (higher = more outlying; 1.0 where the library gives NaN).
    params_ : dict
    result_ : ClusterResult
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
        return cls(**{**_hdbscan_preset(preset_setting(name)), **overrides})

    def _hdbscan_params(self) -> dict:
        return {"min_cluster_size": check_int("min_cluster_size", self.min_cluster_size, 2),
                "min_samples": check_int("min_samples", self.min_samples, 1, allow_none=True),
                "cluster_selection_epsilon": check_real("cluster_selection_epsilon", self.cluster_selection_epsilon, 0),
                "cluster_selection_method": check_choice("cluster_selection_method", self.cluster_selection_method,
                                                         ("eom", "leaf"))}

    def cache_key(self) -> dict:
        from importlib.metadata import version

        return {"clusterer": "hdbscan", **self._hdbscan_params(), "hdbscan": version("hdbscan")}

    def fit(self, X, y=None) -> "HDBSCANClusterer":
        """Cluster ``X`` (N x d points); sets :attr:`labels_`, :attr:`outlier_scores_` and the rest."""
        import hdbscan

        key = self.cache_key()
        X = _check_points(X, max(key["min_cluster_size"], key["min_samples"] or 0))
        model = hdbscan.HDBSCAN(
            min_cluster_size=key["min_cluster_size"], min_samples=key["min_samples"],
            cluster_selection_epsilon=key["cluster_selection_epsilon"],
            cluster_selection_method=key["cluster_selection_method"], core_dist_n_jobs=resolve_n_jobs(self.n_jobs),
        )
        labels = model.fit_predict(X)
        scores = np.asarray(model.outlier_scores_, dtype=np.float64)
        scores = np.where(np.isfinite(scores), scores, 1.0)  # GLOSH is NaN for exact duplicates
        return self._set_fitted(labels, scores, key, X.shape[1])


@CLUSTERERS.register("fast-hdbscan", summary="HDBSCAN by the numba fast_hdbscan library (no outlier scores)",
                     requires=("fast_hdbscan",), pip="fast-hdbscan", preset_params=_hdbscan_preset,
                     test_params={"min_cluster_size": 15}, invalid_params={"min_samples": True})
class FastHDBSCANClusterer(HDBSCANClusterer):
    """HDBSCAN by ``fast_hdbscan`` (numba, parallel Boruvka), with :class:`HDBSCANClusterer`'s parameters.

    Parameters
    ----------
    min_cluster_size : int, default=10
    min_samples : int or None, default=None
        None: ``min_cluster_size``, as the library does.
    cluster_selection_epsilon : float, default=0.0
    cluster_selection_method : {'eom', 'leaf'}, default='eom'
    n_jobs : int, default=-1
        numba threads during the fit (-1: every core this process may use); restored afterwards.
        The library's ``reproducible=True`` is always set, so the labels do not depend on it.

    Attributes
    ----------
    labels_ : ndarray of int64, shape (N,)
    outlier_scores_ : None
        fast_hdbscan computes no GLOSH scores.
    params_ : dict
    result_ : ClusterResult
    """

    # The parameters, their checks and from_preset are HDBSCANClusterer's; the library differs.
    def cache_key(self) -> dict:
        from importlib.metadata import version

        return {"clusterer": "fast-hdbscan", **self._hdbscan_params(), "reproducible": True,
                "fast_hdbscan": version("fast-hdbscan")}

    def fit(self, X, y=None) -> "FastHDBSCANClusterer":
        """Cluster ``X`` (N x d points); sets :attr:`labels_` and the other fitted attributes."""
        import fast_hdbscan
        import numba

        key = self.cache_key()
        X = _check_points(X, max(key["min_cluster_size"], key["min_samples"] or 0))
        model = fast_hdbscan.HDBSCAN(
            min_cluster_size=key["min_cluster_size"], min_samples=key["min_samples"],
            cluster_selection_epsilon=key["cluster_selection_epsilon"],
            cluster_selection_method=key["cluster_selection_method"], reproducible=True)
        previous = numba.get_num_threads()
        numba.set_num_threads(min(resolve_n_jobs(self.n_jobs), numba.config.NUMBA_NUM_THREADS))
        try:
            labels = model.fit_predict(np.ascontiguousarray(X, dtype=np.float64))
        finally:
            numba.set_num_threads(previous)
        return self._set_fitted(labels, None, key, X.shape[1])


class SklearnClusterer(_FittedLabels, WrappingEstimator):
    """Any scikit-learn-style clusterer (``fit_predict``, or ``fit`` then ``labels_``) as a deqlib clusterer.

    ``SklearnClusterer.wrapping(OPTICS)`` is a class whose parameters are OPTICS's own, so
    ``get_params``, ``set_params`` and ``clone`` work as on OPTICS; :func:`as_clusterer` adapts an
    instance, keeping its parameters. Each :meth:`fit` fits a new instance of the wrapped class
    (the caller's object is never fitted), relabels its clusters by size (-1 kept as noise) and
    keeps its ``outlier_scores_`` when it has them (None otherwise). One line registers one::

        from sklearn.cluster import OPTICS
        CLUSTERERS.register("optics", invalid_params={"min_samples": -3})(SklearnClusterer.wrapping(OPTICS))

    Its cache key is the wrapped class, its package's version and its parameters
    (:func:`deqlib.adapters.estimator_key`).

    Attributes
    ----------
    estimator_ : estimator
        The fitted instance of the wrapped class.
    labels_, outlier_scores_, params_, result_, n_features_in_
        As for every clusterer.
    """

    _stage = "clusterer"
    _output = ("fit_predict", "labels_")

    def fit(self, X, y=None) -> "SklearnClusterer":
        """Cluster ``X`` with a new instance of the wrapped class; sets :attr:`labels_` and the rest."""
        key = self.cache_key()
        X = check_samples(X, min_samples=2)
        model, labels = self._fit_wrapped(X)
        labels = np.asarray(labels)
        if labels.shape != (X.shape[0],) or not np.issubdtype(labels.dtype, np.integer) or (labels < -1).any():
            raise ValueError(f"{type(model).__name__} gave labels of shape {labels.shape} and dtype {labels.dtype}; "
                             f"a clusterer must give one integer label >= -1 per sample ({X.shape[0]})")
        scores = getattr(model, "outlier_scores_", None)
        if scores is not None:
            scores = np.asarray(scores, dtype=np.float64)
            scores = np.where(np.isfinite(scores), scores, 1.0)
        self.estimator_ = model
        return self._set_fitted(labels, scores, key, X.shape[1])


def as_clusterer(clusterer):
    """A deqlib clusterer for ``clusterer``: itself when it is one (it has ``cache_key``), else a
    :class:`SklearnClusterer` with its class and parameters (``get_params()``).

    Raises
    ------
    TypeError
        ``clusterer`` has no ``fit``, is a class rather than an instance, or has no
        ``get_params`` (its parameters make the cache key: derive it from scikit-learn's
        ``BaseEstimator``, or give it a ``cache_key()``).
    """
    return SklearnClusterer.adapt(clusterer, CLUSTERERS.names())


def preset_setting(name: str) -> dict:
    """The paper's DBSCAN setting of a dataset (:data:`PRESETS`); a clear error for an unknown name."""
    key = str(name).lower()
    if key not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return dict(PRESETS[key])


def preset_params(clusterer: str, preset: str) -> dict:
    """Constructor parameters of the registered ``clusterer`` for the paper's ``preset``.

    Raises ValueError when the clusterer's entry has no ``preset_params`` (the presets are DBSCAN
    settings; only clusterers that say how to read them accept one).
    """
    entry = CLUSTERERS.entry(clusterer)
    mapping = entry.extra.get("preset_params")
    if mapping is None:
        raise ValueError(f"the clusterer {entry.name!r} cannot read the paper's presets (DBSCAN settings); "
                         "drop preset or give its parameters")
    return mapping(preset_setting(preset))


def get_clusterer(name: str = "dbscan", preset: str | None = None, **params):
    """A clusterer by registered name (:data:`CLUSTERERS`), optionally from a dataset preset.

    ``params`` that are None keep the default (or the preset's value).
    """
    params = {k: v for k, v in params.items() if v is not None}
    if preset:
        params = {**preset_params(name, preset), **params}
    return CLUSTERERS.create(name, **params)
