"""Parameter checks for every stage's estimators: one place, one message style.

Each check returns the value converted (``int``/``float``) or raises ``ValueError`` naming the
parameter, what it must be and what it got, e.g. ``"min_samples must be an integer >= 1 or None,
got True"``. Booleans are refused where numbers are expected (``True`` is an ``int`` to Python,
never a sensible eps or sample count). Used by :mod:`deqlib.reduce`, :mod:`deqlib.cluster` and
offered to the other stages. :func:`check_embeddings` is every stage's check of an embedding
matrix; :func:`resolve_n_jobs` turns an estimator's ``n_jobs`` into a thread count.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Iterable

import numpy as np

__all__ = ["check_int", "check_real", "check_choice", "check_bool", "check_embeddings", "resolve_n_jobs"]


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


def resolve_n_jobs(n_jobs) -> int:
    """Threads an estimator's ``n_jobs`` asks for: None or -1 = every core this process may use
    (its CPU affinity, not the machine's count), else the number given."""
    if n_jobs is None or n_jobs == -1:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return int(n_jobs)


def check_embeddings(X, name: str = "X") -> np.ndarray:
    """Validate an embedding matrix: 2-D, non-empty, numeric, finite.

    float32 stays float32 (a million 1280-d vectors are 5 GB, not 10); anything else becomes float64.
    """
    try:
        array = np.asarray(X)
        if array.dtype not in (np.float32, np.float64):
            array = array.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric array (samples x features): {exc}") from exc
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (samples x features), got shape {array.shape}")
    bad_rows = ~np.isfinite(array).all(axis=1)
    if bad_rows.any():
        rows = np.flatnonzero(bad_rows)
        raise ValueError(
            f"{name} has NaN or infinite values in {rows.size} of {array.shape[0]} rows "
            f"(first rows: {rows[:5].tolist()}); drop or re-embed those samples before reducing"
        )
    return array
