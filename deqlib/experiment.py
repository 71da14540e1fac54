"""Does the DatasetEquity weight help on rare samples? A decisive CPU experiment on real Fashion-MNIST images.

Design (fixed before any result was seen; issue 13):

* **Two settings**, each with a balanced test set. ``long_tail``: rare *classes* (class sizes fall
  exponentially, imbalance ratio 100) in a *random class order per seed*, so the rare classes are not
  one appearance group by construction. ``rare_condition``: rare *appearance*: in every class 5% of the
  training images show a condition (:data:`CONDITIONS`); half the test set shows it. The condition is
  the one the encoder separates best, chosen by measurement before training
  (:func:`condition_separability`, ``benchmarks/training/``).
* **Seeds vary everything**: each seed draws its own training set (and class order), validation split,
  test subset, t-SNE and clustering, model initialisation and batch order, from fixed pools of
  pre-embedded images (:func:`build_pools`, :func:`draw_setting`). One row per (setting, model, arm,
  seed) is kept, so arms can be compared *paired by seed* against plain cross-entropy
  (:func:`paired_differences`).
* **Arms separate the signal from the weight** (:data:`ARMS`): CE; class-balanced (labels); an
  *oracle* (likelihood from the true rare flag) at the paper's (eta, gamma) = (1, 5) and (0.3, 5);
  the label-free cluster likelihood at both pairs; a *placebo* (the same likelihoods shuffled across
  samples); and every other label-free signal of :data:`SIGNALS` at (0.3, 5). A new signal (e.g. a
  consensus likelihood) is one entry in :data:`SIGNALS`. The realised weight ratio (mean weight of the
  rare training samples / of the others) is recorded for every run.
* **Two models**: ``frozen_head`` (a small MLP on frozen EfficientNet-Lite0 embeddings, the cheap
  setting) and ``small_cnn`` (a small CNN trained from scratch on the 28x28 pixels, which can learn
  features for the rare appearance). Both use a validation split and early stopping on the arm's own
  weighted validation loss (no test data, no rare labels).
* Training and t-SNE run under :func:`deqlib.threads.limit_threads` (one thread each), so a loaded
  machine cannot stall them in OpenMP waits; ``n_jobs`` runs (setting, seed) tasks in parallel processes.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from PIL import Image, ImageFilter, ImageOps

from deqlib import paths
from deqlib.embed import embed_source
from deqlib.sources import FashionMNISTSource, ImageSource, SubsetSource

__all__ = ["SETTINGS", "MODELS", "CONDITIONS", "ConditionSource", "condition_separability", "ExperimentConfig",
           "experiment_config", "long_tailed_sizes", "long_tailed_indices", "Pool", "build_pools", "draw_setting",
           "SignalContext", "SIGNALS", "signal_likelihood", "oracle_likelihood", "signal_ranking", "Arm", "ARMS",
           "arm_weights", "realised_ratio", "build_model", "train_model", "run_task", "run_experiment", "paired_interval",
           "minimum_detectable_effect", "paired_differences", "summarize", "summarize_ranking", "write_outputs",
           "read_outputs", "reproduce", "plot_results", "markdown_table"]

SETTINGS = ("long_tail", "rare_condition")
MODELS = ("frozen_head", "small_cnn")
ENCODER = "efficientnet-lite0"


# --------------------------------------------------------------------------------------------------
# Conditions: ways a rare appearance can differ. Each maps a 28x28 RGB image to a 28x28 RGB image.
def _red_cast(image: Image.Image) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float32) * np.array([1.0, 0.35, 0.35], dtype=np.float32)
    return Image.fromarray(pixels.round().astype(np.uint8))


def _striped_background(image: Image.Image) -> Image.Image:
    pixels = np.asarray(image).copy()
    background = pixels.max(axis=2) < 16
    stripes = (np.arange(pixels.shape[0]) % 4 < 2)[:, None] & background
    pixels[stripes] = 160
    return Image.fromarray(pixels)


def _shrunk(image: Image.Image) -> Image.Image:
    canvas = Image.new("RGB", image.size)
    small = image.resize((image.width // 2, image.height // 2), Image.BILINEAR)
    canvas.paste(small, (image.width // 4, image.height // 4))
    return canvas


def _zoomed_in(image: Image.Image) -> Image.Image:
    w, h = image.size
    return image.crop((w // 4, h // 4, w - w // 4, h - h // 4)).resize((w, h), Image.BILINEAR)


#: condition name -> deterministic image transform (28x28 RGB in, 28x28 RGB out)
CONDITIONS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "inverted": ImageOps.invert,
    "rotated_90": lambda image: image.rotate(90),
    "upside_down": lambda image: image.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
    "zoomed_in": _zoomed_in,
    "shrunk": _shrunk,
    "red_cast": _red_cast,
    "striped_background": _striped_background,
    "blurred": lambda image: image.filter(ImageFilter.GaussianBlur(1.5)),
}


class ConditionSource(ImageSource):
    """A source whose ``modified`` positions show ``condition`` (ids get the suffix ``~<condition>``)."""

    def __init__(self, parent: ImageSource, modified: Sequence[bool], condition: str = "inverted"):
        if condition not in CONDITIONS:
            raise ValueError(f"condition must be one of {sorted(CONDITIONS)}, got {condition!r}")
        self.parent, self.modified, self.condition = parent, np.asarray(modified, dtype=bool), condition
        if len(self.modified) != len(parent):
            raise ValueError("modified needs one flag per sample of the parent source")
        self.name, self.root, self.split = parent.name, parent.root, parent.split
        self._ids = [f"{sid}~{condition}" if m else sid for sid, m in zip(parent.sample_ids, self.modified)]

    @property
    def sample_ids(self) -> list[str]:
        return self._ids

    def load(self, index: int, draft=None):
        image = self.parent.load(index, draft=draft).convert("RGB")
        return CONDITIONS[self.condition](image) if self.modified[index] else image

    def metadata(self) -> pd.DataFrame:
        table = self.parent.metadata().copy()
        table["sample_id"], table[self.condition] = self._ids, self.modified
        return table


def _embed(source: ImageSource, cache_dir, progress: bool) -> np.ndarray:
    result = embed_source(source, ENCODER, cache_dir=cache_dir, progress=progress)
    if len(result.sample_ids) != len(source):
        raise RuntimeError(f"{len(result.failures)} of {len(source)} images failed to embed; see {result.cache_path}")
    return result.vectors


def _pixels(source: ImageSource) -> np.ndarray:
    return np.stack([np.asarray(source.load(i).convert("RGB"), dtype=np.uint8) for i in range(len(source))])


def _per_class_pool(labels: np.ndarray, per_class: int, seed: int) -> list[np.ndarray]:
    """A fixed random selection of ``per_class`` positions of every class (in a random order)."""
    rng = np.random.default_rng(seed)
    return [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in range(int(labels.max()) + 1)]


def condition_separability(conditions: Sequence[str] | None = None, per_class: int = 200, rare_fraction: float = 0.05,
                           k: int = 10, cache_dir=None, progress: bool = False, seed: int = 0) -> pd.DataFrame:
    """Rank conditions by how well the encoder separates them: k-NN purity of the rare images.

    ``per_class`` training images of each class are embedded; ``rare_fraction`` of each class is
    shown with the condition instead. For every rare image, ``knn_rare_purity`` is the share of its
    ``k`` nearest neighbours (cosine, itself excluded) that are rare too (chance:
    ``rare_fraction``), ``knn_same_class`` the share that share its class; ``knn_density_auc`` is the
    ROC AUC of ``1 - knn_density_likelihood`` as a score for "rare". A condition with a purity near
    chance is invisible to any clustering of these embeddings.

    Returns one row per condition, best separated first.
    """
    from sklearn.metrics import roc_auc_score
    from sklearn.neighbors import NearestNeighbors

    from deqlib.likelihood import knn_density_likelihood

    cache_dir = paths.interim_dir() / "embeddings" if cache_dir is None else cache_dir
    train_all = FashionMNISTSource(split="train")
    pool = _per_class_pool(train_all.labels, per_class, seed)
    n_rare = max(1, round(rare_fraction * per_class))
    index = np.concatenate(pool)
    rare = np.concatenate([np.arange(len(p)) < n_rare for p in pool])
    labels = train_all.labels[index]
    rows = []
    for condition in conditions or list(CONDITIONS):
        X = _embed(ConditionSource(SubsetSource(train_all, index), rare, condition), cache_dir, progress)
        X = X / np.linalg.norm(X, axis=1, keepdims=True)
        _, neighbours = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X[rare])
        neighbours = neighbours[:, 1:]
        rows.append({"condition": condition, "knn_rare_purity": float(rare[neighbours].mean()),
                     "chance": float(rare.mean()),
                     "knn_same_class": float((labels[neighbours] == labels[rare][:, None]).mean()),
                     "knn_density_auc": float(roc_auc_score(rare, 1.0 - knn_density_likelihood(X, k=k))),
                     "n_images": len(index), "n_rare": int(rare.sum()), "k": k})
    return pd.DataFrame(rows).sort_values("knn_rare_purity", ascending=False, ignore_index=True)


# --------------------------------------------------------------------------------------------------
# Configuration, shared by notebook 07 and `deq train-demo`
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


# --------------------------------------------------------------------------------------------------
# Data: fixed pools, and each seed's own draw from them
def long_tailed_sizes(n_classes: int, largest_class: int, imbalance_ratio: float) -> np.ndarray:
    """Class sizes by rank: rank ``r`` keeps ``largest_class * ratio^(-r/(C-1))`` (at least 1)."""
    ranks = np.arange(n_classes)
    return np.maximum(1, np.round(largest_class * imbalance_ratio ** (-ranks / (n_classes - 1)))).astype(int)


def long_tailed_indices(labels: np.ndarray, largest_class: int, imbalance_ratio: float, seed: int = 0,
                        class_order: Sequence[int] | None = None) -> np.ndarray:
    """Positions of a long-tailed subset: the ``r``-th class of ``class_order`` (default: sorted) keeps
    ``largest_class * ratio^(-r/(C-1))`` images, drawn at random with ``seed``."""
    classes = np.unique(labels) if class_order is None else np.asarray(class_order)
    rng = np.random.default_rng(seed)
    sizes = long_tailed_sizes(len(classes), largest_class, imbalance_ratio)
    keep = [rng.choice(np.flatnonzero(labels == cls), size=min(n, int((labels == cls).sum())), replace=False)
            for cls, n in zip(classes, sizes)]
    return np.sort(np.concatenate(keep))


@dataclass
class Pool:
    """Pre-embedded images: embeddings ``X``, pixels (N, 28, 28, 3) uint8, labels, condition flag, base image id."""

    X: np.ndarray
    pixels: np.ndarray
    labels: np.ndarray
    modified: np.ndarray
    base: np.ndarray      # position in the Fashion-MNIST split, so a condition copy can be matched to its original


def _pool(split_source: FashionMNISTSource, positions: np.ndarray, modified_positions: np.ndarray, condition: str,
          cache_dir, progress: bool) -> Pool:
    plain = SubsetSource(split_source, positions)
    parts = [(plain, positions, False)]
    if len(modified_positions):
        parts.append((ConditionSource(SubsetSource(split_source, modified_positions),
                                      np.ones(len(modified_positions), bool), condition), modified_positions, True))
    X, pixels, labels, modified, base = [], [], [], [], []
    for source, where, flag in parts:
        X.append(_embed(source, cache_dir, progress))
        pixels.append(_pixels(source))
        labels.append(split_source.labels[where])
        modified.append(np.full(len(where), flag))
        base.append(np.asarray(where))
    return Pool(*(np.concatenate(part) for part in (X, pixels, labels, modified, base)))


def build_pools(config: ExperimentConfig, cache_dir=None, progress: bool = False) -> dict[str, Pool]:
    """The training and test pools (``'train'``, ``'test'``), embedded once (cached) for every seed."""
    cache_dir = paths.interim_dir() / "embeddings" if cache_dir is None else cache_dir
    pools = {}
    for split, per_class, rare_per_class in (("train", config.pool_per_class, config.pool_rare_per_class),
                                             ("test", config.test_pool_per_class, config.test_pool_per_class)):
        source = FashionMNISTSource(split=split)
        chosen = _per_class_pool(source.labels, per_class, config.pool_seed)
        positions = np.sort(np.concatenate(chosen))
        modified = np.sort(np.concatenate([c[:rare_per_class] for c in chosen]))
        pools[split] = _pool(source, positions, modified, config.condition, cache_dir, progress)
    return pools


def draw_setting(pools: dict[str, Pool], setting: str, config: ExperimentConfig, seed: int) -> dict:
    """One seed's training and test sets for ``setting`` (positions in the pools, labels, rare flags).

    ``long_tail``: a random class order; the ``r``-th class keeps ``largest_class * ratio^(-r/9)``
    images; the rare classes are the last ``rarest_classes`` of the order. ``rare_condition``:
    ``per_class`` images per class, ``rare_fraction`` of them with the condition (never the same
    image twice); test: ``test_per_class`` per class, half with the condition.
    """
    if setting not in SETTINGS:
        raise ValueError(f"setting must be one of {SETTINGS}, got {setting!r}")
    rng = np.random.default_rng([seed, SETTINGS.index(setting)])
    train, test = pools["train"], pools["test"]
    plain_train = np.flatnonzero(~train.modified)
    plain_test = np.flatnonzero(~test.modified)
    test_idx = np.concatenate([rng.choice(plain_test[test.labels[plain_test] == c], config.test_per_class,
                                          replace=False) for c in range(10)])
    if setting == "long_tail":
        order = rng.permutation(10)
        sizes = long_tailed_sizes(10, config.largest_class, config.imbalance_ratio)
        train_idx = np.concatenate([rng.choice(plain_train[train.labels[plain_train] == c], n, replace=False)
                                    for c, n in zip(order, sizes)])
        rare_classes = order[-config.rarest_classes:]
        train_rare = np.isin(train.labels[train_idx], rare_classes)
        test_rare = np.isin(test.labels[test_idx], rare_classes)
        extra = {"class_order": " ".join(map(str, order))}
    else:
        n_rare = max(1, round(config.rare_fraction * config.per_class))
        train_idx, train_rare = [], []
        for c in range(10):
            rare_pick = rng.choice(np.flatnonzero(train.modified & (train.labels == c)), n_rare, replace=False)
            taken = set(train.base[rare_pick])
            plain = [i for i in plain_train[train.labels[plain_train] == c] if train.base[i] not in taken]
            plain_pick = rng.choice(plain, config.per_class - n_rare, replace=False)
            train_idx += [rare_pick, plain_pick]
            train_rare += [np.ones(n_rare, bool), np.zeros(len(plain_pick), bool)]
        train_idx, train_rare = np.concatenate(train_idx), np.concatenate(train_rare)
        # Half of each class's test images shown with the condition: swap them for their condition copy.
        test_rare = np.zeros(len(test_idx), bool)
        copy_of = {b: i for i, b in zip(np.flatnonzero(test.modified), test.base[test.modified])}
        for c in range(10):
            members = np.flatnonzero(test.labels[test_idx] == c)
            flip = rng.choice(members, len(members) // 2, replace=False)
            test_idx[flip] = [copy_of[test.base[test_idx[i]]] for i in flip]
            test_rare[flip] = True
        extra = {"condition": config.condition}
    return {"setting": setting, "seed": seed, "train_idx": train_idx, "train_y": train.labels[train_idx],
            "train_rare": train_rare, "test_idx": test_idx, "test_y": test.labels[test_idx], "test_rare": test_rare,
            **extra}


# --------------------------------------------------------------------------------------------------
# Rarity signals: label-free likelihoods of the training samples
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


# --------------------------------------------------------------------------------------------------
# Arms
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


# --------------------------------------------------------------------------------------------------
# Models and training
def build_model(model: str, n_features: int, config: ExperimentConfig):
    """``frozen_head``: Linear-ReLU-Linear on embeddings; ``small_cnn``: three 3x3 conv blocks
    (8, 16, 32 channels, batch norm) on 28x28x3 pixels."""
    import torch.nn as nn

    if model == "frozen_head":
        return nn.Sequential(nn.Linear(n_features, config.hidden), nn.ReLU(), nn.Linear(config.hidden, 10))
    if model == "small_cnn":
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),      # 14x14
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),    # 7x7
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
            nn.Flatten(), nn.Linear(32, 10))
    raise ValueError(f"model must be one of {MODELS}, got {model!r}")


def model_inputs(model: str, pool: Pool, index: np.ndarray):
    """The float32 tensor a model trains on: embeddings, or pixels scaled to [-1, 1] (N, 3, 28, 28)."""
    import torch

    if model == "frozen_head":
        return torch.as_tensor(pool.X[index], dtype=torch.float32)
    pixels = torch.as_tensor(pool.pixels[index]).permute(0, 3, 1, 2).float()
    return (pixels / 127.5 - 1.0).contiguous()


def validation_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random (fit, validation) positions; at least one of each."""
    order = np.random.default_rng([seed, 11]).permutation(n)
    n_val = min(n - 1, max(1, round(fraction * n)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def train_model(model: str, X, y: np.ndarray, weights: np.ndarray, config: ExperimentConfig, seed: int):
    """Train ``model`` with per-sample ``weights`` on a fit split; early stopping on the weighted
    validation loss (``patience`` epochs); returns the best model and the number of epochs run."""
    import torch

    torch.manual_seed(seed)
    fit, val = validation_split(len(y), config.validation_fraction, seed)
    y_t, w_t = torch.as_tensor(y, dtype=torch.long), torch.as_tensor(weights, dtype=torch.float32)
    net = build_model(model, X.shape[1], config)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    generator = torch.Generator().manual_seed(seed)
    fit_t, val_t = torch.as_tensor(fit), torch.as_tensor(val)
    best, best_state, stale, epochs = np.inf, None, 0, 0
    for epochs in range(1, config.max_epochs[model] + 1):
        net.train()
        order = fit_t[torch.randperm(len(fit_t), generator=generator)]
        for start in range(0, len(order), config.batch_size[model]):
            batch = order[start:start + config.batch_size[model]]
            if len(batch) < 2 and model == "small_cnn":
                continue  # batch norm needs two samples
            losses = torch.nn.functional.cross_entropy(net(X[batch]), y_t[batch], reduction="none")
            loss = (losses * w_t[batch]).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        net.eval()
        with torch.inference_mode():
            val_losses = torch.nn.functional.cross_entropy(net(X[val_t]), y_t[val_t], reduction="none")
            val_loss = float((val_losses * w_t[val_t]).sum() / w_t[val_t].sum())
        if val_loss < best - 1e-6:
            best, stale = val_loss, 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            stale += 1
            if stale >= config.patience:
                break
    net.load_state_dict(best_state)
    net.eval()
    return net, epochs


def _metrics(predicted: np.ndarray, test_y: np.ndarray, test_rare: np.ndarray) -> dict:
    from sklearn.metrics import balanced_accuracy_score

    correct = predicted == test_y
    return {"accuracy": float(correct.mean()), "balanced_accuracy": float(balanced_accuracy_score(test_y, predicted)),
            "accuracy_rare": float(correct[test_rare].mean()), "accuracy_common": float(correct[~test_rare].mean())}


def run_task(pools: dict[str, Pool], setting: str, seed: int, config: ExperimentConfig,
             arms: Sequence[Arm], models: Sequence[str]) -> dict:
    """One (setting, seed): draw the data, compute the signals, train every model x arm.

    Returns ``rows`` (one per model x arm), ``ranking`` (signal AUCs) and ``info``.
    """
    import torch

    from deqlib.threads import limit_threads

    started, cpu_started = time.perf_counter(), time.process_time()
    with limit_threads(config.threads):
        data = draw_setting(pools, setting, config, seed)
        train_X = pools["train"].X[data["train_idx"]]
        context = SignalContext(train_X, config, seed)
        needed = sorted({arm.signal for arm in arms if arm.signal not in (None, "oracle")})
        likelihoods = {name: np.asarray(signal_likelihood(name, context), dtype=float) for name in needed}
        ranking = signal_ranking(pd.DataFrame(likelihoods), data["train_rare"]) if likelihoods else pd.DataFrame()
        likelihoods["oracle"] = oracle_likelihood(data["train_rare"])
        signal_seconds = time.perf_counter() - started
        rows = []
        for model in models:
            X_train = model_inputs(model, pools["train"], data["train_idx"])
            X_test = model_inputs(model, pools["test"], data["test_idx"])
            for arm in (arm for arm in arms if model in arm.models):
                arm_started = time.perf_counter()
                weights = arm_weights(arm, likelihoods, data["train_y"], seed)
                net, epochs = train_model(model, X_train, data["train_y"], weights, config, seed)
                with torch.inference_mode():
                    predicted = net(X_test).argmax(1).numpy()
                rows.append({"setting": setting, "model": model, "arm": arm.name, "seed": seed,
                             **_metrics(predicted, data["test_y"], data["test_rare"]),
                             "weight_ratio": realised_ratio(weights, data["train_rare"]),
                             "epochs": epochs, "n_train": len(data["train_y"]),
                             "n_rare_train": int(data["train_rare"].sum()),
                             "seconds": round(time.perf_counter() - arm_started, 2)})
    if len(ranking):
        ranking.insert(0, "seed", seed)
        ranking.insert(0, "setting", setting)
    info = {"setting": setting, "seed": seed, "n_train": len(data["train_y"]), "n_test": len(data["test_y"]),
            "n_rare_train": int(data["train_rare"].sum()), "signal_seconds": round(signal_seconds, 1),
            "seconds": round(time.perf_counter() - started, 1),
            "cpu_seconds": round(time.process_time() - cpu_started, 1),  # load-independent: the idle-time estimate
            "class_order": data.get("class_order", ""), "condition": data.get("condition", "")}
    if "coords" in context.__dict__:
        labels = context.clustering.labels
        info.update(n_clusters=int(labels.max() + 1), noise_fraction=float((labels < 0).mean()))
    return {"rows": rows, "ranking": ranking, "info": info}


# --------------------------------------------------------------------------------------------------
# The whole experiment
RUN_KEY = ["setting", "seed"]


_WORKER_POOLS: dict = {}


def _set_worker_pools(pools: dict) -> None:
    # Runs once per spawned worker: the pools are sent once, not with every task.
    _WORKER_POOLS.update(pools)


def _task_in_process(args):
    # Threads are limited inside run_task.
    return run_task(_WORKER_POOLS, *args)


def run_experiment(config: ExperimentConfig | None = None, settings: Sequence[str] = SETTINGS,
                   arms: Sequence[Arm | str] | None = None, models: Sequence[str] = MODELS, cache_dir=None,
                   progress: bool = False, n_jobs: int = 1, runs_path: str | Path | None = None,
                   resume: bool = False, log: Callable[[str], None] | None = None) -> dict:
    """Run every (setting, seed) task: all models x arms. Returns ``runs`` (one row per setting x model x
    arm x seed), ``ranking`` (signal AUCs per setting and seed), ``info`` (per task) and ``seconds``.

    ``cache_dir`` is the embedding cache; None uses the workbook's own (``deqlib.paths.interim_dir() /
    "embeddings"``, shared with ``00_quickstart`` and ``deq embed``). ``n_jobs`` runs tasks in that many
    spawned processes (each with ``config.threads`` threads). With ``runs_path``, the per-seed rows are
    rewritten (atomically) after every finished task, so a deadline keeps what finished; with
    ``resume=True`` the tasks already in ``runs_path`` are kept and not run again.
    """
    from deqlib._atomic import write_text_atomic

    config = config or ExperimentConfig()
    arm_list = [a if isinstance(a, Arm) else {arm.name: arm for arm in ARMS}[a] for a in (arms or ARMS)]
    if cache_dir is None:
        cache_dir = paths.interim_dir() / "embeddings"
    started = time.perf_counter()
    done_rows, done_ranking, done_info = [], [], []
    if resume and runs_path is not None and Path(runs_path).is_file():
        previous = pd.read_csv(runs_path)
        done_rows = previous.to_dict("records")
        for suffix, store in (("_ranking", done_ranking), ("_info", done_info)):
            side = Path(runs_path).with_name(Path(runs_path).stem + suffix + ".csv")
            if side.is_file():
                store.extend(pd.read_csv(side).to_dict("records"))
    # rows of a (model, arm) pair this run does not train are not kept (they would have fewer seeds)
    pairs = {(model, arm.name) for arm in arm_list for model in models if model in arm.models}
    done_rows = [r for r in done_rows if (r["model"], r["arm"]) in pairs]
    finished = {(r["setting"], int(r["seed"])) for r in done_rows}
    # seed-major order: a run cut short by a deadline has both settings for the seeds it finished
    tasks = [(s, seed) for seed in config.seeds for s in settings if (s, seed) not in finished]
    pools = build_pools(config, cache_dir=cache_dir, progress=progress) if tasks else None
    say = log or (lambda message: None)

    def record(result):
        done_rows.extend(result["rows"])
        done_ranking.extend(result["ranking"].to_dict("records"))
        done_info.append(result["info"])
        say(f"{result['info']['setting']} seed {result['info']['seed']} done "
            f"({len(done_info)} tasks, {time.perf_counter() - started:.0f} s)")
        if runs_path is not None:
            write_text_atomic(runs_path, pd.DataFrame(done_rows).to_csv(index=False))
            base = Path(runs_path).with_name(Path(runs_path).stem)
            write_text_atomic(f"{base}_ranking.csv", pd.DataFrame(done_ranking).to_csv(index=False))
            write_text_atomic(f"{base}_info.csv", pd.DataFrame(done_info).to_csv(index=False))

    arguments = [(s, seed, config, arm_list, list(models)) for s, seed in tasks]
    if n_jobs > 1 and len(tasks) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # spawn, not fork: a forked child of a process that has used OpenMP can hang in its first parallel region
        with ProcessPoolExecutor(max_workers=n_jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_set_worker_pools, initargs=(pools,)) as executor:
            for future in as_completed([executor.submit(_task_in_process, a) for a in arguments]):
                record(future.result())
    else:
        for a in arguments:
            record(run_task(pools, *a))
    order = {(s, seed): i for i, (s, seed) in enumerate((s, seed) for s in SETTINGS for seed in sorted(
        {int(r["seed"]) for r in done_rows} | set(config.seeds)))}
    runs = pd.DataFrame(done_rows)
    if len(runs):
        arm_rank = {arm.name: i for i, arm in enumerate(ARMS)}
        runs = runs.assign(_t=[order[(s, int(seed))] for s, seed in zip(runs.setting, runs.seed)],
                           _m=runs.model.map({m: i for i, m in enumerate(MODELS)}),
                           _a=runs.arm.map(lambda a: arm_rank.get(a, len(arm_rank))))
        runs = runs.sort_values(["_t", "_m", "_a"], kind="stable").drop(columns=["_t", "_m", "_a"])
        runs = runs.reset_index(drop=True)
    return {"runs": runs, "ranking": pd.DataFrame(done_ranking), "info": pd.DataFrame(done_info),
            "seconds": time.perf_counter() - started}


# --------------------------------------------------------------------------------------------------
# Statistics: paired differences against CE
def paired_interval(differences: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean of paired differences and its two-sided Student-t confidence interval ``(mean, low, high)``."""
    from scipy import stats

    d = np.asarray(differences, dtype=float)
    if len(d) < 2:
        return float(d.mean()) if len(d) else np.nan, np.nan, np.nan
    half = stats.t.ppf(0.5 + confidence / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half)


def minimum_detectable_effect(sd_difference: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest true mean paired difference a two-sided paired t-test at ``alpha`` detects with ``power``:
    ``(t_{1-alpha/2, n-1} + t_{power, n-1}) * sd / sqrt(n)``."""
    from scipy import stats

    if n < 2:
        return np.nan
    return float((stats.t.ppf(1 - alpha / 2, n - 1) + stats.t.ppf(power, n - 1)) * sd_difference / np.sqrt(n))


def paired_differences(runs: pd.DataFrame, metric: str = "accuracy_rare", baseline: str = "CE",
                       confidence: float = 0.95) -> pd.DataFrame:
    """Per setting, model and arm: mean ``metric``, the paired difference to ``baseline`` over the seeds
    both ran (mean, CI, n), the minimum detectable effect of that comparison, and the realised weight ratio."""
    rows = []
    for (setting, model), part in runs.groupby(["setting", "model"], sort=False):
        base = part[part.arm == baseline].set_index("seed")[metric]
        for arm, arm_rows in part.groupby("arm", sort=False):
            values = arm_rows.set_index("seed")[metric]
            seeds = values.index.intersection(base.index)
            d = (values.loc[seeds] - base.loc[seeds]).to_numpy()
            mean, low, high = paired_interval(d, confidence)
            sd = float(d.std(ddof=1)) if len(d) > 1 else np.nan
            rows.append({"setting": setting, "model": model, "arm": arm, "metric": metric, "n_seeds": len(values),
                         "mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else np.nan,
                         "diff_vs_ce": mean, "ci_low": low, "ci_high": high,
                         "mde": minimum_detectable_effect(sd, len(d)) if arm != baseline else np.nan,
                         "weight_ratio": float(arm_rows.weight_ratio.mean())})
    return pd.DataFrame(rows)


def summarize(runs: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """The results table: :func:`paired_differences` for the rare samples' accuracy and for balanced accuracy."""
    return pd.concat([paired_differences(runs, metric, confidence=confidence)
                      for metric in ("accuracy_rare", "balanced_accuracy")], ignore_index=True)


def summarize_ranking(ranking: pd.DataFrame) -> pd.DataFrame:
    """Signal quality per setting: mean (and min, max) over seeds of the AUC and mean likelihoods."""
    table = ranking.groupby(["setting", "signal"], sort=False).agg(
        roc_auc=("roc_auc", "mean"), roc_auc_min=("roc_auc", "min"), roc_auc_max=("roc_auc", "max"),
        mean_likelihood_rare=("mean_likelihood_rare", "mean"), mean_likelihood_rest=("mean_likelihood_rest", "mean"),
        n_seeds=("seed", "nunique"))
    return table.reset_index()


# --------------------------------------------------------------------------------------------------
# Outputs, shared by notebook 07 and `deq train-demo`
RUNS_FILE = "training_gfl_runs.csv"


def write_outputs(runs: pd.DataFrame, ranking: pd.DataFrame, folder: str | Path | None = None,
                  info: pd.DataFrame | None = None) -> dict[str, Path]:
    """Write the per-seed rows, the summary, the signal ranking and the figure (stable names).

    ``training_gfl_runs.csv`` (one row per setting x model x arm x seed), ``training_gfl_results.csv``
    (:func:`summarize`), ``training_gfl_signal_ranking.csv`` (:func:`summarize_ranking`) and
    ``training_gfl_results.png``. Everything is computed from ``runs`` and ``ranking`` alone, so
    re-writing from the saved CSVs gives the same files.
    """
    from deqlib._atomic import write_text_atomic

    folder = Path(folder) if folder is not None else paths.figures_dir()
    written = {"runs": folder / RUNS_FILE, "results": folder / "training_gfl_results.csv",
               "ranking": folder / "training_gfl_signal_ranking.csv", "figure": folder / "training_gfl_results.png"}
    write_text_atomic(written["runs"], runs.to_csv(index=False))
    write_text_atomic(folder / (Path(RUNS_FILE).stem + "_ranking.csv"), ranking.to_csv(index=False))
    summary = summarize(runs)
    write_text_atomic(written["results"], summary.to_csv(index=False, float_format="%.5f"))
    write_text_atomic(written["ranking"], summarize_ranking(ranking).to_csv(index=False, float_format="%.5f"))
    seeds = runs.groupby(["setting", "model", "arm"]).seed.nunique()
    plot_results(summary, written["figure"], {"seeds": f"{seeds.min()}-{seeds.max()}" if seeds.min() != seeds.max()
                                               else int(seeds.min()), "runs": len(runs)})
    if info is not None:
        written["info"] = folder / "training_gfl_runs_info.csv"
        write_text_atomic(written["info"], info.to_csv(index=False))
    return written


def read_outputs(folder: str | Path | None = None) -> dict | None:
    """The saved per-seed rows and signal AUCs (``runs``, ``ranking``), or None if no run was saved."""
    folder = Path(folder) if folder is not None else paths.figures_dir()
    runs_path = folder / RUNS_FILE
    ranking_path = runs_path.with_name(runs_path.stem + "_ranking.csv")
    if not runs_path.is_file() or not ranking_path.is_file():
        return None
    return {"runs": pd.read_csv(runs_path), "ranking": pd.read_csv(ranking_path)}


def plot_results(summary: pd.DataFrame, path: str | Path | None = None, parameters: dict | None = None):
    """Paired difference to CE in accuracy on the rare samples (mean, 95% CI), per arm; one panel per
    setting and model."""
    import matplotlib.pyplot as plt

    part_all = summary[summary.metric == "accuracy_rare"]
    panels = list(dict.fromkeys(zip(part_all.setting, part_all.model)))
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 5), squeeze=False, sharey=True)
    titles = {"long_tail": "rare classes", "rare_condition": "rare condition"}
    arm_names = list(dict.fromkeys(part_all.arm))  # one row per arm in every panel (shared y axis)
    for ax, (setting, model) in zip(axes[0], panels):
        part = part_all[(part_all.setting == setting) & (part_all.model == model)]
        position = np.array([arm_names.index(arm) for arm in part.arm])
        low = (part.diff_vs_ce - part.ci_low).fillna(0).to_numpy()
        high = (part.ci_high - part.diff_vs_ce).fillna(0).to_numpy()
        ax.errorbar(100 * part.diff_vs_ce, position, xerr=100 * np.vstack([low, high]), fmt="o", capsize=3)
        ax.axvline(0, color="#888888", lw=1)
        ax.set_yticks(np.arange(len(arm_names)), arm_names)
        ax.set_title(f"{titles.get(setting, setting)}, {model}", fontsize=10)
        ax.set_xlabel("rare-sample accuracy minus CE (points)")
    axes[0][0].invert_yaxis()
    figure.tight_layout()
    if path is not None:
        from deqlib.plots.clusters import save_figure

        save_figure(figure, path, parameters or {})
    return figure


def reproduce(config: ExperimentConfig | None = None, folder: str | Path | None = None, rerun: bool = False,
              n_jobs: int = 1, resume: bool = False, progress: bool = False,
              log: Callable[[str], None] | None = None) -> dict:
    """What notebook 07 and ``deq train-demo`` both do: get the per-seed rows, then :func:`write_outputs`.

    Without ``rerun``, the saved rows of the last full run are used (from ``folder``, else the
    workbook's committed ``figures/``), so the figure and tables are rewritten in seconds; with
    ``rerun`` (or when nothing is saved) the experiment runs with ``config`` and its rows are written
    to ``folder`` as each task finishes. Returns ``runs``, ``ranking``, ``summary``, ``written``,
    ``source`` (``'saved'`` or ``'run'``) and ``seconds``.
    """
    folder = Path(folder) if folder is not None else paths.figures_dir()
    started = time.perf_counter()
    saved = None if rerun else (read_outputs(folder) or read_outputs(paths.project_root() / "figures"))
    if saved is not None:
        runs, ranking, info, source = saved["runs"], saved["ranking"], None, "saved"
    else:
        out = run_experiment(config, n_jobs=n_jobs, runs_path=folder / RUNS_FILE, resume=resume,
                             progress=progress, log=log)
        runs, ranking, info, source = out["runs"], out["ranking"], out["info"], "run"
    written = write_outputs(runs, ranking, folder, info=info)
    return {"runs": runs, "ranking": ranking, "summary": summarize(runs), "written": written, "source": source,
            "seconds": time.perf_counter() - started}


def markdown_table(summary: pd.DataFrame, metric: str = "accuracy_rare") -> str:
    """The README table: one row per arm, one column per setting x model; each cell is the paired difference
    to CE in points with its 95% CI, and the realised weight ratio (CE's row: its mean accuracy)."""
    part = summary[summary.metric == metric]
    columns = list(dict.fromkeys(zip(part.setting, part.model)))
    names = {"long_tail": "rare classes", "rare_condition": "rare condition", "frozen_head": "frozen head",
             "small_cnn": "small CNN"}
    lines = ["| arm | " + " | ".join(f"{names.get(s, s)}, {names.get(m, m)}" for s, m in columns) + " |",
             "| --- |" + " --- |" * len(columns)]
    for arm in dict.fromkeys(part.arm):
        cells = []
        for setting, model in columns:
            row = part[(part.setting == setting) & (part.model == model) & (part.arm == arm)]
            if not len(row):
                cells.append("")
                continue
            row = row.iloc[0]
            if arm == "CE":
                cells.append(f"{100 * row['mean']:.1f}% (n={row.n_seeds})")
            else:
                cells.append(f"{100 * row.diff_vs_ce:+.1f} [{100 * row.ci_low:+.1f}, {100 * row.ci_high:+.1f}]"
                             f" x{row.weight_ratio:.2f}")
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
