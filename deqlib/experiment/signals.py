"""Rarity signals: the label-free likelihoods of the training samples (registered signals, named in the
config), the two oracles, the AUC sweep's noisy oracle, and how well each finds the rare samples."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np
import pandas as pd

from deqlib.experiment.config import ExperimentConfig

__all__ = ["SignalContext", "ORACLE_RARE", "ORACLE_CLASS", "signal_likelihood", "oracle_likelihood",
           "class_oracle_likelihood", "noisy_oracle_likelihood", "signal_quality", "signal_ranking"]

ORACLE_RARE = "oracle-rare"
ORACLE_CLASS = "oracle-class"


class SignalContext:
    """What a label-free signal may use (a :class:`deqlib.likelihood.RarityContext` computed lazily from the
    training embeddings, the config and the seed): ``embeddings``; the 3-D t-SNE (``coords``) and its
    HDBSCAN clustering (``labels``, ``outlier_scores``), computed once on first use; and ``runs``, K =
    ``config.consensus_runs`` t-SNE + HDBSCAN runs with seeds ``seed, seed + 1000, ...`` (the first is
    ``coords``), for the consensus signals. A signal that reads only ``embeddings`` never pays for a t-SNE."""

    def __init__(self, train_X: np.ndarray, config: ExperimentConfig, seed: int):
        self.train_X, self.config, self.seed = train_X, config, seed

    @property
    def embeddings(self) -> np.ndarray:
        return self.train_X

    def _map(self, seed: int) -> np.ndarray:
        from deqlib.reduce import OpenTSNEReducer

        return OpenTSNEReducer(random_state=seed, n_jobs=self.config.threads).fit_transform(self.train_X)

    def _cluster(self, coords: np.ndarray):
        from deqlib.cluster import HDBSCANClusterer

        return HDBSCANClusterer(min_cluster_size=self.config.min_cluster_size).fit(coords).result_

    @functools.cached_property
    def coords(self) -> np.ndarray:
        return self._map(self.seed)

    @functools.cached_property
    def clustering(self):
        return self._cluster(self.coords)

    @property
    def labels(self) -> np.ndarray:
        return self.clustering.labels

    @property
    def outlier_scores(self):
        return self.clustering.outlier_scores

    @functools.cached_property
    def runs(self):
        from deqlib.likelihood import cluster_likelihood

        seeds = [self.seed + 1000 * k for k in range(self.config.consensus_runs)]
        labels = [self.labels] + [self._cluster(self._map(s)).labels for s in seeds[1:]]
        return SimpleNamespace(labels=np.stack(labels), params={"seeds": seeds},
                               likelihoods=np.stack([cluster_likelihood(lab, "singleton") for lab in labels]))


def signal_likelihood(name: str, context, config: ExperimentConfig) -> np.ndarray:
    """The likelihood per training sample of the label-free signal ``name`` (a key of ``config.signals``:
    a :data:`deqlib.likelihood.RARITY_SIGNALS` name and its parameters)."""
    from deqlib.likelihood import RARITY_SIGNALS

    if name not in config.signals:
        raise ValueError(f"unknown experiment signal {name!r}; config.signals has {sorted(config.signals)}")
    registered, params = config.signals[name]
    return np.asarray(RARITY_SIGNALS.create(registered, **params).fit(context).likelihood_, dtype=float)


def oracle_likelihood(rare: np.ndarray) -> np.ndarray:
    """Likelihood from the true rare flag: each group's frequency over the larger group's (eq. 3 with
    two clusters, "rare" and "the rest"), so the common samples get 1 and the rare ones their relative size."""
    rare = np.asarray(rare, dtype=bool)
    counts = np.array([(~rare).sum(), rare.sum()], dtype=float)
    return (counts / counts.max())[rare.astype(int)]


def class_oracle_likelihood(labels: np.ndarray) -> np.ndarray:
    """Likelihood from the true classes: each class's count over the largest class's (eq. 3 with the classes
    as clusters)."""
    labels = np.asarray(labels)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    return counts[inverse.reshape(-1)] / counts.max()


def noisy_oracle_likelihood(rare: np.ndarray, auc: float, seed: int) -> np.ndarray:
    """A likelihood whose ROC AUC for ``rare`` is ``auc`` in expectation: the oracle mixed with noise.

    The rarity score is ``rare + e`` with ``e ~ N(0, s^2)``, ``s = 1 / (sqrt(2) * Phi^-1(auc))`` (two
    unit-spaced normals of equal spread have AUC ``Phi(1 / (s sqrt 2))``); the likelihood maps the score
    linearly onto ``[0.001, 1]``, rarest lowest. Every level of the sweep is weighted with the same scheme
    and ratio cap (``config.sweep_weight``); the realised AUC is measured, not assumed.
    """
    from scipy.stats import norm

    if not 0.5 < auc < 1.0:
        raise ValueError(f"auc must lie in (0.5, 1), got {auc!r}")
    rare = np.asarray(rare, dtype=bool)
    spread = 1.0 / (np.sqrt(2.0) * norm.ppf(auc))
    score = rare + np.random.default_rng([seed, int(round(auc * 1000)), 99]).normal(0.0, spread, rare.size)
    scaled = (score.max() - score) / (score.max() - score.min())
    return 0.001 + 0.999 * scaled


def signal_quality(likelihood: np.ndarray, rare: np.ndarray) -> dict:
    """ROC AUC and average precision of ``1 - likelihood`` as a score for "rare" (0.5 / the prevalence: chance)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    rare = np.asarray(rare, dtype=bool)
    score = 1.0 - np.asarray(likelihood, dtype=float)
    return {"signal_auc": float(roc_auc_score(rare, score)), "signal_ap": float(average_precision_score(rare, score)),
            "prevalence": float(rare.mean())}


def signal_ranking(signals: pd.DataFrame, rare: np.ndarray) -> pd.DataFrame:
    """How well each signal finds the rare samples: mean likelihood of rare vs rest, ROC AUC and average precision."""
    rare = np.asarray(rare, dtype=bool)
    rows = []
    for name, likelihood in signals.items():
        quality = signal_quality(likelihood.to_numpy(), rare)
        rows.append({"signal": name, "mean_likelihood_rare": float(likelihood[rare].mean()),
                     "mean_likelihood_rest": float(likelihood[~rare].mean()),
                     "roc_auc": quality["signal_auc"], "average_precision": quality["signal_ap"],
                     "prevalence": quality["prevalence"]})
    return pd.DataFrame(rows)
