"""UMAP (``umap-learn``, optional) as a :mod:`deqlib.reduce` reducer, registered as ``'umap'``."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from deqlib._validation import check_embeddings, check_int, check_real, resolve_n_jobs
from deqlib.reduce.base import REDUCERS, _check_random_state, _duplicate_hint, _pca, check_not_all_identical

__all__ = ["UMAPReducer"]


@REDUCERS.register("umap", summary="UMAP 3-D (umap-learn), optional PCA pre-reduction", requires=("umap",),
                   pip="umap-learn", output="umap", test_params={"n_neighbors": 10, "n_epochs": 30},
                   invalid_params={"min_dist": -0.5})
class UMAPReducer(BaseEstimator):
    """UMAP (``umap-learn``) in 3-D, an alternative to t-SNE with the same interface.

    Its coordinates are not t-SNE's: DBSCAN's ``eps_scale='official'`` (calibrated on
    scikit-learn t-SNE output) is refused on them and :func:`deqlib.pipeline.build_stages`
    defaults to ``eps_scale='knn'`` (registry entry ``output='umap'``).

    Parameters
    ----------
    n_components : int, default=3
    n_neighbors : int, default=15
        Size of the local neighbourhood (umap-learn's default).
    min_dist : float, default=0.1
        How tightly points may pack in the output (umap-learn's default).
    metric : str, default='euclidean'
    n_epochs : int or None, default=None
        Optimisation epochs (None: umap-learn's choice, 500 below 10,000 samples, else 200).
    pca_components : int or None, default=50
        PCA pre-reduction before the neighbour graph, as :class:`OpenTSNEReducer` does
        (skipped when the input has fewer dims; None: none). One BLAS thread, for the same reason.
    random_state : int or None, default=33
        With a seed umap-learn runs single-threaded (its parallel SGD is not reproducible).
    n_jobs : int, default=-1
        Threads when ``random_state`` is None (-1: every core this process may use); with a seed
        always 1. umap-learn sets numba's thread count to it during the fit and restores it
        afterwards, so numba never oversubscribes the cores.

    Attributes
    ----------
    embedding_ : ndarray of float64, shape (N, n_components)
    params_ : dict
        Parameters as resolved for the last :meth:`fit` (PCA, threads, versions).
    """

    output = "umap"

    def __init__(self, n_components=3, n_neighbors=15, min_dist=0.1, metric="euclidean", n_epochs=None,
                 pca_components=50, random_state=33, n_jobs=-1):
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.metric = metric
        self.n_epochs = n_epochs
        self.pca_components = pca_components
        self.random_state = random_state
        self.n_jobs = n_jobs

    def resolved_params(self) -> dict:
        if not isinstance(self.metric, str):
            raise ValueError(f"metric must be a metric name such as 'euclidean', got {self.metric!r}")
        _check_random_state(self.random_state)
        return {"reducer": "umap", "n_components": check_int("n_components", self.n_components, 1),
                "n_neighbors": check_int("n_neighbors", self.n_neighbors, 2),
                "min_dist": check_real("min_dist", self.min_dist, 0), "metric": self.metric,
                "n_epochs": check_int("n_epochs", self.n_epochs, 1, allow_none=True),
                "pca_components": check_int("pca_components", self.pca_components, 1, allow_none=True),
                "random_state": self.random_state}

    def cache_key(self) -> dict:
        from importlib.metadata import version

        return {**self.resolved_params(), "umap": version("umap-learn")}

    def fit_transform(self, X, y=None) -> np.ndarray:
        """:meth:`fit` and return :attr:`embedding_` (N x n_components, float64)."""
        return self.fit(X).embedding_

    def fit(self, X, y=None) -> "UMAPReducer":
        """Reduce ``X`` (N x D) to ``N x n_components`` float64 coordinates in :attr:`embedding_`."""
        import umap
        from threadpoolctl import threadpool_limits

        params = self.resolved_params()
        X = check_embeddings(X, min_samples=2)
        check_not_all_identical(X)
        if X.shape[0] <= params["n_neighbors"]:
            raise ValueError(f"UMAP with n_neighbors={params['n_neighbors']} needs more samples than that, got "
                             f"{X.shape[0]}; lower n_neighbors or add samples")
        seed = self.random_state
        threads = 1 if seed is not None else resolve_n_jobs(self.n_jobs)
        with threadpool_limits(limits=1, user_api="blas"):  # a thread-independent PCA, as for openTSNE
            reduced, pca_info = _pca(X, params["pca_components"], seed if seed is not None else 0)
        model = umap.UMAP(n_components=params["n_components"], n_neighbors=params["n_neighbors"],
                          min_dist=params["min_dist"], metric=params["metric"], n_epochs=params["n_epochs"],
                          random_state=seed, n_jobs=threads)
        coords = np.asarray(model.fit_transform(reduced), dtype=np.float64)
        if not np.isfinite(coords).all():
            raise RuntimeError(f"UMAP returned non-finite coordinates; {_duplicate_hint(X)}")
        self.n_features_in_ = int(X.shape[1])
        self.params_ = {**params, **pca_info, "n_samples": int(X.shape[0]), "n_jobs": threads,
                        "umap": self.cache_key()["umap"]}
        self.embedding_ = coords
        return self
