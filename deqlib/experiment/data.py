"""Data: fixed pools of pre-embedded Fashion-MNIST images, each seed's own draw from them, and the
measurement that chose the rare condition (:func:`condition_separability`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from deqlib import paths
from deqlib.embed import embed_source
from deqlib.experiment.conditions import CONDITIONS, ConditionSource
from deqlib.experiment.config import ENCODER, RARE_CLASSES, ExperimentConfig
from deqlib.sources import FashionMNISTSource, ImageSource, SubsetSource

__all__ = ["embed_images", "source_pixels", "per_class_pool", "condition_separability", "long_tailed_sizes",
           "long_tailed_indices", "Pool", "build_pools", "draw_setting"]


def embed_images(source: ImageSource, cache_dir, progress: bool) -> np.ndarray:
    """Every image of ``source`` embedded with the experiment's encoder (cached); a failed image is an error."""
    result = embed_source(source, ENCODER, cache_dir=cache_dir, progress=progress)
    if len(result.sample_ids) != len(source):
        raise RuntimeError(f"{len(result.failures)} of {len(source)} images failed to embed; see {result.cache_path}")
    return result.vectors


def source_pixels(source: ImageSource) -> np.ndarray:
    """The images of ``source`` as one (N, 28, 28, 3) uint8 array."""
    return np.stack([np.asarray(source.load(i).convert("RGB"), dtype=np.uint8) for i in range(len(source))])


def per_class_pool(labels: np.ndarray, per_class: int, seed: int) -> list[np.ndarray]:
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
    pool = per_class_pool(train_all.labels, per_class, seed)
    n_rare = max(1, round(rare_fraction * per_class))
    index = np.concatenate(pool)
    rare = np.concatenate([np.arange(len(p)) < n_rare for p in pool])
    labels = train_all.labels[index]
    rows = []
    for condition in conditions or list(CONDITIONS):
        X = embed_images(ConditionSource(SubsetSource(train_all, index), rare, condition), cache_dir, progress)
        X = X / np.linalg.norm(X, axis=1, keepdims=True)
        _, neighbours = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X[rare])
        neighbours = neighbours[:, 1:]
        rows.append({"condition": condition, "knn_rare_purity": float(rare[neighbours].mean()),
                     "chance": float(rare.mean()),
                     "knn_same_class": float((labels[neighbours] == labels[rare][:, None]).mean()),
                     "knn_density_auc": float(roc_auc_score(rare, 1.0 - knn_density_likelihood(X, k=k))),
                     "n_images": len(index), "n_rare": int(rare.sum()), "k": k})
    return pd.DataFrame(rows).sort_values("knn_rare_purity", ascending=False, ignore_index=True)


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
    """Pre-embedded images: embeddings ``X``, pixels (N, 28, 28, 3) uint8, labels, the condition each image
    shows (``""`` for a plain one) and its base image (position in the Fashion-MNIST split, so a condition
    copy can be matched to its original)."""

    X: np.ndarray
    pixels: np.ndarray
    labels: np.ndarray
    condition: np.ndarray
    base: np.ndarray

    @property
    def modified(self) -> np.ndarray:
        """Whether each image shows a condition."""
        return self.condition != ""


def _pool(split_source: FashionMNISTSource, positions: np.ndarray, modified_positions: np.ndarray,
          conditions: Sequence[str], cache_dir, progress: bool) -> Pool:
    parts = [(SubsetSource(split_source, positions), positions, "")]
    if len(modified_positions):
        for condition in conditions:
            parts.append((ConditionSource(SubsetSource(split_source, modified_positions),
                                          np.ones(len(modified_positions), bool), condition),
                          modified_positions, condition))
    X, pixels, labels, shown, base = [], [], [], [], []
    for source, where, condition in parts:
        X.append(embed_images(source, cache_dir, progress))
        pixels.append(source_pixels(source))
        labels.append(split_source.labels[where])
        shown.append(np.full(len(where), condition, dtype=object))
        base.append(np.asarray(where))
    return Pool(*(np.concatenate(part) for part in (X, pixels, labels, shown, base)))


def build_pools(config: ExperimentConfig, cache_dir=None, progress: bool = False) -> dict[str, Pool]:
    """The training and test pools (``'train'``, ``'test'``), embedded once (cached) for every seed: the plain
    images and, for every condition of ``config.conditions``, the condition copies."""
    cache_dir = paths.interim_dir() / "embeddings" if cache_dir is None else cache_dir
    pools = {}
    for split, per_class, rare_per_class in (("train", config.pool_per_class, config.pool_rare_per_class),
                                             ("test", config.test_pool_per_class, config.test_pool_per_class)):
        source = FashionMNISTSource(split=split)
        chosen = per_class_pool(source.labels, per_class, config.pool_seed)
        positions = np.sort(np.concatenate(chosen))
        modified = np.sort(np.concatenate([c[:rare_per_class] for c in chosen]))
        pools[split] = _pool(source, positions, modified, config.conditions, cache_dir, progress)
    return pools


def draw_setting(pools: dict[str, Pool], setting: str, config: ExperimentConfig, seed: int) -> dict:
    """One seed's training and test sets for ``setting`` (positions in the pools, labels, rare flags).

    ``long_tail``: a random class order; the ``r``-th class keeps ``largest_class * ratio^(-r/9)``
    images; the rare classes are the last ``rarest_classes`` of the order. A condition (any other
    setting of ``config.settings``): ``per_class`` images per class, ``rare_fraction`` of them with the
    condition (never the same image twice); test: ``test_per_class`` per class, half with the condition.
    """
    if setting not in config.settings:
        raise ValueError(f"setting must be one of {config.settings}, got {setting!r}")
    rng = np.random.default_rng([seed, config.settings.index(setting)])
    train, test = pools["train"], pools["test"]
    plain_train = np.flatnonzero(~train.modified)
    plain_test = np.flatnonzero(~test.modified)
    test_idx = np.concatenate([rng.choice(plain_test[test.labels[plain_test] == c], config.test_per_class,
                                          replace=False) for c in range(10)])
    if setting == RARE_CLASSES:
        order = rng.permutation(10)
        sizes = long_tailed_sizes(10, config.largest_class, config.imbalance_ratio)
        train_idx = np.concatenate([rng.choice(plain_train[train.labels[plain_train] == c], n, replace=False)
                                    for c, n in zip(order, sizes)])
        rare_classes = order[-config.rarest_classes:]
        train_rare = np.isin(train.labels[train_idx], rare_classes)
        test_rare = np.isin(test.labels[test_idx], rare_classes)
        extra = {"class_order": " ".join(map(str, order)), "condition": ""}
    else:
        n_rare = max(1, round(config.rare_fraction * config.per_class))
        train_idx, train_rare = [], []
        for c in range(10):
            rare_pick = rng.choice(np.flatnonzero((train.condition == setting) & (train.labels == c)), n_rare,
                                   replace=False)
            taken = set(train.base[rare_pick])
            plain = [i for i in plain_train[train.labels[plain_train] == c] if train.base[i] not in taken]
            plain_pick = rng.choice(plain, config.per_class - n_rare, replace=False)
            train_idx += [rare_pick, plain_pick]
            train_rare += [np.ones(n_rare, bool), np.zeros(len(plain_pick), bool)]
        train_idx, train_rare = np.concatenate(train_idx), np.concatenate(train_rare)
        # Half of each class's test images shown with the condition: swap them for their condition copy.
        test_rare = np.zeros(len(test_idx), bool)
        shown = test.condition == setting
        copy_of = {b: i for i, b in zip(np.flatnonzero(shown), test.base[shown])}
        for c in range(10):
            members = np.flatnonzero(test.labels[test_idx] == c)
            flip = rng.choice(members, len(members) // 2, replace=False)
            test_idx[flip] = [copy_of[test.base[test_idx[i]]] for i in flip]
            test_rare[flip] = True
        extra = {"class_order": "", "condition": setting}
    return {"setting": setting, "seed": seed, "train_idx": train_idx, "train_y": train.labels[train_idx],
            "train_rare": train_rare, "test_idx": test_idx, "test_y": test.labels[test_idx], "test_rare": test_rare,
            **extra}
