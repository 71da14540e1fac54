"""The DatasetEquity Generalized Focal Loss weight (eq. 4) and the weighted reduction.

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
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

__all__ = ["gfl_weight", "weighted_loss", "DEFAULT_ETA", "DEFAULT_GAMMA"]

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
