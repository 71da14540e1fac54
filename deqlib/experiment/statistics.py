"""Statistics: each arm's paired difference to CE over the seeds, its confidence interval and the
smallest effect the comparison could detect; the signals' ranking quality."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["paired_interval", "minimum_detectable_effect", "paired_differences", "summarize", "summarize_ranking"]


def paired_interval(differences: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean of paired differences and its two-sided Student-t confidence interval ``(mean, low, high)``."""
    from scipy import stats

    d = np.asarray(differences, dtype=float)
    if len(d) < 2:
        return float(d.mean()) if len(d) else np.nan, np.nan, np.nan
    half = stats.t.ppf(0.5 + confidence / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half)


def minimum_detectable_effect(sd_difference: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest true mean paired difference a two-sided paired t-test at ``alpha`` detects with ``power``:
    ``(t_{1-alpha/2, n-1} + t_{power, n-1}) * sd / sqrt(n)``."""
    from scipy import stats

    if n < 2:
        return np.nan
    return float((stats.t.ppf(1 - alpha / 2, n - 1) + stats.t.ppf(power, n - 1)) * sd_difference / np.sqrt(n))


def paired_differences(runs: pd.DataFrame, metric: str = "accuracy_rare", baseline: str = "CE",
                       confidence: float = 0.95) -> pd.DataFrame:
    """Per setting, model and arm: mean ``metric``, the paired difference to ``baseline`` over the seeds
    both ran (mean, CI, n), the minimum detectable effect of that comparison, and the realised weight ratio."""
    rows = []
    for (setting, model), part in runs.groupby(["setting", "model"], sort=False):
        base = part[part.arm == baseline].set_index("seed")[metric]
        for arm, arm_rows in part.groupby("arm", sort=False):
            values = arm_rows.set_index("seed")[metric]
            seeds = values.index.intersection(base.index)
            d = (values.loc[seeds] - base.loc[seeds]).to_numpy()
            mean, low, high = paired_interval(d, confidence)
            sd = float(d.std(ddof=1)) if len(d) > 1 else np.nan
            rows.append({"setting": setting, "model": model, "arm": arm, "metric": metric, "n_seeds": len(values),
                         "mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else np.nan,
                         "diff_vs_ce": mean, "ci_low": low, "ci_high": high,
                         "mde": minimum_detectable_effect(sd, len(d)) if arm != baseline else np.nan,
                         "weight_ratio": float(arm_rows.weight_ratio.mean())})
    return pd.DataFrame(rows)


def summarize(runs: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """The results table: :func:`paired_differences` for the rare samples' accuracy and for balanced accuracy."""
    return pd.concat([paired_differences(runs, metric, confidence=confidence)
                      for metric in ("accuracy_rare", "balanced_accuracy")], ignore_index=True)


def summarize_ranking(ranking: pd.DataFrame) -> pd.DataFrame:
    """Signal quality per setting: mean (and min, max) over seeds of the AUC and mean likelihoods."""
    table = ranking.groupby(["setting", "signal"], sort=False).agg(
        roc_auc=("roc_auc", "mean"), roc_auc_min=("roc_auc", "min"), roc_auc_max=("roc_auc", "max"),
        mean_likelihood_rare=("mean_likelihood_rare", "mean"), mean_likelihood_rest=("mean_likelihood_rest", "mean"),
        n_seeds=("seed", "nunique"))
    return table.reset_index()
