"""The experiment's configuration, shared by notebook 07 and ``deq train-demo``: the factorial design
(settings, signals by registry name, weight arms, models, seeds) and every size and training setting."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["RARE_CLASSES", "SETTINGS", "MODELS", "ENCODER", "ExperimentConfig", "experiment_config"]

#: The rare-classes setting; every other setting is a rare condition, named after it.
RARE_CLASSES = "long_tail"
MODELS = ("frozen_head", "small_cnn")
ENCODER = "efficientnet-lite0"


def _default_signals() -> dict:
    # display name -> (deqlib.likelihood.RARITY_SIGNALS name, its parameters): the workbook's default signal and
    # the next three label-free signals of the rarity benchmark (benchmarks/rarity, docs/rarity.md), each with
    # its registered defaults. A consensus signal would get config.consensus_runs t-SNE + HDBSCAN runs per seed.
    return {"multi-granularity+lof": ("multi-granularity+lof", {}),
            "knn-cosine": ("knn-cosine", {}),
            "cleanlab-ood": ("cleanlab-ood", {}),
            "multi-granularity": ("multi-granularity", {})}


def _default_weights() -> dict:
    # display name -> (deqlib.weights.WEIGHT_SCHEMES name, its parameters)
    return {"eq4(1,5)": ("eq4", {"eta": 1.0, "gamma": 5.0}),
            "eq4(0.3,5)": ("eq4", {"eta": 0.3, "gamma": 5.0}),
            "cb(4)": ("cluster-balanced", {"max_ratio": 4.0}),
            "cb(17)": ("cluster-balanced", {"max_ratio": 17.0}),
            "rank(10)": ("rank", {"max_ratio": 10.0})}


@dataclass
class ExperimentConfig:
    """The factorial design and every size and training setting (defaults: the full run).

    Design: settings = the rare classes (``long_tail``) and one per rare condition (``conditions``);
    signals = the oracle over the rare flag (``oracle-rare``), the oracle over the true classes
    (``oracle-class``, rare classes only: with balanced classes it is flat), every label-free signal of
    ``signals`` (by registry name) and a placebo (the oracle-rare weights permuted); each crossed with every
    weight of ``weights``; baselines CE, and where classes are rare class-balanced and logit adjustment; an
    AUC sweep (the oracle mixed with noise to ``sweep_aucs``, weighted with ``sweep_weight``). The frozen
    head trains every arm on ``seeds``; the CNN (about ten times the cost) trains the fractional design
    (the baselines and every signal with the weights of ``cnn_weights`` only) on ``cnn_seeds``.

    Pools (embedded once, shared by all seeds): ``pool_per_class`` training and ``test_pool_per_class``
    test images per class; ``pool_rare_per_class`` training images per class and every test pool image
    also under each condition. Each seed draws its own sets from the pools.
    """

    conditions: tuple = ("blurred", "darkened", "fogged")
    signals: dict = field(default_factory=_default_signals)
    weights: dict = field(default_factory=_default_weights)
    cnn_weights: tuple = ("eq4(0.3,5)", "cb(17)", "rank(10)")
    sweep_aucs: tuple = (0.6, 0.7, 0.8, 0.9, 0.95)
    sweep_weight: tuple = ("cluster-balanced", {"max_ratio": 17.0})
    sweep_models: tuple = ("frozen_head",)
    cnn_settings: tuple | None = None  # the settings the CNN trains in; None: every setting
    consensus_runs: int = 3            # t-SNE + HDBSCAN runs per seed for a consensus signal
    imbalance_ratio: float = 100.0
    largest_class: int = 800           # long_tail: training images of the most common class
    rarest_classes: int = 3            # long_tail: "rare" = the last classes of the seed's random order
    per_class: int = 300               # rare condition: training images per class
    rare_fraction: float = 0.05        # rare condition: share of each class shown with the condition
    test_per_class: int = 200
    pool_per_class: int = 800
    pool_rare_per_class: int = 100
    test_pool_per_class: int = 400
    validation_fraction: float = 0.15
    max_epochs: dict = field(default_factory=lambda: {"frozen_head": 300, "small_cnn": 150})
    patience: int = 6                  # early stopping: epochs without a better unweighted validation loss
    lr_patience: int = 2               # ReduceLROnPlateau on the same loss: epochs before the rate falls
    lr_factor: float = 0.3
    batch_size: dict = field(default_factory=lambda: {"frozen_head": 128, "small_cnn": 64})
    learning_rate: float = 1e-3
    logit_adjustment_tau: float = 1.0  # Menon et al. (2021): train on logits + tau * log(class prior)
    class_balanced_beta: float = 0.999
    hidden: int = 128                  # frozen_head hidden units
    min_cluster_size: int = 15
    seeds: tuple = tuple(range(10))
    cnn_seeds: tuple = tuple(range(20))
    threads: int = 1                   # torch/BLAS threads per task (deqlib.threads)
    pool_seed: int = 0                 # which images form the pools (not varied: the pools are the population)

    @property
    def settings(self) -> tuple:
        """``long_tail`` and one setting per condition."""
        return (RARE_CLASSES, *self.conditions)

    def seeds_of(self, model: str, setting: str | None = None) -> tuple:
        """The seeds ``model`` trains on (in ``setting``: none where ``cnn_settings`` leaves the CNN out)."""
        if model == "small_cnn":
            if setting is not None and self.cnn_settings is not None and setting not in self.cnn_settings:
                return ()
            return tuple(self.cnn_seeds)
        return tuple(self.seeds)


#: The default settings (the full run's).
SETTINGS = ExperimentConfig().settings


def experiment_config(quick: bool = False, seeds: int | None = None, max_epochs: int | None = None,
                      cnn_seeds: int | None = None) -> ExperimentConfig:
    """The full run's configuration, or the quick one (small sets, 2 seeds, few epochs, the CNN on the
    baselines and one weight: checks the mechanics, not the result)."""
    if quick:
        config = ExperimentConfig(largest_class=150, per_class=80, test_per_class=40, pool_per_class=150,
                                  pool_rare_per_class=20, test_pool_per_class=40, seeds=(0, 1), cnn_seeds=(0, 1),
                                  max_epochs={"frozen_head": 40, "small_cnn": 3}, patience=3,
                                  cnn_weights=("cb(17)",), consensus_runs=2, min_cluster_size=8)
    else:
        config = ExperimentConfig()
    if seeds is not None:
        config.seeds = tuple(range(seeds))
    if cnn_seeds is not None:
        config.cnn_seeds = tuple(range(cnn_seeds))
    if max_epochs is not None:
        config.max_epochs = {model: int(max_epochs) for model in MODELS}
    return config
