"""Arms: one loss each, separating the signal from the weight (CE, class-balanced, oracle, cluster,
placebo and every label-free signal of :data:`deqlib.experiment.signals.SIGNALS`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deqlib.experiment.config import MODELS
from deqlib.experiment.signals import SIGNALS

__all__ = ["Arm", "ARMS", "arm_weights", "realised_ratio"]


@dataclass(frozen=True)
class Arm:
    """One loss: ``signal`` is a :data:`SIGNALS` name, ``"oracle"`` or None (no GFL weight); the GFL weight
    uses ``(eta, gamma)``; ``shuffled`` permutes the signal's likelihoods across samples (a placebo with
    the same weight multiset); ``class_balanced`` multiplies by Cui et al.'s label-based weights."""

    name: str
    signal: str | None = None
    eta: float = 1.0
    gamma: float = 5.0
    class_balanced: bool = False
    shuffled: bool = False
    models: tuple = MODELS             # which models train with this arm


#: The small CNN costs about ten times the frozen head, so it trains with the arms that answer the question
#: (CE, class-balanced, oracle, the paper's cluster likelihood and its placebo); the frozen head with all.
ARMS: list[Arm] = [
    Arm("CE"),
    Arm("class-balanced", class_balanced=True),
    Arm("oracle GFL(1, 5)", "oracle", 1.0, 5.0),
    Arm("oracle GFL(0.3, 5)", "oracle", 0.3, 5.0),
    Arm("cluster GFL(1, 5)", "cluster_singleton", 1.0, 5.0, models=("frozen_head",)),
    Arm("cluster GFL(0.3, 5)", "cluster_singleton", 0.3, 5.0),
    Arm("placebo GFL(0.3, 5)", "cluster_singleton", 0.3, 5.0, shuffled=True),
    *[Arm(f"{name} GFL(0.3, 5)", name, 0.3, 5.0, models=("frozen_head",))
      for name in SIGNALS if name != "cluster_singleton"],
]


def arm_weights(arm: Arm, likelihoods: dict[str, np.ndarray], train_y: np.ndarray, seed: int) -> np.ndarray:
    """Per-sample training weights of ``arm``, normalised to mean 1 (same loss scale in every arm)."""
    from deqlib.training import class_balanced_weights
    from deqlib.weights import gfl_weight

    weights = np.ones(len(train_y))
    if arm.signal is not None:
        likelihood = np.asarray(likelihoods[arm.signal], dtype=float)
        if arm.shuffled:
            likelihood = np.random.default_rng([seed, 7]).permutation(likelihood)
        weights = gfl_weight(likelihood, arm.eta, arm.gamma)
    if arm.class_balanced:
        weights = weights * class_balanced_weights(np.bincount(train_y, minlength=10).clip(min=1))[train_y]
    return weights / weights.mean()


def realised_ratio(weights: np.ndarray, rare: np.ndarray) -> float:
    """Mean weight of the rare samples over the mean weight of the others."""
    rare = np.asarray(rare, dtype=bool)
    return float(weights[rare].mean() / weights[~rare].mean())
