"""Cluster-label utilities shared by the clusterers, the K-run statistics and the faithfulness checks.

Labels are int64 cluster ids with ``-1`` for noise (and ``-2`` for "not in this run" in the
K-run matrices of :mod:`deqlib.consensus`). Pure numpy, no estimator: :mod:`deqlib.cluster`,
:mod:`deqlib.consensus` and :mod:`deqlib.faithfulness` all import it, so none of them needs
another's private helpers.
"""

from __future__ import annotations

import numpy as np

__all__ = ["relabel_by_size", "noise_as_singletons"]


def relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Cluster ids ordered by size (0 = largest, ties by first appearance); negative labels kept.

    Makes ids independent of the order DBSCAN/HDBSCAN happened to visit the points, so the same
    partition always gives the same bank.
    """
    labels = np.asarray(labels, dtype=np.int64)
    clustered = labels >= 0
    if not clustered.any():
        return labels.copy()
    ids, first, counts = np.unique(labels[clustered], return_index=True, return_counts=True)
    order = np.lexsort((first, -counts))
    mapping = np.empty(ids.max() + 1, dtype=np.int64)
    mapping[ids[order]] = np.arange(ids.size)
    out = labels.copy()
    out[clustered] = mapping[labels[clustered]]
    return out


def noise_as_singletons(labels: np.ndarray) -> np.ndarray:
    """The labels with every negative (noise) label replaced by a new id of its own, for partition
    scores (ARI) that should count each noise sample as its own group, not all noise as one."""
    out = np.array(labels, dtype=np.int64, copy=True)
    noise = out < 0
    out[noise] = out.max(initial=-1) + 1 + np.arange(noise.sum())
    return out
