"""What every reducer of :mod:`deqlib.reduce` shares: the registry, the input checks and the PCA pre-reduction.

:data:`REDUCERS` is filled by the modules of the package, each beside its reducers' code
(:mod:`deqlib.reduce.tsne`, :mod:`deqlib.reduce.umap`, :mod:`deqlib.reduce.adapter`).
"""

from __future__ import annotations

import numpy as np

from deqlib._validation import check_int, check_real
from deqlib.registry import Registry

__all__ = ["REDUCERS", "check_not_all_identical", "reducer_output", "get_reducer"]

#: Every reducer by name. An entry's ``extra`` says ``output`` (the family of its coordinates:
#: ``'tsne'`` or another; :mod:`deqlib.cluster`'s ``eps_scale='official'`` is calibrated on t-SNE
#: output only) and may give ``test_params`` (a tiny, fast setting for the contract tests) and
#: ``invalid_params`` (a bad value the contract tests expect a ValueError naming the parameter for).
REDUCERS = Registry("reducer")


def check_not_all_identical(X: np.ndarray) -> None:
    """Refuse embeddings whose rows are all the same vector (scikit-learn's t-SNE segfaults on
    them: its PCA initialisation divides by a zero spread; openTSNE returns NaN)."""
    spread = float(np.ptp(X, axis=0).max()) if X.shape[0] > 1 else 0.0
    if spread <= 1e-12 * max(1.0, float(np.abs(X[0]).max())):
        raise ValueError(
            f"all {X.shape[0]} embeddings are the same vector: t-SNE cannot spread identical points. "
            "Check the images (a folder of copies, or a source that returns the same image each time) "
            "and drop the duplicates before reducing")


def _duplicate_hint(X: np.ndarray) -> str:
    """Why a t-SNE may have failed, in words (computed only after a failure)."""
    n_distinct = np.unique(X, axis=0).shape[0]
    if n_distinct < X.shape[0] / 2:
        return (f"only {n_distinct} of the {X.shape[0]} embeddings are distinct (exact duplicates): "
                "drop the duplicate images and re-run")
    return "try a smaller learning_rate"


def _check_positive_int(name: str, value, minimum: int = 1) -> int:
    return check_int(name, value, minimum)


def _check_random_state(value) -> None:
    check_int("random_state", value, 0, allow_none=True)


def _check_learning_rate(value) -> None:
    if value != "auto":
        check_real("learning_rate", value, 0, exclusive=True)


def reducer_output(reducer) -> str | None:
    """The family of a reducer's coordinates (``'tsne'``, ``'umap'``, ...) from its registry entry.

    A reducer class not registered may say it with a class attribute ``output``; None when unknown.
    """
    for name in REDUCERS:
        entry = REDUCERS.entry(name)
        if isinstance(entry.factory, type) and type(reducer) is entry.factory:
            return entry.extra.get("output")
    return getattr(reducer, "output", None)


def _pca(X: np.ndarray, n_components: int | None, random_state: int) -> tuple[np.ndarray, dict]:
    """PCA pre-reduction when asked and useful; returns the data and what was done."""
    if n_components is None or n_components >= min(X.shape):
        return X, {"pca_components": None}
    from sklearn.decomposition import PCA

    pca = PCA(n_components=n_components, svd_solver="randomized", random_state=random_state)
    reduced = pca.fit_transform(X)
    return reduced, {"pca_components": int(n_components),
                     "pca_explained_variance": float(pca.explained_variance_ratio_.sum())}


def get_reducer(name: str = "opentsne", **params):
    """A reducer by registered name (:data:`REDUCERS`: ``'opentsne'``, ``'sklearn'``, ...) made with ``params``."""
    return REDUCERS.create(name, **params)
