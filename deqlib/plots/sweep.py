"""The sweep figure: a run table's metrics against one parameter, one line per value of another.

The table is what :func:`deqlib.sweep.run_sweep` or :func:`deqlib.sweep.weight_sweep` returns;
save the figure with :func:`deqlib.plots.png.save_figure`.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd

__all__ = ["plot_sweep"]


def plot_sweep(results: pd.DataFrame, x: str, metrics: Sequence[str], hue: str | None = None):
    """One panel per metric: the metric against parameter ``x``, one line per value of ``hue``."""
    import matplotlib.pyplot as plt

    ok = results[results["status"].isin(["ok", "cached"])] if "status" in results else results
    figure, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False)
    groups = ok.groupby(hue) if hue else [(None, ok)]
    for ax, metric in zip(axes[0], metrics):
        for value, part in groups:
            part = part.sort_values(x)
            ax.plot(part[x], part[metric], marker="o", label=f"{hue}={value}" if hue else None)
        ax.set_xlabel(x)
        ax.set_title(metric)
        if hue:
            ax.legend(fontsize=7)
    figure.tight_layout()
    return figure
