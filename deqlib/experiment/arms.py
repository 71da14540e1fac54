"""Arms: one loss each. The factorial design (:func:`design`): baselines, signal x weight, a placebo matched
to the oracle's weights, and the AUC sweep; :func:`arm_weights` gives an arm's per-sample training weights."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deqlib.experiment.config import MODELS, RARE_CLASSES, ExperimentConfig
from deqlib.experiment.signals import ORACLE_CLASS, ORACLE_RARE

__all__ = ["Arm", "BASELINES", "PLACEBO", "design", "arms_for", "arm_weights", "realised_ratio"]

#: Baselines: plain cross-entropy everywhere; where classes are rare also Cui et al.'s class-balanced weight
#: and Menon et al.'s logit adjustment (both use the labels).
BASELINES = ("CE", "class-balanced", "logit-adjusted")
PLACEBO = "placebo"


@dataclass(frozen=True)
class Arm:
    """One loss.

    ``kind``: ``'baseline'`` (``name`` is one of :data:`BASELINES`), ``'weighted'`` (``signal`` x
    ``weight``), ``'placebo'`` (the ``oracle-rare`` x ``weight`` weights, permuted across samples with the
    seed: the same multiset, no link to rarity) or ``'sweep'`` (``signal`` is ``'sweep:<auc>'``).
    ``weight`` is a key of ``config.weights`` (``'sweep'`` for the sweep's ``config.sweep_weight``);
    ``rare_classes_only``: trained only where classes are rare (``long_tail``); ``models``: which models train it.
    """

    name: str
    kind: str
    signal: str | None = None
    weight: str | None = None
    rare_classes_only: bool = False
    models: tuple = MODELS


def design(config: ExperimentConfig) -> list[Arm]:
    """Every arm of the factorial design, in table order (the baselines first, CE the very first)."""
    arms = [Arm("CE", "baseline"), Arm("class-balanced", "baseline", rare_classes_only=True),
            Arm("logit-adjusted", "baseline", rare_classes_only=True)]
    signals = [ORACLE_RARE, ORACLE_CLASS, *config.signals, PLACEBO]
    if len(set(signals)) != len(signals):
        raise ValueError(f"config.signals may not use the reserved names {ORACLE_RARE}, {ORACLE_CLASS}, {PLACEBO}")
    for signal in signals:
        for weight in config.weights:
            models = MODELS if weight in config.cnn_weights else ("frozen_head",)
            arms.append(Arm(f"{signal} x {weight}", PLACEBO if signal == PLACEBO else "weighted",
                            None if signal == PLACEBO else signal, weight, signal == ORACLE_CLASS, models))
    for auc in config.sweep_aucs:
        arms.append(Arm(f"sweep AUC {auc:g}", "sweep", f"sweep:{auc:g}", "sweep", models=tuple(config.sweep_models)))
    unknown = set(config.cnn_weights) - set(config.weights)
    if unknown:
        raise ValueError(f"config.cnn_weights names weights not in config.weights: {sorted(unknown)}")
    return arms


def arms_for(arms, setting: str, model: str) -> list[Arm]:
    """The arms ``model`` trains in ``setting``."""
    return [arm for arm in arms if model in arm.models and (setting == RARE_CLASSES or not arm.rare_classes_only)]


def _scheme(arm: Arm, config: ExperimentConfig) -> tuple[str, dict]:
    return tuple(config.sweep_weight) if arm.weight == "sweep" else config.weights[arm.weight]


def arm_weights(arm: Arm, likelihoods: dict[str, np.ndarray], train_y: np.ndarray, config: ExperimentConfig,
                seed: int) -> np.ndarray:
    """Per-sample training weights of ``arm``, mean 1 (the same loss scale in every arm).

    ``likelihoods`` maps signal names (``oracle-rare``, ``oracle-class``, the config's signals, ``sweep:<auc>``)
    to per-sample likelihoods. CE and logit adjustment weigh every sample 1 (logit adjustment changes the
    logits instead: :func:`deqlib.experiment.training.train_model`).
    """
    from deqlib.training import class_balanced_weights
    from deqlib.weights import scheme_weights

    if arm.kind == "baseline":
        if arm.name == "class-balanced":
            counts = np.bincount(train_y, minlength=10).clip(min=1)
            weights = class_balanced_weights(counts, beta=config.class_balanced_beta)[train_y]
            return weights / weights.mean()
        return np.ones(len(train_y))
    scheme, params = _scheme(arm, config)
    source = ORACLE_RARE if arm.kind == PLACEBO else arm.signal
    weights = np.asarray(scheme_weights(scheme, np.asarray(likelihoods[source], dtype=float), **params))
    if arm.kind == PLACEBO:
        weights = np.random.default_rng([seed, 7]).permutation(weights)
    return weights


def realised_ratio(weights: np.ndarray, rare: np.ndarray) -> float:
    """Mean weight of the rare samples over the mean weight of the others."""
    from deqlib.weights import weight_ratio

    return weight_ratio(weights, rare)
