"""Eq. 4, the DatasetEquity Generalized Focal Loss weight, and the weighted reduction."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deqlib.weights import gfl_weight, weighted_loss

probabilities = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
etas = st.floats(min_value=0.0, max_value=100.0, allow_nan=False)
gammas = st.floats(min_value=0.0, max_value=20.0, allow_nan=False)


def test_matches_equation_4_by_hand():
    # (1 + (1 - 0.5)^5) / 2 = (1 + 0.03125) / 2
    assert gfl_weight(0.5, eta=1.0, gamma=5.0) == pytest.approx(0.515625)
    # (0.3 + 0.8^2) / 1.3
    assert gfl_weight(0.2, eta=0.3, gamma=2.0) == pytest.approx((0.3 + 0.64) / 1.3)


@settings(max_examples=200, deadline=None)
@given(eta=etas, gamma=gammas)
def test_endpoints(eta, gamma):
    assert gfl_weight(0.0, eta, gamma) == pytest.approx(1.0)
    assert gfl_weight(1.0, eta, gamma) == pytest.approx(eta / (eta + 1.0) if gamma > 0 else 1.0)


@settings(max_examples=200, deadline=None)
@given(p1=probabilities, p2=probabilities, eta=etas, gamma=gammas)
def test_non_increasing_in_p(p1, p2, eta, gamma):
    low, high = sorted((p1, p2))
    assert gfl_weight(high, eta, gamma) <= gfl_weight(low, eta, gamma) + 1e-12


@settings(max_examples=200, deadline=None)
@given(p=probabilities, eta=etas, gamma=gammas)
def test_values_between_floor_and_one(p, eta, gamma):
    w = gfl_weight(p, eta, gamma)
    assert eta / (eta + 1.0) - 1e-12 <= w <= 1.0 + 1e-12


@settings(max_examples=200, deadline=None)
@given(p=probabilities, gamma=gammas)
def test_eta_zero_is_focal_factor(p, gamma):
    assert gfl_weight(p, 0.0, gamma) == pytest.approx((1.0 - p) ** gamma)


def test_numpy_float32_and_int_inputs():
    p32 = np.array([0.0, 0.25, 1.0], dtype=np.float32)
    w32 = gfl_weight(p32, 1.0, 2.0)
    assert w32.dtype == np.float32
    np.testing.assert_allclose(w32, [1.0, (1 + 0.5625) / 2, 0.5], rtol=1e-6)
    np.testing.assert_allclose(gfl_weight(np.array([0, 1]), 1.0, 2.0), [1.0, 0.5])
    assert isinstance(gfl_weight(0.5), float)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_torch_keeps_dtype_and_device(dtype):
    p = torch.tensor([0.0, 0.5, 1.0], dtype=dtype, device="cpu")
    w = gfl_weight(p, 1.0, 5.0)
    assert w.dtype == dtype and w.device == p.device
    torch.testing.assert_close(w.double(), torch.tensor([1.0, 0.515625, 0.5], dtype=torch.float64), atol=1e-2, rtol=0)


def test_torch_gradient_flows_through_p():
    p = torch.tensor([0.5], requires_grad=True)
    gfl_weight(p, eta=1.0, gamma=2.0).sum().backward()
    # d/dp (1 + (1-p)^2)/2 = -(1-p) = -0.5
    assert p.grad.item() == pytest.approx(-0.5)


@pytest.mark.parametrize("bad", [float("nan"), -0.1, 1.5])
def test_bad_p_raises_naming_the_value(bad):
    for value in (bad, np.array([0.2, bad]), torch.tensor([0.2, bad])):
        with pytest.raises(ValueError, match=r"\[0, 1\]") as info:
            gfl_weight(value)
        assert ("nan" in str(info.value)) if math.isnan(bad) else (str(bad) in str(info.value))


@pytest.mark.parametrize("name,kwargs", [("eta", {"eta": -1}), ("gamma", {"gamma": -0.5}),
                                         ("eta", {"eta": float("inf")}), ("gamma", {"gamma": float("nan")}),
                                         ("eta", {"eta": "1"})])
def test_bad_hyperparameters_raise(name, kwargs):
    with pytest.raises(ValueError, match=name):
        gfl_weight(0.5, **kwargs)


def test_weighted_loss_reductions():
    losses = torch.tensor([1.0, 2.0, 3.0, 4.0])
    weights = torch.tensor([1.0, 0.5, 0.0, 2.0])
    assert weighted_loss(losses, weights, "sum").item() == pytest.approx(1 + 1 + 0 + 8)
    assert weighted_loss(losses, weights, "mean").item() == pytest.approx(10 / 4)
    torch.testing.assert_close(weighted_loss(losses, weights, "none"), torch.tensor([1.0, 1.0, 0.0, 8.0]))
    # Unit weights give the plain reductions back.
    assert weighted_loss(losses, torch.ones(4)).item() == pytest.approx(losses.mean().item())


def test_weighted_loss_broadcasts_over_extra_dims_and_scales_gradients():
    logits = torch.zeros(2, 3, requires_grad=True)
    per_element = torch.nn.functional.mse_loss(logits, torch.ones(2, 3), reduction="none")  # (2, 3)
    loss = weighted_loss(per_element, np.array([1.0, 3.0]), "sum")
    loss.backward()
    # d/dx w*(x-1)^2 at x=0 is -2w: the second sample's gradient is 3x the first's.
    torch.testing.assert_close(logits.grad, torch.tensor([[-2.0] * 3, [-6.0] * 3]))


def test_weighted_loss_rejects_bad_input():
    with pytest.raises(ValueError, match="reduction='none'"):
        weighted_loss(torch.tensor(1.0), torch.ones(1))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        weighted_loss(torch.ones(3), torch.ones(2))
    with pytest.raises(ValueError, match="reduction"):
        weighted_loss(torch.ones(3), torch.ones(3), "avg")
    with pytest.raises(ValueError, match="finite"):
        weighted_loss(torch.ones(2), torch.tensor([1.0, float("nan")]))
