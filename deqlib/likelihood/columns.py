"""Several rarity signals side by side: one likelihood column per registered signal, for tables,
banks and the explorer's colour menu (``deq explore --signals``).
"""

from __future__ import annotations

import numpy as np

from deqlib.likelihood.base import RARITY_SIGNALS

__all__ = ["SIGNAL_COLUMN_PREFIX", "signal_column", "signal_columns"]

#: Column name of a signal's likelihood beside the bank's own: ``signal:<name>``.
SIGNAL_COLUMN_PREFIX = "signal:"


def signal_column(name: str) -> str:
    """``'signal:<registered name>'`` (the name resolved through the registry's aliases)."""
    return SIGNAL_COLUMN_PREFIX + RARITY_SIGNALS.resolve(name)


def signal_columns(context, names, seed: int | None = 0) -> dict[str, np.ndarray]:
    """Each named signal fitted on ``context``, as ``{'signal:<name>': likelihood}`` in the order given.

    Parameters
    ----------
    context : RarityContext or any object with its attributes
        What the signals read (most of issue 20's read ``embeddings`` only).
    names : iterable of str
        Registered :data:`~deqlib.likelihood.RARITY_SIGNALS` names (unknown ones are refused, listing them).
    seed : int or None, default=0
        ``random_state`` of the signals that take one (as :func:`deqlib.stages.build_stages` sets it).

    Returns
    -------
    dict of str -> ndarray (N,)
        Each signal's ``likelihood_`` (float64 in (0, 1]).
    """
    if isinstance(names, str):
        names = [part.strip() for part in names.split(",") if part.strip()]
    columns: dict[str, np.ndarray] = {}
    for name in names:
        entry = RARITY_SIGNALS.entry(name)
        params = {}
        if seed is not None and "random_state" in RARITY_SIGNALS.create(entry.name).get_params():
            params["random_state"] = int(seed)
        columns[signal_column(entry.name)] = RARITY_SIGNALS.create(entry.name, **params).fit(context).likelihood_
    return columns
