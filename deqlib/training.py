"""Training with the DatasetEquity weight: one line in a PyTorch loop.

::

    bank = load_bank("data/processed/kitti_...parquet")         # or the official .pkl
    criterion = GFLWeightedLoss(nn.CrossEntropyLoss(reduction="none"), bank, eta=1.0, gamma=5.0)
    loss = criterion(logits, targets, sample_ids)                 # the only change in the loop

Each sample's loss is multiplied by ``W(p, eta, gamma) = (eta + (1 - p)^gamma) / (eta + 1)`` with
``p`` its scaled likelihood from the bank (eq. 3-4 of DatasetEquity; not Li et al.'s 2020
Generalized Focal Loss), or by another scheme of :data:`deqlib.weights.WEIGHT_SCHEMES`::

    criterion = GFLWeightedLoss(nn.CrossEntropyLoss(reduction="none"), bank, scheme="rank",
                                scheme_params={"max_ratio": 10.0})

A set-level scheme (``cluster-balanced``, ``rank``) is computed once over every bank sample (the
training set) and normalised to mean 1 there; eq. 4 (the default) stays the paper's per-sample
formula, not normalised, as the forks compute it. :func:`weighted_sampler` is a *different* method offered for comparison:
it changes how often samples are drawn instead of how much their loss counts.
:func:`class_balanced_weights` is the label-based class-balanced loss of Cui et al. (CVPR 2019).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from deqlib.bank import LikelihoodBank, import_official_pickle, read_bank
from deqlib.weights import (DEFAULT_ETA, DEFAULT_GAMMA, DEFAULT_WEIGHT_SCHEME, WEIGHT_SCHEMES, gfl_weight,
                            scheme_weights, weight_scheme_record, weighted_loss)

__all__ = ["load_bank", "BankLookup", "GFLWeightedLoss", "weighted_sampler", "class_balanced_weights"]


def load_bank(path: str | Path, key_listing=None, images=None) -> LikelihoodBank:
    """A bank from our Parquet file or from the official forks' pickle (read safely).

    Official pickles with numpy integer values load as they are (their numbers are rebuilt from
    validated bytes, see :func:`deqlib.bank.import_official_pickle`); ``key_listing`` (a listing
    recorded by :func:`deqlib.bank.record_key_listing`) maps the official Waymo pickle's integer
    keys to file names, each verified against the files in ``images``.
    """
    path = Path(path)
    if path.suffix == ".pkl":
        return import_official_pickle(path, key_listing=key_listing, images=images)
    if key_listing is not None or images is not None:
        raise ValueError(f"key_listing is for official pickles with integer keys; {path} is a Parquet bank")
    return read_bank(path)


class BankLookup:
    """Likelihoods and weights of a batch, looked up by sample id.

    Parameters
    ----------
    bank : LikelihoodBank or path
    eta, gamma : float
        Parameters of eq. 4 (default: the paper's KITTI setting 1.0 / 5.0).
    default_likelihood : float or None, default=None
        Likelihood for ids not in the bank. ``None`` raises ``KeyError`` naming them (the safe
        default: a bank that misses training samples is a bug). The DD3D fork gives samples of
        non-training splits weight 1 by not weighting them; ``default_likelihood=0.0`` gives
        weight 1 too. Eq. 4 only: a set-level scheme weighs the bank's samples only.
    scheme : str, default='eq4'
        A :data:`deqlib.weights.WEIGHT_SCHEMES` name. ``'eq4'`` uses ``eta`` and ``gamma`` per batch
        (the paper's weight, not normalised); ``'cluster-balanced'`` and ``'rank'`` are computed once
        over every bank sample with ``scheme_params`` and normalised to mean 1 over the bank.
    scheme_params : dict, optional
        The set-level scheme's parameters (e.g. ``{"max_ratio": 10.0}``); for eq. 4 use ``eta``, ``gamma``.

    Attributes
    ----------
    scheme_record : dict
        ``{"scheme": name, "params": {...}}`` (:func:`deqlib.weights.weight_scheme_record`), what a
        training run should record beside the bank's own metadata.
    """

    def __init__(self, bank, eta: float = DEFAULT_ETA, gamma: float = DEFAULT_GAMMA,
                 default_likelihood: float | None = None, scheme: str = DEFAULT_WEIGHT_SCHEME,
                 scheme_params: dict | None = None):
        self.bank = bank if isinstance(bank, LikelihoodBank) else load_bank(bank)
        gfl_weight(0.5, eta, gamma)  # validates eta and gamma now, not at the first batch
        if default_likelihood is not None and not 0.0 <= default_likelihood <= 1.0:
            raise ValueError(f"default_likelihood must lie in [0, 1] or be None, got {default_likelihood!r}")
        self.eta, self.gamma, self.default_likelihood = float(eta), float(gamma), default_likelihood
        self.scheme = WEIGHT_SCHEMES.resolve(scheme)
        scheme_params = dict(scheme_params or {})
        table = self.bank.table
        self._index = {sid: i for i, sid in enumerate(table["sample_id"])}
        self._likelihood = torch.tensor(table["likelihood"].to_numpy(dtype=np.float32))  # a copy: Parquet arrays are read-only
        self._set_weights = None
        if self.scheme == "eq4":
            if scheme_params:
                raise ValueError("eq. 4 takes eta= and gamma= directly; scheme_params is for 'cluster-balanced' "
                                 "and 'rank'")
            self.scheme_record = {"scheme": "eq4", "params": {"eta": self.eta, "gamma": self.gamma},
                                  "normalised": False}
        else:
            if default_likelihood is not None:
                raise ValueError(f"default_likelihood is for eq. 4 (a per-sample formula); the {self.scheme!r} "
                                 "weight is computed over the bank's samples, so every training sample must be in "
                                 "the bank: rebuild the bank on the training split")
            self.scheme_record = {**weight_scheme_record(self.scheme, **scheme_params), "normalised": True}
            self._set_weights = torch.as_tensor(
                scheme_weights(self.scheme, table["likelihood"].to_numpy(dtype=np.float64), **scheme_params),
                dtype=torch.float32)

    def likelihood(self, sample_ids: Sequence, device=None) -> torch.Tensor:
        """Scaled likelihoods of ``sample_ids`` as a float32 tensor on ``device`` (one id as a
        string gives a tensor of one)."""
        ids = [sample_ids] if isinstance(sample_ids, str) else [str(s) for s in sample_ids]
        positions = [self._index.get(s, -1) for s in ids]
        missing = [s for s, p in zip(ids, positions) if p < 0]
        if missing and self.default_likelihood is None:
            raise KeyError(f"{len(missing)} sample id(s) of the batch are not in the bank, e.g. {missing[:3]}; "
                           "rebuild the bank on the training split, or pass default_likelihood=")
        index = torch.as_tensor([max(p, 0) for p in positions])
        values = self._likelihood[index]
        if missing:
            values[torch.as_tensor([p < 0 for p in positions])] = float(self.default_likelihood)
        return values.to(device) if device is not None else values

    def weights(self, sample_ids: Sequence, device=None) -> torch.Tensor:
        """The weights of ``sample_ids`` (eq. 4, or the set-level scheme's) as a float32 tensor on ``device``."""
        if self._set_weights is None:
            return gfl_weight(self.likelihood(sample_ids, device), self.eta, self.gamma)
        ids = [sample_ids] if isinstance(sample_ids, str) else [str(s) for s in sample_ids]
        positions = [self._index.get(s, -1) for s in ids]
        missing = [s for s, p in zip(ids, positions) if p < 0]
        if missing:
            raise KeyError(f"{len(missing)} sample id(s) of the batch are not in the bank, e.g. {missing[:3]}; "
                           f"the {self.scheme!r} weight covers the bank's samples only: rebuild the bank on the "
                           "training split")
        values = self._set_weights[torch.as_tensor(positions)]
        return values.to(device) if device is not None else values

    def all_weights(self) -> np.ndarray:
        """Weights of every bank sample, in bank order."""
        if self._set_weights is not None:
            return self._set_weights.numpy().astype(np.float64)
        return gfl_weight(self.bank.table["likelihood"].to_numpy(), self.eta, self.gamma)


class GFLWeightedLoss(nn.Module):
    """Wrap a per-sample loss so each sample's loss is weighted by its DatasetEquity weight.

    Parameters
    ----------
    criterion : nn.Module or callable
        Must return one loss per sample (e.g. ``nn.CrossEntropyLoss(reduction='none')``).
    bank : LikelihoodBank, BankLookup or path
    eta, gamma, default_likelihood, scheme, scheme_params
        See :class:`BankLookup` (``scheme='rank'`` or ``'cluster-balanced'`` with ``scheme_params`` picks
        a weight of :data:`deqlib.weights.WEIGHT_SCHEMES` other than eq. 4).
    reduction : {'mean', 'sum', 'none'}, default='mean'
    """

    def __init__(self, criterion, bank, eta: float = DEFAULT_ETA, gamma: float = DEFAULT_GAMMA,
                 reduction: str = "mean", default_likelihood: float | None = None,
                 scheme: str = DEFAULT_WEIGHT_SCHEME, scheme_params: dict | None = None):
        super().__init__()
        if getattr(criterion, "reduction", "none") != "none":
            raise ValueError(f"criterion reduces its losses ({criterion.reduction!r}); build it with reduction='none'")
        self.criterion = criterion
        self.lookup = bank if isinstance(bank, BankLookup) else BankLookup(bank, eta, gamma, default_likelihood,
                                                                           scheme, scheme_params)
        self.reduction = reduction

    def forward(self, outputs, targets, sample_ids) -> torch.Tensor:
        losses = self.criterion(outputs, targets)
        return weighted_loss(losses, self.lookup.weights(sample_ids, losses.device), self.reduction)


def weighted_sampler(weights, num_samples: int | None = None, replacement: bool = True, seed: int | None = 0):
    """``torch.utils.data.WeightedRandomSampler`` drawing samples in proportion to ``weights``.

    Not the paper's method: the paper keeps the data order and scales each loss; a sampler
    instead shows rare samples more often (with replacement, so repeats).
    """
    weights = torch.as_tensor(np.asarray(weights, dtype=np.float64))
    if weights.dim() != 1 or len(weights) == 0 or not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()):
        raise ValueError("weights must be a non-empty 1-D array of finite values >= 0")
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return torch.utils.data.WeightedRandomSampler(weights, num_samples or len(weights), replacement=replacement,
                                                  generator=generator)


def class_balanced_weights(class_counts, beta: float = 0.999) -> np.ndarray:
    """Class-balanced loss weights of Cui et al. (CVPR 2019), from the effective number of samples.

    ``w_c = (1 - beta) / (1 - beta ** n_c)``, normalised so the weights sum to the number of
    classes. Label-based: it needs class counts, unlike the DatasetEquity weight.
    """
    counts = np.asarray(class_counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0 or (counts < 1).any():
        raise ValueError("class_counts must be a 1-D array of counts >= 1")
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must lie in [0, 1), got {beta!r}")
    effective_number = (1.0 - np.power(beta, counts)) / (1.0 - beta) if beta > 0 else np.ones_like(counts)
    weights = 1.0 / effective_number
    return weights / weights.sum() * counts.size
