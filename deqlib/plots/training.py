"""The training experiment's figure: each arm's paired difference to CE on the rare samples.

The summary is :func:`deqlib.experiment.summarize`'s table; :func:`deqlib.experiment.write_outputs`
saves the figure as ``training_gfl_results.png`` (notebook 07 and ``deq train-demo`` both call it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["plot_results", "plot_auc_sweep"]


def plot_results(summary: pd.DataFrame, path: str | Path | None = None, parameters: dict | None = None):
    """Paired difference to CE in accuracy on the rare samples (mean, 95% CI), per arm; one panel per
    setting and model."""
    import matplotlib.pyplot as plt

    part_all = summary[summary.metric == "accuracy_rare"]
    panels = list(dict.fromkeys(zip(part_all.setting, part_all.model)))
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 5), squeeze=False, sharey=True)
    titles = {"long_tail": "rare classes", "rare_condition": "rare condition"}
    arm_names = list(dict.fromkeys(part_all.arm))  # one row per arm in every panel (shared y axis)
    for ax, (setting, model) in zip(axes[0], panels):
        part = part_all[(part_all.setting == setting) & (part_all.model == model)]
        position = np.array([arm_names.index(arm) for arm in part.arm])
        low = (part.diff_vs_ce - part.ci_low).fillna(0).to_numpy()
        high = (part.ci_high - part.diff_vs_ce).fillna(0).to_numpy()
        ax.errorbar(100 * part.diff_vs_ce, position, xerr=100 * np.vstack([low, high]), fmt="o", capsize=3)
        ax.axvline(0, color="#888888", lw=1)
        ax.set_yticks(np.arange(len(arm_names)), arm_names)
        ax.set_title(f"{titles.get(setting, setting)}, {model}", fontsize=10)
        ax.set_xlabel("rare-sample accuracy minus CE (points)")
    axes[0][0].invert_yaxis()
    figure.tight_layout()
    if path is not None:
        from deqlib.plots.png import save_figure

        save_figure(figure, path, parameters or {})
    return figure


def plot_auc_sweep(sweep: pd.DataFrame, path: str | Path | None = None, parameters: dict | None = None):
    """The gain over CE on the rare samples (mean, bootstrap 95% interval) against the measured signal AUC of
    the AUC sweep (:func:`deqlib.experiment.auc_sweep`); one line per setting and model."""
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(6.5, 4.5))
    for (setting, model), part in sweep.groupby(["setting", "model"], sort=False):
        part = part.sort_values("signal_auc")
        low = (part.diff_vs_ce - part.ci_low).fillna(0).to_numpy()
        high = (part.ci_high - part.diff_vs_ce).fillna(0).to_numpy()
        ax.errorbar(part.signal_auc, 100 * part.diff_vs_ce, yerr=100 * np.vstack([low, high]), marker="o",
                    capsize=3, label=f"{setting}, {model}")
    ax.axhline(0, color="#888888", lw=1)
    ax.set_xlabel("signal ROC AUC on the training pool (measured)")
    ax.set_ylabel("rare-sample accuracy minus CE (points)")
    ax.legend(fontsize=8)
    figure.tight_layout()
    if path is not None:
        from deqlib.plots.png import save_figure

        save_figure(figure, path, parameters or {})
    return figure
