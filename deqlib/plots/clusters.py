"""Plots of one analysis: the 3-D t-SNE clusters, Figure 2's likelihood bars, weights, galleries, GIF.

Every function takes the per-sample DataFrame of :class:`deqlib.pipeline.AnalysisResult`
(``samples``: ``sample_id, x, y, z, cluster_id, cluster_size, likelihood, weight`` and metadata
columns) and returns a figure; :func:`deqlib.plots.png.save_figure` writes it atomically with a
caption holding the parameters and the deqlib version.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from deqlib._atomic import atomic_path
from deqlib.plots.png import save_figure  # noqa: F401  (public here too: notebooks and scripts import it)

__all__ = [
    "cluster_scatter_3d",
    "cluster_scatter_png",
    "likelihood_per_cluster",
    "likelihood_histogram",
    "sample_gallery",
    "weight_distribution",
    "gallery_clusters",
    "cluster_gallery",
    "rotating_gif",
    "save_figure",
]

_REQUIRED = ("x", "y", "z", "cluster_id", "cluster_size", "likelihood")
_HOVER_FIELDS = ("sample_id", "cluster_id", "cluster_size", "likelihood", "weight")


def _check_samples(samples: pd.DataFrame, columns: Sequence[str] = _REQUIRED) -> None:
    missing = [c for c in columns if c not in samples.columns]
    if missing:
        raise ValueError(f"samples is missing column(s) {missing}: pass AnalysisResult.samples")


def _cluster_colors(cluster_ids: np.ndarray) -> np.ndarray:
    """A categorical colour per cluster id (noise grey), stable across plots."""
    import matplotlib

    palette = matplotlib.colormaps["tab20"].colors
    colors = np.array([palette[int(c) % len(palette)] for c in cluster_ids], dtype=float)
    colors[cluster_ids < 0] = (0.75, 0.75, 0.75)
    return colors


def _hex(rgb) -> str:
    return "#%02x%02x%02x" % tuple(int(round(v * 255)) for v in rgb[:3])


def cluster_scatter_3d(samples: pd.DataFrame, color_options: Sequence[str] | None = None,
                       marker_size: float = 2.0, title: str | None = None):
    """Interactive 3-D t-SNE scatter (plotly), coloured by cluster, with a colour toggle.

    One trace holds every point (fast at 100k points and with thousands of clusters); the
    buttons recolour it by ``cluster_id`` or by each column of ``color_options`` (default:
    ``likelihood``, ``weight`` and metadata columns with few values). Hover shows sample id,
    cluster, cluster size, likelihood and weight.
    """
    import plotly.graph_objects as go

    _check_samples(samples)
    if color_options is None:
        color_options = [c for c in ("likelihood", "weight", "outlier_score") if c in samples.columns]
        color_options += [c for c in samples.columns
                          if c not in _REQUIRED + _HOVER_FIELDS + ("location", "raw_cluster_id", "is_noise",
                                                                     "largest_cluster_size", "outlier_score")
                          and samples[c].nunique() <= 50]
    color_options = _distinct_colourings(samples, color_options)
    hover_fields = [f for f in _HOVER_FIELDS if f in samples.columns]
    customdata = samples[hover_fields].to_numpy()
    # Floats rounded to 4 significant digits in the hover label (not 16-digit reprs).
    template = "<br>".join(
        f"{f}: %{{customdata[{i}]{':.4g' if pd.api.types.is_float_dtype(samples[f]) else ''}}}"
        for i, f in enumerate(hover_fields)) + "<extra></extra>"
    cluster_ids = samples["cluster_id"].to_numpy()
    cluster_marker = dict(size=marker_size, color=_saturated_cluster_colors(cluster_ids))
    figure = go.Figure(go.Scatter3d(
        x=samples["x"], y=samples["y"], z=samples["z"], mode="markers", marker=cluster_marker,
        customdata=customdata, hovertemplate=template, name="samples"))
    buttons = [dict(label="cluster", method="restyle", args=[{"marker": [cluster_marker]}])]
    for column in color_options:
        values = samples[column]
        if pd.api.types.is_numeric_dtype(values):
            marker = dict(size=marker_size, color=values.to_numpy(), colorscale="Viridis", showscale=True,
                          colorbar=dict(title=column))
        else:
            codes = pd.Categorical(values).codes
            marker = dict(size=marker_size, color=_saturated_cluster_colors(codes))
        buttons.append(dict(label=column, method="restyle", args=[{"marker": [marker]}]))
    n_clusters = int((np.unique(cluster_ids) >= 0).sum())
    # Title on its own line at the top, the colour buttons on the line below it: neither hides the other.
    figure.update_layout(
        title=dict(text=title or f"3-D t-SNE, {n_clusters} clusters (grey: noise)", y=0.98, yanchor="top"),
        updatemenus=[dict(type="buttons", direction="right", buttons=buttons, x=0, y=1.0, xanchor="left",
                          yanchor="bottom", pad=dict(t=0, b=4))],
        scene=dict(xaxis_title="t-SNE 1", yaxis_title="t-SNE 2", zaxis_title="t-SNE 3"),
        margin=dict(l=0, r=0, t=95, b=0), height=680)
    return figure


def _saturated_cluster_colors(cluster_ids: np.ndarray) -> list[str]:
    """Hex colours for the interactive figure: the explorer's palette (hundreds of distinct, saturated
    colours, :func:`deqlib.plots.explorer.cluster_palette`), grey only for noise (``-1``)."""
    from deqlib.plots.explorer import NOISE_COLOR, cluster_palette

    ids = np.asarray(cluster_ids)
    real = np.unique(ids[ids >= 0])
    palette = cluster_palette(len(real))
    rank = {int(c): i for i, c in enumerate(real)}
    return ["#%02x%02x%02x" % (tuple(NOISE_COLOR) if c < 0 else tuple(palette[rank[int(c)]])) for c in ids]


def _distinct_colourings(samples: pd.DataFrame, options: Sequence[str]) -> list[str]:
    """``options`` without repeats, without the cluster id (its own button) and without a column that
    colours the points exactly like an earlier one (Fashion-MNIST's ``label`` and ``class_name``)."""
    kept, partitions = [], []
    for column in dict.fromkeys(options):
        if column in ("cluster_id", "cluster") or column not in samples.columns:
            continue
        values = samples[column]
        if not pd.api.types.is_float_dtype(values):
            partition = tuple(pd.factorize(values)[0])
            if partition in partitions:
                continue
            partitions.append(partition)
        kept.append(column)
    return kept


def _axes_3d(samples: pd.DataFrame, elevation: float = 20, azimuth: float = 35, size=(7, 6)):
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=size)
    axes = figure.add_subplot(projection="3d")
    cluster_ids = samples["cluster_id"].to_numpy()
    order = np.argsort(cluster_ids >= 0)  # noise first, so clusters are drawn on top
    axes.scatter(samples["x"].to_numpy()[order], samples["y"].to_numpy()[order], samples["z"].to_numpy()[order],
                 c=_cluster_colors(cluster_ids[order]), s=2, depthshade=False, linewidths=0)
    axes.view_init(elev=elevation, azim=azimuth)
    axes.set_xlabel("t-SNE 1")
    axes.set_ylabel("t-SNE 2")
    axes.set_zlabel("t-SNE 3")
    return figure, axes


def cluster_scatter_png(samples: pd.DataFrame, title: str | None = None):
    """Static 3-D scatter of the clusters (matplotlib), for figures/ and the README."""
    _check_samples(samples)
    figure, axes = _axes_3d(samples)
    n_clusters = int((samples["cluster_id"].unique() >= 0).sum())
    axes.set_title(title or f"3-D t-SNE: {n_clusters} clusters, noise grey ({len(samples)} samples)")
    return figure


def likelihood_per_cluster(samples: pd.DataFrame, title: str | None = None, max_bars: int = 2000):
    """Figure 2 of the paper: the scaled likelihood of each cluster, sorted, one bar per cluster.

    Noise samples are summarised as one hatched bar at their (policy-dependent) likelihood.
    """
    import matplotlib.pyplot as plt

    _check_samples(samples, ("cluster_id", "likelihood"))
    clusters = _cluster_likelihood(samples).sort_values(ascending=False)
    per_sample = _varies_within_clusters(samples)
    shown = clusters.iloc[:max_bars]
    figure, axes = plt.subplots(figsize=(9, 4))
    axes.bar(np.arange(len(shown)), shown.to_numpy(), color="#1b9e77", width=0.85)
    noise = samples.loc[samples["cluster_id"] < 0, "likelihood"]
    if len(noise):
        axes.bar([len(shown) + 0.5], [noise.mean()], color="#bbbbbb", hatch="//", width=0.85,
                 label=f"noise: {len(noise)} samples, mean likelihood {noise.mean():.3g}")
        axes.legend(loc="upper right")
    step = max(1, len(shown) // 20)
    axes.set_xticks(np.arange(0, len(shown), step), [str(c) for c in shown.index[::step]], rotation=90, fontsize=7)
    axes.set_xlabel("cluster id (sorted by likelihood)")
    axes.set_ylabel("mean likelihood of the cluster's samples" if per_sample else "scaled likelihood |C_i| / max |C_j|")
    axes.set_ylim(0, 1.05)
    axes.set_title(title or (f"Mean likelihood per cluster ({len(clusters)} clusters; a per-sample signal)" if per_sample
                             else f"Scaled likelihood per cluster ({len(clusters)} clusters)"))
    figure.tight_layout()
    return figure


def _varies_within_clusters(samples: pd.DataFrame) -> bool:
    """Whether the likelihood is per sample (a signal other than eq. 3) rather than one value per cluster."""
    members = samples[samples["cluster_id"] >= 0]
    return bool(len(members)) and bool((members.groupby("cluster_id")["likelihood"].nunique() > 1).any())


def _cluster_likelihood(samples: pd.DataFrame) -> pd.Series:
    """Each cluster's likelihood: eq. 3's one value, or the mean over its samples for a per-sample signal."""
    members = samples[samples["cluster_id"] >= 0].groupby("cluster_id")["likelihood"]
    return members.mean() if _varies_within_clusters(samples) else members.first()


def likelihood_histogram(samples: pd.DataFrame, bins: int = 50, title: str | None = None):
    """Histogram of the per-sample likelihoods (log count), with the share below 0.1 and the median."""
    import matplotlib.pyplot as plt

    _check_samples(samples, ("likelihood",))
    values = samples["likelihood"].to_numpy(dtype=float)
    figure, axes = plt.subplots(figsize=(7, 3.6))
    axes.hist(values, bins=bins, range=(0.0, 1.0), color="#7570b3")
    axes.set_yscale("log")
    axes.set_xlabel("likelihood (1 = most common)")
    axes.set_ylabel("samples (log)")
    axes.set_title(title or f"Likelihood of {len(values):,} samples: median {np.median(values):.3g}, "
                   f"{(values < 0.1).mean():.1%} below 0.1, {np.unique(values).size:,} distinct values")
    figure.tight_layout()
    return figure


def sample_gallery(samples: pd.DataFrame, source, which: str = "rarest", n_images: int = 40, columns: int = 10):
    """Image grid of the ``n_images`` samples with the lowest (``'rarest'``) or highest (``'common'``) likelihood.

    Ties are broken by sample id, so the choice is deterministic; each image's title is its likelihood.
    """
    import matplotlib.pyplot as plt

    if which not in ("rarest", "common"):
        raise ValueError(f"which must be 'rarest' or 'common', got {which!r}")
    _check_samples(samples, ("sample_id", "likelihood"))
    ordered = samples.sort_values(["likelihood", "sample_id"], ascending=[which == "rarest", True]).head(n_images)
    position = {sid: i for i, sid in enumerate(source.sample_ids)}
    rows = max(1, -(-len(ordered) // columns))
    figure, grid = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * 1.3), squeeze=False)
    for axes in grid.ravel():
        axes.axis("off")
    for axes, (_, row) in zip(grid.ravel(), ordered.iterrows()):
        axes.imshow(source.load(position[row["sample_id"]]))
        axes.set_title(f"{row['likelihood']:.3g}", fontsize=7)
    label = "lowest" if which == "rarest" else "highest"
    figure.suptitle(f"The {len(ordered)} samples with the {label} likelihood (of {len(samples):,})")
    figure.tight_layout()
    return figure


def weight_distribution(samples: pd.DataFrame, eta: float, gamma: float, bins: int = 40):
    """Histogram of the per-sample weights ``W(p, eta, gamma)`` (column ``weight``)."""
    import matplotlib.pyplot as plt

    _check_samples(samples, ("weight",))
    weights = samples["weight"].to_numpy()
    figure, axes = plt.subplots(figsize=(7, 4))
    axes.hist(weights, bins=np.linspace(eta / (eta + 1), 1.0, bins + 1), color="#d95f02")
    axes.set_yscale("log")
    axes.set_xlabel(f"weight W(p, eta={eta:g}, gamma={gamma:g})")
    axes.set_ylabel("samples (log scale)")
    axes.set_title(f"Per-sample weights: mean {weights.mean():.3f}, "
                   f"{(weights > (1 + eta / (eta + 1)) / 2).mean():.1%} above the midpoint")
    figure.tight_layout()
    return figure


def gallery_clusters(samples: pd.DataFrame, which: str = "rarest", n_clusters: int = 6) -> list[int]:
    """Ids of the ``n_clusters`` rarest (smallest) or most common (largest) clusters, noise excluded.

    ``which='least_stable'`` picks the clusters whose members' likelihood varies most over the runs
    (mean ``likelihood_std``, a column of consensus banks, :mod:`deqlib.stability`).
    """
    if which not in ("rarest", "common", "least_stable"):
        raise ValueError(f"which must be 'rarest', 'common' or 'least_stable', got {which!r}")
    if which == "least_stable":
        if "likelihood_std" not in samples.columns:
            raise ValueError("which='least_stable' needs a likelihood_std column: use a consensus bank's table "
                             "(deq stability, deqlib.stability.consensus_bank)")
        spread = samples[samples["cluster_id"] >= 0].groupby("cluster_id")["likelihood_std"].mean().reset_index()
        ordered = spread.sort_values(["likelihood_std", "cluster_id"], ascending=[False, True])
        return ordered["cluster_id"].head(n_clusters).astype(int).tolist()
    sizes = samples[samples["cluster_id"] >= 0].groupby("cluster_id")["cluster_size"].first()
    # Ties broken by cluster id so the choice is deterministic.
    ordered = sizes.reset_index().sort_values(["cluster_size", "cluster_id"], ascending=[which == "rarest", True])
    return ordered["cluster_id"].head(n_clusters).astype(int).tolist()


def cluster_gallery(samples: pd.DataFrame, source, which: str = "rarest", n_clusters: int = 6,
                    per_cluster: int = 8, seed: int = 0):
    """Image grid: one row per cluster (rarest or most common), ``per_cluster`` images each.

    Images are read through ``source`` (an :class:`deqlib.sources.ImageSource`) by sample id;
    row titles give the cluster's size and likelihood.
    """
    import matplotlib.pyplot as plt

    _check_samples(samples, ("sample_id", "cluster_id", "cluster_size", "likelihood"))
    clusters = gallery_clusters(samples, which, n_clusters)
    if not clusters:  # a degenerate clustering is reported in the figure, not raised mid-notebook
        figure, axes = plt.subplots(figsize=(8, 1.5))
        axes.axis("off")
        axes.text(0.5, 0.5, f"No clusters to show: all {len(samples)} samples are noise (degenerate clustering;\n"
                  "try a larger eps or a smaller min_samples / min_cluster_size).", ha="center", va="center")
        return figure
    position = {sid: i for i, sid in enumerate(source.sample_ids)}
    rng = np.random.default_rng(seed)
    figure, grid = plt.subplots(len(clusters), per_cluster, figsize=(per_cluster * 1.2, len(clusters) * 1.45),
                                squeeze=False)
    for row, cluster_id in enumerate(clusters):
        members = samples[samples["cluster_id"] == cluster_id]
        chosen = members.iloc[np.sort(rng.choice(len(members), size=min(per_cluster, len(members)), replace=False))]
        for col in range(per_cluster):
            axes = grid[row, col]
            axes.axis("off")
            if col < len(chosen):
                axes.imshow(source.load(position[chosen.iloc[col]["sample_id"]]))
        first = members.iloc[0]
        likelihood = (f"mean likelihood {members['likelihood'].mean():.3g}" if members["likelihood"].nunique() > 1
                      else f"likelihood {first['likelihood']:.3g}")
        grid[row, 0].set_title(f"cluster {cluster_id}: {int(first['cluster_size'])} samples, {likelihood}",
                               loc="left", fontsize=8)
    label = {"rarest": "rarest", "common": "most common", "least_stable": "least stable"}[which]
    figure.suptitle(f"The {len(clusters)} {label} clusters")
    figure.tight_layout()
    return figure


def rotating_gif(samples: pd.DataFrame, path: str | Path, frames: int = 36, fps: int = 12) -> Path:
    """A rotating 3-D view of the clusters as an animated GIF (one full turn in ``frames`` frames)."""
    import matplotlib.pyplot as plt
    from PIL import Image

    _check_samples(samples)
    if frames < 2:
        raise ValueError(f"frames must be >= 2, got {frames}")
    figure, axes = _axes_3d(samples, size=(5, 5))
    images = []
    for azimuth in np.linspace(0, 360, frames, endpoint=False):
        axes.view_init(elev=20, azim=azimuth)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=72)
        images.append(Image.open(buffer).convert("P", palette=Image.Palette.ADAPTIVE))
    plt.close(figure)
    path = Path(path)
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return path


