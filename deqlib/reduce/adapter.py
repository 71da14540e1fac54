"""Any scikit-learn-style reducer as a :mod:`deqlib.reduce` reducer: :class:`SklearnReducer` (a
:class:`deqlib.adapters.WrappingEstimator`) and :func:`as_reducer`."""

from __future__ import annotations

import numpy as np

from deqlib._validation import check_embeddings
from deqlib.adapters import WrappingEstimator
from deqlib.reduce.base import REDUCERS, _duplicate_hint

__all__ = ["SklearnReducer", "as_reducer"]


class SklearnReducer(WrappingEstimator):
    """Any scikit-learn-style reducer (``fit_transform``, or ``fit`` then ``embedding_``) as a deqlib reducer.

    ``SklearnReducer.wrapping(PCA)`` is a class whose parameters are PCA's own (plus
    ``random_state=None`` when the wrapped class has none: every reducer has one, since the
    stage builder and the stability runs set it; it then changes nothing); :func:`as_reducer`
    adapts an instance, keeping its parameters. Each :meth:`fit` fits a new instance of the
    wrapped class, so the caller's object is never fitted or changed::

        from sklearn.decomposition import PCA
        REDUCERS.register("pca", output="pca", invalid_params={"n_components": -1})(SklearnReducer.wrapping(PCA))
        build_stages(reducer=PCA(n_components=3))          # or an instance, adapted by as_reducer

    The adapter's ``output`` (the family of its coordinates, :func:`reducer_output`) is the wrapped
    class's name in lower case (``'pca'``; ``'tsne'`` for a t-SNE, so DBSCAN's official eps applies).
    Its cache key is the wrapped class, its package's version and its parameters
    (:func:`deqlib.adapters.estimator_key`).

    Attributes
    ----------
    estimator_ : estimator
        The fitted instance of the wrapped class.
    embedding_ : ndarray of float64, shape (N, n_components)
    n_features_in_ : int
    params_ : dict
        The cache key, the number of samples and of output dimensions.
    """

    adapter_params = {"random_state": None}
    _stage = "reducer"
    _output = ("fit_transform", "embedding_")

    @classmethod
    def _adapter_attributes(cls, estimator_class: type) -> dict:
        return {"output": estimator_class.__name__.lower()}

    def fit_transform(self, X, y=None) -> np.ndarray:
        """:meth:`fit` and return :attr:`embedding_` (N x n_components, float64)."""
        return self.fit(X).embedding_

    def fit(self, X, y=None) -> "SklearnReducer":
        """Reduce ``X`` (N x D) with a new instance of the wrapped class; sets :attr:`embedding_`."""
        key = self.cache_key()
        X = check_embeddings(X, min_samples=2)
        model, coords = self._fit_wrapped(X)
        if hasattr(coords, "toarray"):  # a transformer that returns a sparse matrix
            coords = coords.toarray()
        coords = np.asarray(coords, dtype=np.float64)
        if coords.ndim != 2 or coords.shape[0] != X.shape[0] or coords.shape[1] == 0:
            raise ValueError(f"{type(model).__name__} gave coordinates of shape {coords.shape}; a reducer must give "
                             f"one row per sample ({X.shape[0]}) and at least one column")
        if not np.isfinite(coords).all():
            raise RuntimeError(f"{type(model).__name__} returned non-finite coordinates; {_duplicate_hint(X)}")
        self.estimator_, self.embedding_, self.n_features_in_ = model, coords, int(X.shape[1])
        self.params_ = {**key, "n_samples": int(X.shape[0]), "n_components_out": int(coords.shape[1])}
        return self


def as_reducer(reducer):
    """A deqlib reducer for ``reducer``: itself when it is one (it has ``cache_key``), else a
    :class:`SklearnReducer` with its class and parameters (``get_params()``).

    Raises
    ------
    TypeError
        ``reducer`` has no ``fit_transform`` or ``fit``, is a class rather than an instance, or
        has no ``get_params`` (its parameters make the cache key: derive it from scikit-learn's
        ``BaseEstimator``, or give it a ``cache_key()``).
    """
    return SklearnReducer.adapt(reducer, REDUCERS.names())
