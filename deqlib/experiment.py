"""Does the DatasetEquity weight help on rare samples? A CPU experiment on real Fashion-MNIST images.

Two settings, each with a balanced test set:

``long_tail``
    Rare *classes*, as in the paper's KITTI result: training class sizes fall exponentially
    (imbalance ratio 100).
``rare_condition``
    Rare *appearance* within classes, as in the paper's day/night examples: in every class
    about 5% of the training images are inverted (white background); the test set is half
    inverted.

The model is a small MLP head on frozen EfficientNet-Lite0 embeddings (real ImageNet weights),
so every arm trains in seconds on a CPU. Likelihoods come from the *training images alone*
(no labels): 3-D t-SNE + HDBSCAN cluster likelihood under each noise policy, HDBSCAN's outlier
score, and the k-NN density likelihood. Before training, :func:`signal_ranking` reports how well
each signal ranks the truly rare samples, since a signal that does not find them cannot help.

Arms: plain cross-entropy; CE x GFL weight (several eta, gamma); class-balanced loss (Cui et
al., label-based); CB x GFL; a weighted sampler; and CE x GFL from each other rarity signal.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from PIL import ImageOps
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from deqlib import paths
from deqlib.cluster import HDBSCANClusterer
from deqlib.embed import embed_source
from deqlib.likelihood import NOISE_POLICIES, knn_density_likelihood, scaled_likelihood
from deqlib.reduce import OpenTSNEReducer
from deqlib.sources import FashionMNISTSource, ImageSource, SubsetSource
from deqlib.training import class_balanced_weights, weighted_sampler
from deqlib.weights import gfl_weight

__all__ = ["ExperimentConfig", "long_tailed_indices", "ConditionSource", "prepare_setting", "rarity_signals",
           "signal_ranking", "ARMS", "train_arm", "run_experiment", "summarize", "plot_results"]

SETTINGS = ("long_tail", "rare_condition")


@dataclass
class ExperimentConfig:
    """Sizes and training settings (defaults: the full run, 169 s on an idle 2-core CPU, 712 s on a loaded one)."""

    imbalance_ratio: float = 100.0
    largest_class: int = 1000          # long_tail: training images of the most common class
    per_class: int = 500               # rare_condition: training images per class
    rare_fraction: float = 0.05        # rare_condition: share of each class that is inverted
    test_per_class: int = 300
    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 1e-3
    hidden: int = 128
    seeds: tuple = (0, 1, 2)
    min_cluster_size: int = 15
    rarest_classes: int = 3            # long_tail: "rare classes" = this many smallest classes
    device: str = "cpu"


def long_tailed_indices(labels: np.ndarray, largest_class: int, imbalance_ratio: float, seed: int = 0) -> np.ndarray:
    """Positions of a long-tailed subset: class ``c`` keeps ``largest_class * ratio^(-c/(C-1))`` images."""
    classes = np.unique(labels)
    rng = np.random.default_rng(seed)
    keep = []
    for rank, cls in enumerate(classes):
        n = max(1, int(round(largest_class * imbalance_ratio ** (-rank / (len(classes) - 1)))))
        members = np.flatnonzero(labels == cls)
        keep.append(rng.choice(members, size=min(n, len(members)), replace=False))
    return np.sort(np.concatenate(keep))


class ConditionSource(ImageSource):
    """A source whose ``modified`` positions are shown inverted (ids get the suffix ``~inverted``)."""

    def __init__(self, parent: ImageSource, modified: Sequence[bool]):
        self.parent, self.modified = parent, np.asarray(modified, dtype=bool)
        if len(self.modified) != len(parent):
            raise ValueError("modified needs one flag per sample of the parent source")
        self.name, self.root, self.split = parent.name, parent.root, parent.split
        self._ids = [f"{sid}~inverted" if m else sid for sid, m in zip(parent.sample_ids, self.modified)]

    @property
    def sample_ids(self) -> list[str]:
        return self._ids

    def load(self, index: int, draft=None):
        image = self.parent.load(index, draft=draft)
        return ImageOps.invert(image) if self.modified[index] else image

    def metadata(self) -> pd.DataFrame:
        table = self.parent.metadata().copy()
        table["sample_id"], table["inverted"] = self._ids, self.modified
        return table


def _embed(source: ImageSource, cache_dir, progress: bool) -> np.ndarray:
    result = embed_source(source, "efficientnet-lite0", cache_dir=cache_dir, progress=progress)
    if len(result.sample_ids) != len(source):
        raise RuntimeError(f"{len(result.failures)} images failed to embed; see {result.cache_path}")
    return result.vectors


def prepare_setting(setting: str, config: ExperimentConfig, cache_dir=None, progress: bool = False, seed: int = 0) -> dict:
    """Embeddings, labels and rare masks of one setting's training and test sets."""
    if setting not in SETTINGS:
        raise ValueError(f"setting must be one of {SETTINGS}, got {setting!r}")
    train_all, test_all = FashionMNISTSource(split="train"), FashionMNISTSource(split="test")
    rng = np.random.default_rng(seed)
    test_idx = np.sort(np.concatenate([rng.choice(np.flatnonzero(test_all.labels == c), config.test_per_class,
                                                  replace=False) for c in range(10)]))
    if setting == "long_tail":
        train_idx = long_tailed_indices(train_all.labels, config.largest_class, config.imbalance_ratio, seed)
        train = SubsetSource(train_all, train_idx)
        test = SubsetSource(test_all, test_idx)
        train_y, test_y = train_all.labels[train_idx], test_all.labels[test_idx]
        rare_classes = np.argsort(np.bincount(train_y, minlength=10))[: config.rarest_classes]
        train_rare, test_rare = np.isin(train_y, rare_classes), np.isin(test_y, rare_classes)
    else:
        train_idx = np.sort(np.concatenate([rng.choice(np.flatnonzero(train_all.labels == c), config.per_class,
                                                       replace=False) for c in range(10)]))
        train_y, test_y = train_all.labels[train_idx], test_all.labels[test_idx]
        train_rare = np.zeros(len(train_idx), dtype=bool)
        for c in range(10):
            members = np.flatnonzero(train_y == c)
            train_rare[rng.choice(members, size=max(1, round(config.rare_fraction * len(members))), replace=False)] = True
        test_rare = np.zeros(len(test_idx), dtype=bool)
        for c in range(10):
            members = np.flatnonzero(test_y == c)
            test_rare[members[: len(members) // 2]] = True
        train = ConditionSource(SubsetSource(train_all, train_idx), train_rare)
        test = ConditionSource(SubsetSource(test_all, test_idx), test_rare)
    return {"setting": setting, "train_ids": train.sample_ids,
            "train_X": _embed(train, cache_dir, progress), "train_y": train_y, "train_rare": train_rare,
            "test_X": _embed(test, cache_dir, progress), "test_y": test_y, "test_rare": test_rare}


def rarity_signals(train_X: np.ndarray, config: ExperimentConfig, seed: int = 0) -> pd.DataFrame:
    """Label-free likelihoods of the training samples, one column per signal (all in (0, 1])."""
    coords = OpenTSNEReducer(random_state=seed).fit_transform(train_X)
    clustering = HDBSCANClusterer(min_cluster_size=config.min_cluster_size).fit(coords)
    signals = {f"cluster_{policy}": scaled_likelihood(clustering.labels, policy, coords) for policy in NOISE_POLICIES}
    # GLOSH outlier score in [0, 1]: 1 - score is how typical the sample is for its cluster.
    signals["hdbscan_outlier"] = np.clip(1.0 - clustering.outlier_scores, 1e-6, 1.0)
    signals["knn_density"] = knn_density_likelihood(train_X, k=10)
    table = pd.DataFrame(signals)
    table.attrs.update(n_clusters=int(clustering.labels.max() + 1), noise_fraction=float((clustering.labels < 0).mean()))
    return table


def signal_ranking(signals: pd.DataFrame, rare: np.ndarray) -> pd.DataFrame:
    """How well each signal finds the rare samples: mean likelihood of rare vs rest, and ROC AUC.

    AUC is that of ``1 - likelihood`` as a score for "rare": 0.5 is chance, 1.0 perfect.
    """
    rare = np.asarray(rare, dtype=bool)
    rows = []
    for name, likelihood in signals.items():
        rows.append({"signal": name, "mean_likelihood_rare": float(likelihood[rare].mean()),
                     "mean_likelihood_rest": float(likelihood[~rare].mean()),
                     "roc_auc": float(roc_auc_score(rare, 1.0 - likelihood))})
    return pd.DataFrame(rows)


#: arm name -> (signal for the GFL weight or None, eta, gamma, class-balanced?, sampler?)
ARMS = {
    "CE": (None, None, None, False, False),
    "CE x GFL(1, 5)": ("cluster_singleton", 1.0, 5.0, False, False),
    "CE x GFL(0.3, 2)": ("cluster_singleton", 0.3, 2.0, False, False),
    "CE x GFL(3, 5)": ("cluster_singleton", 3.0, 5.0, False, False),
    "CB": (None, None, None, True, False),
    "CB x GFL(1, 5)": ("cluster_singleton", 1.0, 5.0, True, False),
    "sampler GFL(1, 5)": ("cluster_singleton", 1.0, 5.0, False, True),
    "CE x GFL(1, 5) as_cluster": ("cluster_as_cluster", 1.0, 5.0, False, False),
    "CE x GFL(1, 5) nearest": ("cluster_nearest", 1.0, 5.0, False, False),
    "CE x GFL(1, 5) outlier": ("hdbscan_outlier", 1.0, 5.0, False, False),
    "CE x GFL(1, 5) knn": ("knn_density", 1.0, 5.0, False, False),
}


def train_arm(arm: str, data: dict, signals: pd.DataFrame, config: ExperimentConfig, seed: int) -> dict:
    """Train the MLP head with one arm's loss; return test metrics and the mean weight of rare/other."""
    signal, eta, gamma, class_balanced, use_sampler = ARMS[arm]
    torch.manual_seed(seed)
    X = torch.as_tensor(data["train_X"], dtype=torch.float32)
    y = torch.as_tensor(data["train_y"], dtype=torch.long)
    n = len(y)
    weights = np.ones(n) if signal is None else gfl_weight(signals[signal].to_numpy(), eta, gamma)
    if class_balanced:
        weights = weights * class_balanced_weights(np.bincount(data["train_y"], minlength=10).clip(min=1))[data["train_y"]]
    weights = weights / weights.mean()  # same loss scale in every arm, so one learning rate fits all
    sample_weights = torch.as_tensor(np.ones(n) if use_sampler else weights, dtype=torch.float32)
    model = torch.nn.Sequential(torch.nn.Linear(X.shape[1], config.hidden), torch.nn.ReLU(),
                                torch.nn.Linear(config.hidden, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    generator = torch.Generator().manual_seed(seed)
    sampler = weighted_sampler(weights, seed=seed) if use_sampler else None
    for _ in range(config.epochs):
        order = torch.as_tensor(list(sampler)) if sampler is not None else torch.randperm(n, generator=generator)
        for start in range(0, n, config.batch_size):
            batch = order[start:start + config.batch_size]
            losses = torch.nn.functional.cross_entropy(model(X[batch]), y[batch], reduction="none")
            loss = (losses * sample_weights[batch]).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.inference_mode():
        predicted = model(torch.as_tensor(data["test_X"], dtype=torch.float32)).argmax(1).numpy()
    correct = predicted == data["test_y"]
    rare = data["test_rare"]
    return {"arm": arm, "seed": seed, "accuracy": correct.mean(),
            "balanced_accuracy": balanced_accuracy_score(data["test_y"], predicted),
            "accuracy_rare": correct[rare].mean(), "accuracy_common": correct[~rare].mean(),
            "mean_weight_rare_train": float(weights[data["train_rare"]].mean()),
            "mean_weight_other_train": float(weights[~data["train_rare"]].mean())}


def run_experiment(config: ExperimentConfig | None = None, settings: Sequence[str] = SETTINGS,
                   arms: Sequence[str] | None = None, cache_dir=None, progress: bool = False) -> dict:
    """Run every arm x seed in every setting. Returns ``results`` (one row per run), ``ranking``
    (signal quality per setting), ``signals_info`` and ``seconds``.

    ``cache_dir`` is the embedding cache; None uses the workbook's own
    (``deqlib.paths.interim_dir() / "embeddings"``, shared with ``00_quickstart`` and
    ``deq embed``), so a second run embeds nothing. Training always runs: it is the measurement."""
    config = config or ExperimentConfig()
    if cache_dir is None:
        cache_dir = paths.interim_dir() / "embeddings"
    arms = list(arms or ARMS)
    started = time.perf_counter()
    results, rankings, info = [], [], []
    for setting in settings:
        data = prepare_setting(setting, config, cache_dir=cache_dir, progress=progress)
        signals = rarity_signals(data["train_X"], config)
        ranking = signal_ranking(signals, data["train_rare"])
        ranking.insert(0, "setting", setting)
        rankings.append(ranking)
        info.append({"setting": setting, "n_train": len(data["train_y"]), "n_test": len(data["test_y"]),
                     "n_rare_train": int(data["train_rare"].sum()), **signals.attrs})
        for arm in arms:
            for seed in config.seeds:
                row = train_arm(arm, data, signals, config, seed)
                results.append({"setting": setting, **row})
    return {"results": pd.DataFrame(results), "ranking": pd.concat(rankings, ignore_index=True),
            "signals_info": pd.DataFrame(info), "seconds": time.perf_counter() - started}


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds of every metric, per setting and arm (arm order kept)."""
    metrics = ["accuracy", "balanced_accuracy", "accuracy_rare", "accuracy_common"]
    table = results.groupby(["setting", "arm"], sort=False)[metrics].agg(["mean", "std"])
    table.columns = [f"{m}_{s}" for m, s in table.columns]
    return table.reset_index()


def plot_results(summary: pd.DataFrame, path: str | Path | None = None, parameters: dict | None = None):
    """Accuracy on the rare samples and overall balanced accuracy per arm (mean +- std over seeds)."""
    import matplotlib.pyplot as plt

    settings = list(dict.fromkeys(summary["setting"]))
    figure, axes = plt.subplots(1, len(settings), figsize=(7 * len(settings), 5), squeeze=False)
    for ax, setting in zip(axes[0], settings):
        part = summary[summary["setting"] == setting]
        position = np.arange(len(part))
        ax.barh(position - 0.2, part["accuracy_rare_mean"], 0.4, xerr=part["accuracy_rare_std"], label="rare samples")
        ax.barh(position + 0.2, part["balanced_accuracy_mean"], 0.4, xerr=part["balanced_accuracy_std"],
                label="balanced accuracy (all)")
        ax.set_yticks(position, part["arm"])
        ax.invert_yaxis()
        low = min(part["accuracy_rare_mean"].min(), part["balanced_accuracy_mean"].min())
        ax.set_xlim(max(0.0, low - 0.1), 1.0)
        ax.set_title({"long_tail": "Rare classes (long tail, ratio 100)",
                      "rare_condition": "Rare condition (5% inverted)"}.get(setting, setting))
        ax.set_xlabel("test accuracy (mean +- std over seeds)")
        ax.legend(loc="lower right")
    figure.tight_layout()
    if path is not None:
        from deqlib.plots.clusters import save_figure

        save_figure(figure, path, parameters or {})
    return figure
