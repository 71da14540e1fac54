"""Statistics, fixed before the run: each arm's paired difference to CE over the seeds on three endpoints
(rare-sample accuracy, accuracy on the others, balanced accuracy), with a paired bootstrap interval and a
sign-flip permutation p-value, Holm-corrected over every comparison of an endpoint; the signals' quality.

Why not Student t: with few rare test images per seed the differences are zero-heavy and skewed (CE gets
no rare image right on most seeds of an under-trained CNN), so a t interval's normal approximation is
unreliable. The bootstrap percentile interval and the sign-flip test assume only that the paired
differences are exchangeable in sign under "no effect"."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["ENDPOINTS", "bootstrap_interval", "sign_flip_pvalue", "holm", "paired_differences", "summarize",
           "summarize_ranking", "auc_sweep", "cost_table"]

#: The endpoints, fixed before the run.
ENDPOINTS = ("accuracy_rare", "accuracy_common", "balanced_accuracy")
N_BOOTSTRAP = 5_000
EXACT_SIGN_FLIPS = 12       # up to this many seeds the sign-flip test enumerates all 2^n flips
N_SIGN_FLIPS = 20_000


def bootstrap_interval(differences: Sequence[float], confidence: float = 0.95, n_resamples: int = N_BOOTSTRAP,
                       seed: int = 0) -> tuple[float, float, float]:
    """Mean of paired differences and its paired bootstrap percentile interval ``(mean, low, high)``.

    The seeds are resampled with replacement ``n_resamples`` times (seeded); the interval is the
    ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of the resampled means. NaN bounds
    for fewer than 2 differences.
    """
    d = np.asarray(differences, dtype=float)
    if len(d) < 2:
        return (float(d.mean()) if len(d) else np.nan), np.nan, np.nan
    picks = np.random.default_rng(seed).integers(0, len(d), size=(n_resamples, len(d)))
    means = d[picks].mean(axis=1)
    low, high = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(d.mean()), float(low), float(high)


def sign_flip_pvalue(differences: Sequence[float], n_flips: int = N_SIGN_FLIPS, seed: int = 0) -> float:
    """Two-sided sign-flip permutation p-value of "the mean paired difference is 0".

    Under the null each difference is as likely positive as negative; the p-value is the share of sign
    assignments whose ``|mean|`` reaches the observed one. Exact (all ``2^n``) up to 12 differences, else
    ``n_flips`` random assignments (with the observed one counted, so never 0). All zeros give 1.
    """
    d = np.asarray(differences, dtype=float)
    if len(d) == 0:
        return np.nan
    observed = abs(d.mean())
    if len(d) <= EXACT_SIGN_FLIPS:
        signs = 1 - 2 * ((np.arange(2 ** len(d))[:, None] >> np.arange(len(d))) & 1)
        return float((np.abs((signs * d).mean(axis=1)) >= observed - 1e-12).mean())
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(n_flips, len(d)))
    hits = (np.abs((signs * d).mean(axis=1)) >= observed - 1e-12).sum()
    return float((hits + 1) / (n_flips + 1))


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN stays NaN and is not counted in the family)."""
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = len(valid)
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def paired_differences(runs: pd.DataFrame, metric: str = "accuracy_rare", baseline: str = "CE",
                       confidence: float = 0.95) -> pd.DataFrame:
    """Per setting, model and arm: mean ``metric``, the paired difference to ``baseline`` over the seeds both
    ran (mean, bootstrap interval, sign-flip p), and the arm's realised weight ratio, signal AUC and AP
    (means over seeds), epochs and how many runs hit the epoch cap."""
    rows = []
    optional = {c: c in runs.columns for c in ("signal_auc", "signal_ap", "hit_cap", "epochs", "max_over_min")}
    for (setting, model), part in runs.groupby(["setting", "model"], sort=False):
        base = part[part.arm == baseline].set_index("seed")[metric]
        for arm, arm_rows in part.groupby("arm", sort=False):
            values = arm_rows.set_index("seed")[metric]
            seeds = values.index.intersection(base.index)
            d = (values.loc[seeds] - base.loc[seeds]).to_numpy()
            mean, low, high = bootstrap_interval(d, confidence)
            row = {"setting": setting, "model": model, "arm": arm, "metric": metric, "n_seeds": len(values),
                   "mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else np.nan,
                   "diff_vs_ce": mean, "ci_low": low, "ci_high": high,
                   "p_value": sign_flip_pvalue(d) if arm != baseline and len(d) else np.nan,
                   "weight_ratio": float(arm_rows.weight_ratio.mean())}
            for column in ("signal_auc", "signal_ap", "max_over_min"):
                row[column] = float(arm_rows[column].mean()) if optional[column] else np.nan
            row["hit_cap"] = int(arm_rows.hit_cap.astype(bool).sum()) if optional["hit_cap"] else np.nan
            row["epochs_max"] = int(arm_rows.epochs.max()) if optional["epochs"] else np.nan
            rows.append(row)
    return pd.DataFrame(rows)


def _family(table: pd.DataFrame) -> pd.Series:
    # one Holm family per endpoint and cell (setting x model); the AUC sweep's arms form their own family
    sweep = table.arm.str.startswith("sweep AUC ")
    return table.metric + "|" + table.setting + "|" + table.model + "|" + np.where(sweep, "sweep", "design")


def summarize(runs: pd.DataFrame, confidence: float = 0.95, metrics: Sequence[str] = ENDPOINTS) -> pd.DataFrame:
    """The results table: :func:`paired_differences` for every endpoint, with Holm's correction.

    One Holm family per endpoint and cell (setting x model): every comparison to CE of the design's arms
    there (the AUC sweep's arms are a family of their own). Adds ``p_holm``, ``holm_significant``
    (``p_holm < 1 - confidence``) and a Holm interval (``holm_low``, ``holm_high``): the bootstrap interval
    at the level of the comparison's Holm step, ``1 - alpha / (m - rank + 1)`` for the ``rank``-th smallest
    p-value of a family of ``m``.

    The sign-flip p-value cannot go below ``2 / 2^n`` with ``n`` seeds (0.002 at 10 seeds), so a family of
    ``m`` comparisons can reject only if ``m < alpha * 2^(n-1)``: about 25 at 10 seeds, over 26,000 at 20.
    """
    alpha = 1 - confidence
    tables = []
    by_cell = {key: part for key, part in runs.groupby(["setting", "model"], sort=False)}
    for metric in metrics:
        if metric not in runs.columns:
            continue
        table = paired_differences(runs, metric, confidence=confidence)
        table["p_holm"], table["holm_low"], table["holm_high"] = np.nan, np.nan, np.nan
        for _, members in table.groupby(_family(table), sort=False):
            index = members.index.to_numpy()
            table.loc[index, "p_holm"] = holm(members.p_value.to_numpy())
            valid = index[~members.p_value.isna().to_numpy()]
            order = valid[np.argsort(table.loc[valid, "p_value"].to_numpy(), kind="stable")]
            for rank, i in enumerate(order):
                row = table.loc[i]
                part = by_cell[(row.setting, row.model)]
                base = part[part.arm == "CE"].set_index("seed")[metric]
                values = part[part.arm == row.arm].set_index("seed")[metric]
                seeds = values.index.intersection(base.index)
                _, low, high = bootstrap_interval((values.loc[seeds] - base.loc[seeds]).to_numpy(),
                                                  1 - alpha / (len(order) - rank))
                table.loc[i, ["holm_low", "holm_high"]] = low, high
        table["holm_significant"] = table.p_holm < alpha
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def summarize_ranking(ranking: pd.DataFrame) -> pd.DataFrame:
    """Signal quality per setting: mean (and min, max) over seeds of the ROC AUC, mean AP and mean likelihoods."""
    aggregations = dict(roc_auc=("roc_auc", "mean"), roc_auc_min=("roc_auc", "min"), roc_auc_max=("roc_auc", "max"),
                        mean_likelihood_rare=("mean_likelihood_rare", "mean"),
                        mean_likelihood_rest=("mean_likelihood_rest", "mean"), n_seeds=("seed", "nunique"))
    if "average_precision" in ranking.columns:
        aggregations.update(average_precision=("average_precision", "mean"), prevalence=("prevalence", "mean"))
    return ranking.groupby(["setting", "signal"], sort=False).agg(**aggregations).reset_index()


def auc_sweep(summary: pd.DataFrame, metric: str = "accuracy_rare") -> pd.DataFrame:
    """The AUC sweep's gain curve: per setting and model, each sweep level's measured signal AUC, paired gain
    over CE with its interval, and realised weight ratio, ordered by AUC (empty if the run had no sweep)."""
    part = summary[(summary.metric == metric) & summary.arm.str.startswith("sweep AUC ")]
    columns = ["setting", "model", "arm", "signal_auc", "diff_vs_ce", "ci_low", "ci_high", "p_holm", "weight_ratio",
               "n_seeds"]
    part = part.assign(target_auc=part.arm.str.removeprefix("sweep AUC ").astype(float))
    return part[["target_auc", *columns]].sort_values(["setting", "model", "target_auc"]).reset_index(drop=True)


def cost_table(runs: pd.DataFrame, info: pd.DataFrame | None = None) -> pd.DataFrame:
    """CPU seconds per cell (setting x model x arm): mean per seed and total, plus one row per setting for the
    signals (``arm`` = ``"(signals)"``, from ``info``). CPU seconds do not depend on the machine's load; their
    sum over the cores is the idle-machine wall time estimate."""
    if "cpu_seconds" not in runs.columns:
        return pd.DataFrame()
    table = runs.groupby(["setting", "model", "arm"], sort=False).agg(
        n_seeds=("seed", "nunique"), cpu_seconds_per_seed=("cpu_seconds", "mean"),
        cpu_seconds=("cpu_seconds", "sum")).reset_index()
    if info is not None and len(info) and "signal_cpu_seconds" in info.columns:
        signals = info.groupby("setting", sort=False).agg(n_seeds=("seed", "nunique"),
                                                          cpu_seconds_per_seed=("signal_cpu_seconds", "mean"),
                                                          cpu_seconds=("signal_cpu_seconds", "sum")).reset_index()
        signals.insert(1, "model", "")
        signals.insert(2, "arm", "(signals)")
        table = pd.concat([table, signals], ignore_index=True)
    return table
