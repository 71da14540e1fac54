"""How well each rarity signal recovers planted rare groups: a heat map of ROC AUC per task x signal.

Input is the per-cell table of :func:`deqlib.recovery.evaluate_variant` records (the rarity
benchmark's cells, ``deq rarity-check``'s rows): columns ``variant``, ``task``, ``roc_auc``;
optionally the probe ceilings (``task``, ``probe_auc``), drawn as the top row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["auc_matrix", "auc_heatmap"]


def _task_key(task: str):
    name, _, prevalence = str(task).partition("@")
    try:
        share = float(prevalence.rstrip("%"))
    except ValueError:
        share = 0.0
    return (not name.startswith("rare-classes"), name, share)


def auc_matrix(cells: pd.DataFrame, probes: pd.DataFrame | None = None) -> pd.DataFrame:
    """Mean ROC AUC per signal variant (rows, best mean first) and task (columns); the ceiling first when given."""
    missing = {"variant", "task", "roc_auc"} - set(cells.columns)
    if missing:
        raise ValueError(f"cells needs the columns variant, task and roc_auc; missing {sorted(missing)}")
    matrix = cells.pivot_table(index="variant", columns="task", values="roc_auc", aggfunc="mean")
    matrix = matrix[sorted(matrix.columns, key=_task_key)]
    matrix = matrix.loc[matrix.mean(axis=1).sort_values(ascending=False).index]
    if probes is not None and len(probes):
        ceiling = probes.groupby("task")["probe_auc"].mean().reindex(matrix.columns)
        matrix = pd.concat([pd.DataFrame([ceiling.values], index=["ceiling: linear probe"], columns=matrix.columns),
                            matrix])
    return matrix


def auc_heatmap(cells: pd.DataFrame, probes: pd.DataFrame | None = None, title: str | None = None):
    """A matplotlib figure: ROC AUC per signal (rows) and task (columns), 0.5 white, inverted red, found blue.

    Returns
    -------
    matplotlib.figure.Figure
        Save it with :func:`deqlib.plots.png.save_figure`.
    """
    import matplotlib.pyplot as plt

    matrix = auc_matrix(cells, probes)
    rows, columns = matrix.shape
    figure, axes = plt.subplots(figsize=(max(6.0, 0.55 * columns + 3.5), max(2.5, 0.32 * rows + 1.8)))
    image = axes.imshow(matrix.to_numpy(dtype=float), cmap="RdBu", vmin=0.0, vmax=1.0, aspect="auto")
    axes.set_xticks(range(columns), matrix.columns, rotation=60, ha="right", fontsize=7)
    axes.set_yticks(range(rows), matrix.index, fontsize=7)
    for (i, j), value in np.ndenumerate(matrix.to_numpy(dtype=float)):
        if np.isfinite(value):
            axes.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=5.5,
                      color="white" if abs(value - 0.5) > 0.3 else "black")
    figure.colorbar(image, ax=axes, fraction=0.03, pad=0.01, label="ROC AUC of 1 - likelihood")
    axes.set_title(title or "How well each signal finds the planted rare group", fontsize=9)
    figure.tight_layout()
    return figure
