"""Rarity signals: label-free likelihoods of the training samples (and the oracle's, from the rare flag)."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from deqlib.experiment.config import ExperimentConfig

__all__ = ["SignalContext", "SIGNALS", "signal_likelihood", "oracle_likelihood", "signal_ranking"]


class SignalContext:
    """What a signal may use: a :class:`deqlib.likelihood.RarityContext` computed lazily from the training
    embeddings, the config and the seed. The 3-D t-SNE (``coords``) and the HDBSCAN clustering
    (``labels``) are computed once, on first use, with the seed, so a signal that reads only
    ``embeddings`` (``knn-density``) never pays for them."""

    outlier_scores = None
    runs = None

    def __init__(self, train_X: np.ndarray, config: ExperimentConfig, seed: int):
        self.train_X, self.config, self.seed = train_X, config, seed

    @property
    def embeddings(self) -> np.ndarray:
        return self.train_X

    @functools.cached_property
    def coords(self) -> np.ndarray:
        from deqlib.reduce import OpenTSNEReducer

        return OpenTSNEReducer(random_state=self.seed, n_jobs=self.config.threads).fit_transform(self.train_X)

    @functools.cached_property
    def clustering(self):
        from deqlib.cluster import HDBSCANClusterer

        return HDBSCANClusterer(min_cluster_size=self.config.min_cluster_size).fit(self.coords).result_

    @property
    def labels(self) -> np.ndarray:
        return self.clustering.labels


#: label-free signal name (as in the arms and the committed results) -> (a ``deqlib.likelihood.RARITY_SIGNALS``
#: name, its parameters). Add a registered signal here and it gets a GFL(0.3, 5) arm.
SIGNALS: dict[str, tuple[str, dict]] = {
    "cluster_singleton": ("cluster", {"noise_policy": "singleton"}),
    "cluster_as_cluster": ("cluster", {"noise_policy": "as_cluster"}),
    "cluster_nearest": ("cluster", {"noise_policy": "nearest"}),
    "knn_density": ("knn-density", {"k": 10}),
}


def signal_likelihood(name: str, context) -> np.ndarray:
    """The likelihood per training sample of the label-free signal ``name`` (a :data:`SIGNALS` key)."""
    from deqlib.likelihood import RARITY_SIGNALS

    registered, params = SIGNALS[name]
    return RARITY_SIGNALS.create(registered, **params).fit(context).likelihood_


def oracle_likelihood(rare: np.ndarray) -> np.ndarray:
    """Likelihood from the true rare flag: each group's frequency over the larger group's (eq. 3 with
    two clusters, "rare" and "the rest"), so the common samples get 1 and the rare ones their relative size."""
    rare = np.asarray(rare, dtype=bool)
    counts = np.array([(~rare).sum(), rare.sum()], dtype=float)
    return (counts / counts.max())[rare.astype(int)]


def signal_ranking(signals: pd.DataFrame, rare: np.ndarray) -> pd.DataFrame:
    """How well each signal finds the rare samples: mean likelihood of rare vs rest, and ROC AUC.

    AUC is that of ``1 - likelihood`` as a score for "rare": 0.5 is chance, 1.0 perfect.
    """
    from sklearn.metrics import roc_auc_score

    rare = np.asarray(rare, dtype=bool)
    rows = []
    for name, likelihood in signals.items():
        rows.append({"signal": name, "mean_likelihood_rare": float(likelihood[rare].mean()),
                     "mean_likelihood_rest": float(likelihood[~rare].mean()),
                     "roc_auc": float(roc_auc_score(rare, 1.0 - likelihood))})
    return pd.DataFrame(rows)
