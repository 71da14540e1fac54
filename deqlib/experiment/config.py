"""The experiment's configuration, shared by notebook 07 and ``deq train-demo``."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["SETTINGS", "MODELS", "ENCODER", "ExperimentConfig", "experiment_config"]

SETTINGS = ("long_tail", "rare_condition")
MODELS = ("frozen_head", "small_cnn")
ENCODER = "efficientnet-lite0"


@dataclass
class ExperimentConfig:
    """Every size and training setting of the experiment (defaults: the full run).

    Pools (embedded once, shared by all seeds): ``pool_per_class`` training and ``test_pool_per_class``
    test images per class; ``pool_rare_per_class`` training and every test pool image also with the
    condition. Each seed draws its own sets from the pools.
    """

    condition: str = "blurred"         # rare_condition: the top of benchmarks/training/results/condition_ranking.csv
    imbalance_ratio: float = 100.0
    largest_class: int = 800           # long_tail: training images of the most common class
    rarest_classes: int = 3            # long_tail: "rare" = the last classes of the seed's random order
    per_class: int = 300               # rare_condition: training images per class
    rare_fraction: float = 0.05        # rare_condition: share of each class shown with the condition
    test_per_class: int = 200
    pool_per_class: int = 800
    pool_rare_per_class: int = 100
    test_pool_per_class: int = 400
    validation_fraction: float = 0.15
    max_epochs: dict = field(default_factory=lambda: {"frozen_head": 40, "small_cnn": 30})
    patience: int = 4                  # early stopping: epochs without a better validation loss
    batch_size: dict = field(default_factory=lambda: {"frozen_head": 128, "small_cnn": 64})
    learning_rate: float = 1e-3
    hidden: int = 128                  # frozen_head hidden units
    min_cluster_size: int = 15
    seeds: tuple = tuple(range(10))
    threads: int = 1                   # torch/BLAS threads per task (deqlib.threads)
    pool_seed: int = 0                 # which images form the pools (not varied: the pools are the population)


def experiment_config(quick: bool = False, seeds: int | None = None, max_epochs: int | None = None) -> ExperimentConfig:
    """The full run's configuration, or the quick one (small sets, 2 seeds, 4 epochs: checks the mechanics)."""
    if quick:
        config = ExperimentConfig(largest_class=150, per_class=80, test_per_class=40, pool_per_class=150,
                                  pool_rare_per_class=20, test_pool_per_class=40, seeds=(0, 1),
                                  max_epochs={"frozen_head": 4, "small_cnn": 4}, patience=2)
    else:
        config = ExperimentConfig()
    if seeds is not None:
        config.seeds = tuple(range(seeds))
    if max_epochs is not None:
        config.max_epochs = {model: int(max_epochs) for model in MODELS}
    return config
