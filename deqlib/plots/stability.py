"""Figures of a stability report (:class:`deqlib.stability.StabilityResult`).

* :func:`mean_vs_spread`: per sample, the likelihood's mean over the K runs against its
  standard deviation (a point high up is a sample whose rarity one run cannot be trusted on);
* :func:`agreement_matrix`: per pair of runs, Spearman of the likelihoods (upper triangle) and
  ARI of the partitions (lower triangle).

Both return matplotlib figures; save them with :func:`deqlib.plots.png.save_figure`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["mean_vs_spread", "agreement_matrix"]


def mean_vs_spread(per_sample: pd.DataFrame, title: str | None = None, max_points: int = 20_000, seed: int = 0):
    """Scatter of ``likelihood_mean`` (x) against ``likelihood_std`` (y), coloured by rank spread.

    More than ``max_points`` samples are drawn as a random subset of that size (stated in the title).
    """
    import matplotlib.pyplot as plt

    needed = ("likelihood_mean", "likelihood_std", "likelihood_rank_spread")
    missing = [c for c in needed if c not in per_sample.columns]
    if missing:
        raise ValueError(f"per_sample is missing column(s) {missing}: pass StabilityResult.per_sample")
    shown = per_sample
    if len(per_sample) > max_points:
        rows = np.sort(np.random.default_rng(seed).choice(len(per_sample), max_points, replace=False))
        shown = per_sample.iloc[rows]
    figure, axes = plt.subplots(figsize=(6.5, 4.5))
    points = axes.scatter(shown["likelihood_mean"], shown["likelihood_std"], c=shown["likelihood_rank_spread"],
                          s=4, cmap="viridis", vmin=0, vmax=1, alpha=0.6, linewidths=0)
    figure.colorbar(points, ax=axes, label="rank spread over the runs")
    axes.set_xlabel("likelihood, mean over the runs")
    axes.set_ylabel("likelihood, standard deviation")
    axes.set_xlim(0, 1.02)
    axes.set_ylim(bottom=0)
    subset = f" ({len(shown)} of {len(per_sample)} shown)" if len(shown) < len(per_sample) else ""
    axes.set_title(title or f"Per-sample likelihood: mean vs spread{subset}")
    figure.tight_layout()
    return figure


def agreement_matrix(pairs: pd.DataFrame, title: str | None = None):
    """K x K matrix: Spearman of likelihoods above the diagonal, ARI of partitions below."""
    import matplotlib.pyplot as plt

    missing = [c for c in ("run_a", "run_b", "ari", "spearman") if c not in pairs.columns]
    if missing:
        raise ValueError(f"pairs is missing column(s) {missing}: pass StabilityResult.pairs")
    k = int(max(pairs["run_a"].max(), pairs["run_b"].max())) + 1 if len(pairs) else 1
    matrix = np.eye(k)
    for row in pairs.itertuples(index=False):
        matrix[row.run_a, row.run_b] = row.spearman
        matrix[row.run_b, row.run_a] = row.ari
    figure, axes = plt.subplots(figsize=(1.0 + 0.6 * k, 0.8 + 0.6 * k))
    image = axes.imshow(matrix, vmin=min(0.0, float(matrix.min())), vmax=1, cmap="RdYlGn")
    for i in range(k):
        for j in range(k):
            if i != j:
                axes.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7)
    axes.set_xticks(range(k))
    axes.set_yticks(range(k))
    axes.set_xlabel("run")
    axes.set_ylabel("run")
    figure.colorbar(image, ax=axes, fraction=0.046)
    axes.set_title(title or "Run agreement: Spearman (upper), ARI (lower)", fontsize=9)
    figure.tight_layout()
    return figure
