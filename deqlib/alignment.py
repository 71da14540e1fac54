"""How clusters line up with what the metadata knows: classes, weather, time of day, ...

For each attribute (a metadata column with a few distinct values): NMI and ARI between the
cluster labels and the attribute, the clusters' purity with respect to it, and the mean
likelihood per attribute value (are night images rarer than day images?).

Noise (label ``-1``) is counted as one group by default (``noise="as_cluster"``): excluding it
would let a clustering that leaves every hard sample unlabelled score perfectly, and giving
each noise sample its own cluster inflates NMI and purity (a singleton is always pure).
``noise="exclude"`` scores only the clustered samples and reports the coverage.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["NOISE_MODES", "alignment_scores", "purity", "likelihood_by_attribute", "attribute_columns",
           "align"]

NOISE_MODES = ("as_cluster", "exclude")
_NOT_ATTRIBUTES = {"sample_id", "location", "x", "y", "z", "cluster_id", "cluster_size", "largest_cluster_size",
                   "likelihood", "outlier_score", "weight", "index", "raw_cluster_id", "is_noise"}


def _as_arrays(labels, values) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    values = np.asarray(values, dtype=object)
    if labels.ndim != 1 or labels.shape != values.shape:
        raise ValueError(f"labels and values must be 1-D and of equal length, got {labels.shape} and {values.shape}")
    if labels.size == 0:
        raise ValueError("no samples to compare")
    return labels.astype(np.int64), values


def purity(labels, values) -> float:
    """Share of samples whose attribute value is their cluster's most common one."""
    labels, values = _as_arrays(labels, values)
    table = pd.crosstab(labels, pd.Series(values).astype(str).to_numpy())
    return float(table.max(axis=1).sum() / labels.size)


def alignment_scores(labels, values, noise: str = "as_cluster") -> dict:
    """NMI, ARI and purity of cluster ``labels`` against attribute ``values``.

    Returns a dict with ``nmi``, ``ari``, ``purity``, ``coverage`` (share of samples scored),
    ``n_values`` and ``n_clusters``. Missing attribute values (None/NaN) are left out.
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    if noise not in NOISE_MODES:
        raise ValueError(f"noise must be one of {NOISE_MODES}, got {noise!r}")
    labels, values = _as_arrays(labels, values)
    keep = ~pd.isna(values)
    if noise == "exclude":
        keep &= labels >= 0
    if not keep.any():
        raise ValueError("no sample has both a cluster and an attribute value to compare")
    kept_labels = labels[keep]
    kept_values = pd.Series(values[keep]).astype(str).to_numpy()
    return {
        "nmi": float(normalized_mutual_info_score(kept_values, kept_labels)),
        "ari": float(adjusted_rand_score(kept_values, kept_labels)),
        "purity": purity(kept_labels, kept_values),
        "coverage": float(keep.mean()),
        "n_values": int(np.unique(kept_values).size),
        "n_clusters": int(np.unique(kept_labels[kept_labels >= 0]).size),
    }


def likelihood_by_attribute(likelihood, values) -> pd.DataFrame:
    """Per attribute value: count, share of the data, mean and median likelihood.

    Sorted by mean likelihood, rarest first.
    """
    likelihood = np.asarray(likelihood, dtype=np.float64)
    values = np.asarray(values, dtype=object)
    if likelihood.shape != values.shape:
        raise ValueError(f"likelihood and values must have equal length, got {likelihood.shape} and {values.shape}")
    frame = pd.DataFrame({"value": pd.Series(values).astype(str), "likelihood": likelihood})
    frame = frame[~pd.isna(values)]
    table = frame.groupby("value")["likelihood"].agg(n="size", mean_likelihood="mean", median_likelihood="median")
    table["fraction"] = table["n"] / table["n"].sum()
    return table.sort_values("mean_likelihood").reset_index()[["value", "n", "fraction", "mean_likelihood",
                                                                "median_likelihood"]]


def attribute_columns(samples: pd.DataFrame, max_values: int = 1000) -> list[str]:
    """Metadata columns that look like attributes: 2 to ``max_values`` distinct values,
    not a per-sample identifier, coordinate or result column, and not a continuous float."""
    columns = []
    for name in samples.columns:
        if name in _NOT_ATTRIBUTES:
            continue
        column = samples[name]
        n_unique = column.nunique(dropna=True)
        if not 2 <= n_unique <= min(max_values, len(samples) - 1):
            continue
        if pd.api.types.is_float_dtype(column) and not np.allclose(column.dropna(), column.dropna().round()):
            continue
        columns.append(name)
    return columns


def align(samples: pd.DataFrame, attributes: list[str] | None = None, noise: str = "as_cluster",
          label_column: str = "raw_cluster_id") -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Alignment of every attribute of a per-sample table with its clusters.

    Parameters
    ----------
    samples : DataFrame
        Needs the cluster labels (``label_column``, falling back to ``cluster_id``), ``likelihood``
        and the attribute columns (e.g. :attr:`deqlib.pipeline.AnalysisResult.samples`).
    attributes : list of str, optional
        Default: :func:`attribute_columns`.

    Returns
    -------
    scores : DataFrame
        One row per attribute: ``attribute, nmi, ari, purity, coverage, n_values, n_clusters``.
    by_value : dict of DataFrame
        :func:`likelihood_by_attribute` per attribute.
    """
    column = label_column if label_column in samples.columns else "cluster_id"
    attributes = attribute_columns(samples) if attributes is None else list(attributes)
    missing = [a for a in attributes if a not in samples.columns]
    if missing:
        raise ValueError(f"attribute column(s) {missing} not in the table; have {list(samples.columns)}")
    rows, by_value = [], {}
    for name in attributes:
        rows.append({"attribute": name, **alignment_scores(samples[column], samples[name], noise=noise)})
        by_value[name] = likelihood_by_attribute(samples["likelihood"], samples[name])
    columns = ["attribute", "nmi", "ari", "purity", "coverage", "n_values", "n_clusters"]
    return pd.DataFrame(rows, columns=columns), by_value
