"""Parameter checks for every stage's estimators: one place, one message style.

Each check returns the value converted (``int``/``float``) or raises ``ValueError`` naming the
parameter, what it must be and what it got, e.g. ``"min_samples must be an integer >= 1 or None,
got True"``. Booleans are refused where numbers are expected (``True`` is an ``int`` to Python,
never a sensible eps or sample count). Used by :mod:`deqlib.reduce`, :mod:`deqlib.cluster` and
offered to the other stages. :func:`resolve_n_jobs` turns an estimator's ``n_jobs`` into a thread
count.

:func:`check_samples` is the one check of the data every reducer and clusterer fits on: dense,
real, numeric, 2-D, enough samples and features, finite, and returned C-contiguous whatever the
memory order it came in (a pandas ``df[["x", "y", "z"]].to_numpy()`` is Fortran-ordered, which
numba-compiled libraries such as ``fast_hdbscan`` refuse). Its messages contain the phrases
scikit-learn's ``check_estimator`` looks for ("Complex data not supported", "sparse",
"0 feature(s)", "1 sample(s)", "NaN") and then name the fix. :func:`check_embeddings` is the same
check under the name every stage uses for an embedding matrix.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Iterable

import numpy as np

__all__ = ["check_int", "check_real", "check_choice", "check_bool", "check_samples", "check_embeddings",
           "resolve_n_jobs", "duplicate_groups"]


def _or_none(allow_none: bool) -> str:
    return " or None" if allow_none else ""


def check_int(name: str, value, minimum: int | None = None, *, allow_none: bool = False) -> int | None:
    """``value`` as an ``int`` (``>= minimum`` when given); ``None`` passes only with ``allow_none``."""
    if value is None and allow_none:
        return None
    bound = f" >= {minimum}" if minimum is not None else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or (minimum is not None and value < minimum):
        raise ValueError(f"{name} must be an integer{bound}{_or_none(allow_none)}, got {value!r}")
    return int(value)


def check_real(name: str, value, minimum: float | None = None, *, exclusive: bool = False,
               allow_none: bool = False) -> float | None:
    """``value`` as a ``float`` (``> minimum`` with ``exclusive``, else ``>= minimum``); finite."""
    if value is None and allow_none:
        return None
    if minimum is None:
        what = "a finite number"
    elif minimum == 0 and exclusive:
        what = "a positive number"
    else:
        what = f"a number {'>' if exclusive else '>='} {minimum:g}"
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and value == value \
        and abs(value) != float("inf")
    if ok and minimum is not None:
        ok = value > minimum if exclusive else value >= minimum
    if not ok:
        raise ValueError(f"{name} must be {what}{_or_none(allow_none)}, got {value!r}")
    return float(value)


def check_choice(name: str, value, choices: Iterable):
    """``value`` if it is one of ``choices``."""
    choices = tuple(choices)
    if isinstance(value, bool) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
    return value


def check_bool(name: str, value) -> bool:
    """``value`` if it is ``True`` or ``False`` (numpy booleans included), not 0/1 or a string."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_samples(X, name: str = "X", *, min_samples: int = 1, writeable: bool = False) -> np.ndarray:
    """``X`` as a dense, C-contiguous, finite 2-D float array (samples x features).

    float32 stays float32 (a million 1280-d vectors are 5 GB, not 10); any other real dtype
    (integers, booleans, numbers stored as objects) becomes float64. Refused, each with a
    message naming the fix: sparse matrices, complex numbers, entries that are not numbers, not
    2-D, fewer than ``min_samples`` rows or no column, NaN or infinite values.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        In any memory order (C, Fortran, strided views): the result is C-contiguous.
    name : str, default='X'
        What the messages call it (``'embeddings'`` in :func:`deqlib.pipeline.analyze`).
    min_samples : int, default=1
        Fewest rows accepted.
    writeable : bool, default=False
        Copy a read-only input (a memory-mapped file) for libraries that write into their input
        or need a writable buffer (the ``hdbscan`` library's Cython code).

    Returns
    -------
    ndarray of float32 or float64, shape (n_samples, n_features), C-contiguous
    """
    if hasattr(X, "tocsr") or hasattr(X, "sparse"):  # scipy.sparse matrices and arrays, pandas sparse frames
        raise TypeError(f"{name} is a sparse matrix ({type(X).__name__}); sparse input is not supported: the "
                        f"reducers and clusterers need a dense array, so pass {name}.toarray() (embeddings are "
                        "dense vectors)")
    array = np.asarray(X)
    if np.iscomplexobj(array):
        raise ValueError(f"Complex data not supported: {name} has dtype {array.dtype}; pass real numbers "
                         f"(e.g. {name}.real or abs({name}))")
    if array.dtype not in (np.float32, np.float64):
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError) as exc:  # the same exception type, with the fix
            raise type(exc)(f"{name} must hold numbers (samples x features), but converting it to float64 failed: "
                            f"{exc}. Convert or drop the entries that are not numbers") from exc
    if array.ndim != 2:
        raise ValueError(f"{name} must be a non-empty 2-D array (samples x features), got shape {array.shape}; "
                         f"a single sample is {name}.reshape(1, -1), a single feature {name}.reshape(-1, 1)")
    n_samples, n_features = array.shape
    if n_samples < max(min_samples, 1):
        raise ValueError(f"{name} has {n_samples} sample(s) (shape={array.shape}) while a minimum of "
                         f"{max(min_samples, 1)} is required; add samples")
    if n_features == 0:
        raise ValueError(f"{name} has 0 feature(s) (shape={array.shape}) while a minimum of 1 is required; "
                         "pass the vectors, not an empty selection of columns")
    bad_rows = ~np.isfinite(array).all(axis=1)
    if bad_rows.any():
        rows = np.flatnonzero(bad_rows)
        raise ValueError(
            f"{name} has NaN or infinite values in {rows.size} of {n_samples} rows "
            f"(first rows: {rows[:5].tolist()}); drop or re-embed those samples before reducing")
    array = np.ascontiguousarray(array)
    if writeable and not array.flags.writeable:
        array = array.copy()
    return array


#: Largest absolute embedding value accepted: its square times a million features stays far below
#: float32's maximum (3.4e38), the precision the neighbour searches work in.
MAX_ABS_EMBEDDING = 1e15


def check_embeddings(X, name: str = "X", min_samples: int = 1) -> np.ndarray:
    """Validate an embedding matrix: dense, real, numeric, 2-D, non-empty, finite; C-contiguous on return.

    float32 stays float32 (a million 1280-d vectors are 5 GB, not 10); anything else becomes float64.
    Any memory order is accepted (:func:`check_samples`, which says what each refusal means and how
    to fix it).
    Values beyond :data:`MAX_ABS_EMBEDDING` in absolute value are refused: the neighbour searches
    square them in float32 (which overflows near 1e19), so 1e30 made a NaN map after a whole t-SNE
    ("try a smaller learning_rate") or, in float32, "Eigenvalues did not converge".
    """
    array = check_samples(X, name, min_samples=min_samples)
    peak = max(float(array.max()), -float(array.min()))  # no |array| copy (a million vectors are 5 GB)
    if peak > MAX_ABS_EMBEDDING:
        row, column = np.unravel_index(int(np.abs(array).argmax()), array.shape)
        raise ValueError(
            f"{name} reach {peak:.3g} in absolute value (row {row}, column {column}); at most "
            f"{MAX_ABS_EMBEDDING:.0e} is accepted: the neighbour searches square values in float32, which "
            f"overflows near 1e19 (1e30 gave a NaN map). Scale the vectors first, e.g. {name} / np.abs({name}).max() or "
            f"sklearn.preprocessing.StandardScaler().fit_transform({name})")
    return array


def resolve_n_jobs(n_jobs) -> int:
    """Threads an estimator's ``n_jobs`` asks for: None or -1 = every core this process may use
    (its CPU affinity, not the machine's count), else the number given."""
    if n_jobs is None or n_jobs == -1:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return int(n_jobs)


def duplicate_groups(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of ``vectors`` that are exactly identical (byte for byte), grouped.

    Returns
    -------
    first : ndarray of int
        Index of each distinct vector's first row, ascending (the rows a reducer fits).
    inverse : ndarray of int, shape (N,)
        For each row, the position of its vector in ``first`` (``vectors[first][inverse] == vectors``).
    counts : ndarray of int
        How many rows hold each distinct vector.
    """
    rows = np.ascontiguousarray(vectors)
    keys = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
    _, first, inverse, counts = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
    order = np.argsort(first, kind="stable")  # distinct vectors in the order they first appear
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return first[order], rank[inverse.ravel()], counts[order]
