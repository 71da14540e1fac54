"""The DatasetEquity Generalized Focal Loss weight (eq. 4), a family of weights beyond its cap, and the
weighted reduction.

Which "Generalized Focal Loss"? This is the per-sample weight of Shrivastava et al.,
"DatasetEquity: Are All Samples Created Equal?" (ICCV 2023 workshop)::

    W(p, eta, gamma) = (eta + (1 - p) ** gamma) / (eta + 1)

where ``p`` is a sample's scaled likelihood (see :mod:`deqlib.likelihood`). It is
*not* the Generalized Focal Loss of Li et al. (NeurIPS 2020, "Generalized Focal Loss:
Learning Qualified and Distributed Bounding Boxes"), which mmdetection ships as
``GFocalLoss``/``QualityFocalLoss`` and which acts on classification scores.

Properties (tested with hypothesis): ``W(0) = 1``; ``W(1) = eta / (eta + 1)``; ``W`` is
non-increasing in ``p``; its values lie in ``[eta / (eta + 1), 1]``; with ``eta = 0`` it is
the focal modulating factor ``(1 - p) ** gamma`` of Lin et al. (2017), with ``p`` the
likelihood instead of the predicted probability. ``eta`` lifts the floor so that common
samples keep part of their loss; ``gamma`` sets how fast the weight falls as a sample
becomes common.

Eq. 4 caps the ratio between the rarest and the most common sample's weight at
``(eta + 1) / eta`` (2 at eta 1, 4.3 at eta 0.3), and gamma 5 flattens a moderate signal. The
registry :data:`WEIGHT_SCHEMES` holds eq. 4 and two label-free schemes that can go further, each
computed over the whole training set and normalised to **mean weight 1** over it (so the loss
scale, hence the effective learning rate, is the same for every scheme):

* ``"eq4"`` (:func:`eq4_weights`): eq. 4, divided by its mean. The paper's weight and the default
  (``--mode reference``; the forks' pickle carries only this one).
* ``"cluster-balanced"`` (:func:`cluster_balanced_weights`): Cui et al.'s class-balanced weight with
  the signal's groups in place of classes: ``|C|^-alpha``, or ``1 / E(|C|)`` with the effective number
  ``E(n) = (1 - beta^n) / (1 - beta)``, capped at ``max_ratio`` times the most common sample's weight.
* ``"rank"`` (:func:`rank_weights`): the weight from the sample's rarity rank,
  ``max_ratio ** (u ** power)`` with ``u`` the share of the other samples that are more common, so a
  moderate signal (AUC 0.7) still moves the weight and ties keep equal weights.

:func:`scheme_weights` computes any of them by name; :func:`weight_scheme_record` is what banks and
training runs record (``{"scheme": name, "params": {...}}``, every parameter with its value).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import inspect

import numpy as np

from deqlib.registry import Registry

__all__ = ["gfl_weight", "weighted_loss", "DEFAULT_ETA", "DEFAULT_GAMMA", "WEIGHT_SCHEMES", "DEFAULT_WEIGHT_SCHEME",
           "eq4_weights", "cluster_balanced_weights", "rank_weights", "scheme_weights", "weight_scheme_record",
           "weight_ratio"]

#: The paper's KITTI setting (Table 3): eta = 1.0, gamma = 5.0.
DEFAULT_ETA = 1.0
DEFAULT_GAMMA = 5.0


def _check_hyperparameter(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number >= 0, got {value!r}")
    value = float(value)
    if math.isnan(value) or math.isinf(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def _is_torch_tensor(value: Any) -> bool:
    # Avoid importing torch for float / numpy callers: it is slow to import.
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


def _first_bad_value(values: np.ndarray) -> float | None:
    bad = ~((values >= 0) & (values <= 1))  # NaN fails both comparisons
    if bad.any():
        return float(values[np.argmax(bad)])
    return None


def gfl_weight(p, eta: float = DEFAULT_ETA, gamma: float = DEFAULT_GAMMA):
    """Generalized Focal Loss weight of DatasetEquity, eq. 4.

    Parameters
    ----------
    p : float, numpy.ndarray or torch.Tensor
        Scaled likelihood(s) in ``[0, 1]`` (``cluster_size / largest_cluster_size``).
    eta : float, default=1.0
        Floor of the weight, ``>= 0``. ``eta = 0`` gives the focal factor ``(1 - p) ** gamma``;
        large ``eta`` flattens the weight towards 1 for every sample.
    gamma : float, default=5.0
        Focusing exponent, ``>= 0``. ``gamma = 0`` gives weight 1 for every sample.

    Returns
    -------
    Same kind as ``p``: a Python float for a real number, a float64 array for numpy input
    (float32 kept), and for a tensor a tensor of the same dtype (floating) and device.

    Raises
    ------
    ValueError
        If ``eta`` or ``gamma`` is negative or not finite, or any ``p`` is NaN or outside
        ``[0, 1]``; the message names the offending value.

    Examples
    --------
    >>> gfl_weight(0.0, eta=1.0, gamma=5.0)
    1.0
    >>> gfl_weight(1.0, eta=1.0, gamma=5.0)
    0.5
    """
    eta = _check_hyperparameter("eta", eta)
    gamma = _check_hyperparameter("gamma", gamma)

    if _is_torch_tensor(p):
        import torch

        if not torch.is_floating_point(p):
            p = p.to(torch.get_default_dtype())
        values = p.detach()
        bad = ~((values >= 0) & (values <= 1))
        if bool(bad.any()):
            raise ValueError(
                f"likelihood p must lie in [0, 1]; got {float(values[bad].flatten()[0])!r}"
            )
        return (eta + torch.pow(1.0 - p, gamma)) / (eta + 1.0)

    if isinstance(p, numbers.Real) and not isinstance(p, bool):
        value = float(p)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"likelihood p must lie in [0, 1]; got {value!r}")
        return (eta + (1.0 - value) ** gamma) / (eta + 1.0)

    array = np.asarray(p)
    if array.dtype == bool or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"likelihood p must be numeric, got dtype {array.dtype}")
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    bad_value = _first_bad_value(array)
    if bad_value is not None:
        raise ValueError(f"likelihood p must lie in [0, 1]; got {bad_value!r}")
    return (eta + np.power(1.0 - array, gamma)) / (eta + 1.0)


def weighted_loss(per_sample_loss, weights, reduction: str = "mean"):
    """Multiply per-sample losses by their weights and reduce.

    The one-line change to a training loop::

        loss = weighted_loss(criterion(outputs, targets), gfl_weight(likelihoods))

    where ``criterion`` was built with ``reduction='none'``.

    Parameters
    ----------
    per_sample_loss : torch.Tensor, shape (B,) or (B, ...)
        Unreduced losses, one row per sample. Extra dimensions (e.g. per-pixel) are kept
        and each sample's weight broadcasts over them.
    weights : torch.Tensor or array-like, shape (B,)
        One weight per sample; moved to the loss's device and dtype. Weights are treated
        as constants (no gradient flows into them).
    reduction : {'mean', 'sum', 'none'}, default='mean'
        ``'mean'`` divides the weighted sum by the number of loss elements (as
        ``torch.nn`` losses do), so a weight of 1 everywhere gives the plain mean.

    Returns
    -------
    torch.Tensor
        A scalar for ``'mean'``/``'sum'``, the weighted losses for ``'none'``.
    """
    import torch

    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if not isinstance(per_sample_loss, torch.Tensor):
        raise ValueError("per_sample_loss must be a torch.Tensor (build the criterion with reduction='none')")
    if per_sample_loss.dim() == 0:
        raise ValueError(
            "per_sample_loss is a scalar: build the criterion with reduction='none' so each sample keeps its loss"
        )
    weights = torch.as_tensor(weights, device=per_sample_loss.device)
    weights = weights.to(per_sample_loss.dtype).detach()
    if weights.dim() != 1 or weights.shape[0] != per_sample_loss.shape[0]:
        raise ValueError(
            f"weights must have shape ({per_sample_loss.shape[0]},) to match the batch, got {tuple(weights.shape)}"
        )
    if not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()):
        raise ValueError("weights must be finite and >= 0")
    weights = weights.reshape((-1,) + (1,) * (per_sample_loss.dim() - 1))
    weighted = per_sample_loss * weights
    if reduction == "none":
        return weighted
    if reduction == "sum":
        return weighted.sum()
    return weighted.mean()


# --------------------------------------------------------------------------------------------------
# The weight family: set-level schemes, each normalised to mean 1 over the training set
#: Weight schemes by name; the first (``eq4``) is the default.
WEIGHT_SCHEMES = Registry("weight scheme")
DEFAULT_WEIGHT_SCHEME = "eq4"
DEFAULT_MAX_RATIO = 10.0


def _likelihood_array(p, scheme: str, positive: bool = False) -> np.ndarray:
    """A 1-D float64 copy of ``p`` (numpy, list or torch tensor), checked to lie in [0, 1] ((0, 1] if positive)."""
    values = p.detach().cpu().double().numpy() if _is_torch_tensor(p) else np.asarray(p)
    if values.dtype == bool or not np.issubdtype(values.dtype, np.number):
        raise ValueError(f"the {scheme} weight needs numeric likelihoods, got dtype {values.dtype}")
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"the {scheme} weight is computed over a training set: pass the likelihoods of every "
                         f"training sample as one non-empty 1-D array, got shape {values.shape}")
    bad_value = _first_bad_value(values)
    if bad_value is not None:
        raise ValueError(f"likelihood p must lie in [0, 1]; got {bad_value!r}")
    if positive and (values == 0).any():
        raise ValueError(f"the {scheme} weight reads a likelihood as a relative group size and needs p > 0; got 0. "
                         "Registered rarity signals give p in (0, 1]; pass groups= to count group sizes instead")
    return values


def _same_kind(weights: np.ndarray, like):
    """``weights`` as the kind of ``like``: a tensor of its floating dtype and device, else a float64 array."""
    if _is_torch_tensor(like):
        import torch

        dtype = like.dtype if torch.is_floating_point(like) else torch.get_default_dtype()
        return torch.as_tensor(weights, device=like.device).to(dtype)
    return weights


def _check_ratio(max_ratio) -> float:
    value = _check_hyperparameter("max_ratio", max_ratio)
    if value < 1.0:
        raise ValueError(f"max_ratio (the largest weight over the smallest) must be >= 1, got {max_ratio!r}")
    return value


def _mean_one(weights: np.ndarray) -> np.ndarray:
    return weights / weights.mean()


@WEIGHT_SCHEMES.register("eq4", aliases=("gfl", "eq-4"),
                         summary="eq. 4 of DatasetEquity, (eta + (1 - p)^gamma) / (eta + 1), over its mean; "
                                 "ratio at most (eta + 1) / eta")
def eq4_weights(p, eta: float = DEFAULT_ETA, gamma: float = DEFAULT_GAMMA):
    """Eq. 4 (:func:`gfl_weight`) normalised to mean 1 over the training set.

    Parameters
    ----------
    p : numpy.ndarray or torch.Tensor, shape (N,)
        The likelihood of every training sample, in ``[0, 1]``.
    eta, gamma : float
        As in :func:`gfl_weight`. The largest weight over the smallest is at most ``(eta + 1) / eta``.

    Returns
    -------
    Same kind as ``p`` (a tensor keeps its floating dtype and device): weights with mean 1.
    """
    if not _is_torch_tensor(p):
        p = _likelihood_array(p, "eq4")
    elif p.dim() != 1 or p.numel() == 0:
        raise ValueError(f"the eq4 weight is computed over a training set: pass a non-empty 1-D tensor, "
                         f"got shape {tuple(p.shape)}")
    weights = gfl_weight(p, eta, gamma)
    return weights / weights.mean()


@WEIGHT_SCHEMES.register("cluster-balanced", aliases=("cb",),
                         summary="Cui et al.'s class-balanced weight over the signal's groups (|C|^-alpha or the "
                                 "effective number), capped at max_ratio")
def cluster_balanced_weights(p, alpha: float = 1.0, beta: float | None = None, max_ratio: float = DEFAULT_MAX_RATIO,
                             groups=None):
    """Cui et al.'s class-balanced weight with the rarity signal's groups in place of classes.

    A sample in a group of size ``n`` gets ``n ** -alpha`` (``beta`` None) or ``(1 - beta) / (1 - beta ** n)``
    (the inverse effective number, Cui et al., CVPR 2019), capped at ``max_ratio`` times the smallest
    weight (the largest group's), then the whole set is divided by its mean weight.

    Which groups: with ``groups`` (one id per sample: cluster ids after the noise policy, class ids,
    a rare flag) the sizes are counted. Without, each sample's likelihood is read as its group's
    relative size, which is what eq. 3 says for a cluster signal (``p = |C| / |C_max|``, so ``p^-alpha``
    is ``|C|^-alpha`` up to a constant): for a cluster-based signal this equals counting its clusters,
    and for a non-cluster signal (k-NN density, a consensus mean) the likelihood is the implied
    relative size of the sample's neighbourhood. (Equal-count likelihood quantile bins were
    considered and rejected: every bin has the same size, so they would give every sample weight 1.)

    Parameters
    ----------
    p : numpy.ndarray or torch.Tensor, shape (N,)
        The likelihood of every training sample, in ``(0, 1]`` (``[0, 1]`` with ``groups``).
    alpha : float, default=1.0
        Exponent of the inverse group size (1: inverse frequency; 0: no re-weighting).
    beta : float in [0, 1), optional
        Use the effective number instead of ``n ** -alpha``; needs ``groups`` (absolute sizes).
    max_ratio : float >= 1, default=10.0
        The largest weight over the smallest, at most. 1 gives weight 1 everywhere.
    groups : array-like, shape (N,), optional
        Group id per sample.

    Returns
    -------
    Same kind as ``p``: weights with mean 1, non-increasing in the group size (in ``p`` without
    ``groups``), largest / smallest <= ``max_ratio``.

    Examples
    --------
    >>> cluster_balanced_weights([1.0, 1.0, 1.0, 1 / 3], max_ratio=10.0).round(4).tolist()
    [0.6667, 0.6667, 0.6667, 2.0]
    >>> cluster_balanced_weights([1.0, 1.0, 1.0, 1 / 3], max_ratio=2.0).round(4).tolist()
    [0.8, 0.8, 0.8, 1.6]
    """
    values = _likelihood_array(p, "cluster-balanced", positive=groups is None)
    alpha = _check_hyperparameter("alpha", alpha)
    max_ratio = _check_ratio(max_ratio)
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != values.shape:
            raise ValueError(f"groups must hold one id per sample, shape {values.shape}, got {groups.shape}")
        _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
        sizes = counts[inverse.reshape(-1)].astype(np.float64)
    else:
        sizes = values
    if beta is None:
        raw = np.power(sizes, -alpha)
    else:
        if groups is None:
            raise ValueError("beta (the effective number) needs absolute group sizes: pass groups=, "
                             "or use alpha (relative sizes) with a likelihood alone")
        if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not 0.0 <= float(beta) < 1.0:
            raise ValueError(f"beta must lie in [0, 1), got {beta!r}")
        beta = float(beta)
        raw = (1.0 - beta) / (1.0 - np.power(beta, sizes)) if beta > 0 else np.ones_like(sizes)
    raw = np.minimum(raw, raw.min() * max_ratio)
    return _same_kind(_mean_one(raw), p)


@WEIGHT_SCHEMES.register("rank", summary="max_ratio ** (u ** power), u = the share of other samples more common: "
                                         "a moderate signal still moves the weight")
def rank_weights(p, max_ratio: float = DEFAULT_MAX_RATIO, power: float = 1.0):
    """A weight from each sample's rarity rank, so only the order of the likelihoods matters.

    ``u_i`` is the share of the other samples whose likelihood is higher (more common) than sample
    ``i``'s: 0 for the most common, 1 for a unique rarest one; ties share it. The weight is
    ``max_ratio ** (u_i ** power)`` (from 1 to ``max_ratio``, geometric in ``u`` at ``power`` 1;
    ``power`` > 1 keeps more of the increase for the rarest), divided by its mean.

    Parameters
    ----------
    p : numpy.ndarray or torch.Tensor, shape (N,)
        The likelihood of every training sample, in ``[0, 1]``.
    max_ratio : float >= 1, default=10.0
        The largest weight over the smallest, at most (reached when the rarest sample is unique).
    power : float > 0, default=1.0

    Returns
    -------
    Same kind as ``p``: weights with mean 1, non-increasing in ``p``, largest / smallest <= ``max_ratio``.

    Examples
    --------
    >>> rank_weights([1.0, 1.0, 0.5, 0.25], max_ratio=4.0).round(4).tolist()  # u = 0, 0, 2/3, 1
    [0.4695, 0.4695, 1.183, 1.878]
    """
    values = _likelihood_array(p, "rank")
    max_ratio = _check_ratio(max_ratio)
    power = _check_hyperparameter("power", power)
    if power == 0:
        raise ValueError("power must be > 0 (0 would give every sample the largest weight)")
    ordered = np.sort(values)
    more_common = values.size - np.searchsorted(ordered, values, side="right")
    u = more_common / max(values.size - 1, 1)
    return _same_kind(_mean_one(np.power(max_ratio, np.power(u, power))), p)


def _scheme_parameters(scheme: str) -> dict:
    """The tunable parameters of a registered scheme and their defaults (everything after ``p`` but ``groups``)."""
    signature = inspect.signature(WEIGHT_SCHEMES.entry(scheme).factory)
    return {name: parameter.default for name, parameter in list(signature.parameters.items())[1:]
            if name != "groups"}


def weight_scheme_record(scheme: str = DEFAULT_WEIGHT_SCHEME, **params) -> dict:
    """What a bank or a training run records for a weight: ``{"scheme": name, "params": {...}}``.

    Every tunable parameter is written with its value (defaults filled in), so the record alone
    recomputes the weights. Unknown names and parameters raise ``ValueError`` listing the choices.
    """
    name = WEIGHT_SCHEMES.resolve(scheme)
    known = _scheme_parameters(name)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(f"the weight scheme {name!r} has no parameter(s) {unknown}; its parameters are "
                         f"{sorted(known)}")
    merged = {**known, **params}
    return {"scheme": name, "params": {k: (float(v) if isinstance(v, numbers.Real) and not isinstance(v, bool)
                                           else v) for k, v in merged.items()}}


def scheme_weights(scheme: str, p, groups=None, **params):
    """The weights of the registered scheme ``scheme`` for every training sample, mean 1.

    The one-line use in a loop is unchanged: compute the training set's weights once, then
    ``loss = weighted_loss(criterion(outputs, targets), weights[batch_positions])``.

    Parameters
    ----------
    scheme : str
        A :data:`WEIGHT_SCHEMES` name (``'eq4'``, ``'cluster-balanced'``, ``'rank'``).
    p : numpy.ndarray or torch.Tensor, shape (N,)
        The likelihood of every training sample.
    groups : array-like, optional
        Group ids, for ``'cluster-balanced'`` only.
    **params
        The scheme's parameters (:func:`weight_scheme_record` lists them).
    """
    record = weight_scheme_record(scheme, **params)
    factory = WEIGHT_SCHEMES.entry(record["scheme"]).factory
    if groups is not None:
        if "groups" not in inspect.signature(factory).parameters:
            raise ValueError(f"the weight scheme {record['scheme']!r} takes no groups; only 'cluster-balanced' does")
        return factory(p, groups=groups, **params)
    return factory(p, **params)


def weight_ratio(weights, rare) -> float:
    """Mean weight of the ``rare`` samples over the mean weight of the others (the realised ratio)."""
    weights = np.asarray(weights.detach().cpu() if _is_torch_tensor(weights) else weights, dtype=np.float64)
    rare = np.asarray(rare, dtype=bool)
    if rare.shape != weights.shape or rare.all() or not rare.any():
        raise ValueError("rare must be one flag per weight, with at least one rare and one other sample")
    return float(weights[rare].mean() / weights[~rare].mean())
