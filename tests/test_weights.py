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


# --------------------------------------------------------------------------------------------------
# The weight family (WEIGHT_SCHEMES): known inputs -> known weights, mean 1, cap, monotone, torch = numpy
from deqlib.weights import (WEIGHT_SCHEMES, cluster_balanced_weights, eq4_weights, rank_weights, scheme_weights,
                            weight_ratio, weight_scheme_record)

likelihood_sets = st.lists(st.floats(min_value=0.001, max_value=1.0, allow_nan=False), min_size=2, max_size=60)


def test_registry_holds_the_three_schemes_with_eq4_first():
    assert WEIGHT_SCHEMES.names() == ("eq4", "cluster-balanced", "rank")
    assert WEIGHT_SCHEMES.resolve("gfl") == "eq4" and WEIGHT_SCHEMES.resolve("cb") == "cluster-balanced"
    with pytest.raises(ValueError, match="choose one of eq4, cluster-balanced, rank"):
        scheme_weights("focal", [0.5, 1.0])


def test_eq4_scheme_is_equation_4_over_its_mean():
    p = np.array([1.0, 1.0, 1.0, 0.0])
    # raw eq. 4 at (1, 5): 0.5, 0.5, 0.5, 1.0 -> mean 0.625 -> 0.8, 0.8, 0.8, 1.6
    np.testing.assert_allclose(eq4_weights(p, 1.0, 5.0), [0.8, 0.8, 0.8, 1.6])
    np.testing.assert_allclose(scheme_weights("eq4", p, eta=0.3, gamma=5.0),
                               gfl_weight(p, 0.3, 5.0) / gfl_weight(p, 0.3, 5.0).mean())
    assert weight_ratio(eq4_weights(p, 0.3, 5.0), p == 0) == pytest.approx(1.3 / 0.3)  # the cap (eta + 1) / eta


def test_cluster_balanced_known_weights_cap_and_effective_number():
    # groups of 3 and 1: |C|^-1 = 1/3, 1/3, 1/3, 1 -> mean 1/2 -> 2/3, 2/3, 2/3, 2
    np.testing.assert_allclose(cluster_balanced_weights(np.ones(4), groups=[0, 0, 0, 1]), [2 / 3] * 3 + [2.0])
    # the same from the likelihood alone (eq. 3: p = |C| / |C_max| = 1, 1, 1, 1/3)
    np.testing.assert_allclose(cluster_balanced_weights([1.0, 1.0, 1.0, 1 / 3]), [2 / 3] * 3 + [2.0])
    # cap 2: 1/3, 1/3, 1/3, min(1, 2/3) -> 1, 1, 1, 2 over mean 1.25
    np.testing.assert_allclose(cluster_balanced_weights([1.0, 1.0, 1.0, 1 / 3], max_ratio=2.0), [0.8] * 3 + [1.6])
    # alpha 0.5: sqrt sizes: 3^-0.5 vs 1 -> ratio sqrt(3)
    w = cluster_balanced_weights(np.ones(4), alpha=0.5, groups=["a", "a", "a", "b"])
    assert w[3] / w[0] == pytest.approx(np.sqrt(3))
    # effective number (Cui et al.), beta 0.9: E(3) = (1 - 0.729) / 0.1 = 2.71, E(1) = 1 -> ratio 2.71
    w = cluster_balanced_weights(np.ones(4), beta=0.9, groups=[0, 0, 0, 1])
    assert w[3] / w[0] == pytest.approx(2.71) and w.mean() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="pass groups="):
        cluster_balanced_weights([0.5, 1.0], beta=0.9)
    with pytest.raises(ValueError, match="p > 0"):
        cluster_balanced_weights([0.0, 1.0])
    with pytest.raises(ValueError, match="max_ratio"):
        cluster_balanced_weights([0.5, 1.0], max_ratio=0.5)
    with pytest.raises(ValueError, match="one id per sample"):
        cluster_balanced_weights([0.5, 1.0], groups=[1, 2, 3])


def test_rank_known_weights_and_ties():
    # u = share of the others more common: 0, 0, 2/3, 1 -> 4^u = 1, 1, 4^(2/3), 4
    raw = np.array([1.0, 1.0, 4 ** (2 / 3), 4.0])
    np.testing.assert_allclose(rank_weights([1.0, 1.0, 0.5, 0.25], max_ratio=4.0), raw / raw.mean())
    # power 2: u^2 = 0, 0, 4/9, 1
    raw = np.array([1.0, 1.0, 4 ** (4 / 9), 4.0])
    np.testing.assert_allclose(rank_weights([1.0, 1.0, 0.5, 0.25], max_ratio=4.0, power=2.0), raw / raw.mean())
    # a two-valued oracle: the 5 rare samples tie, 95 of 99 others are more common -> ratio 10^(95/99)
    p = np.r_[np.ones(95), np.full(5, 0.05)]
    assert weight_ratio(rank_weights(p, max_ratio=10.0), p < 1) == pytest.approx(10 ** (95 / 99))
    # only the order matters: a moderate signal moves the weight as much as a sharp one with the same order
    np.testing.assert_allclose(rank_weights(np.linspace(0.9, 1.0, 50)), rank_weights(np.linspace(0.01, 1.0, 50)))
    with pytest.raises(ValueError, match="power must be > 0"):
        rank_weights([0.5, 1.0], power=0.0)


@settings(max_examples=150, deadline=None)
@given(p=likelihood_sets, ratio=st.floats(min_value=1.0, max_value=50.0), scheme=st.sampled_from(["cluster-balanced",
                                                                                                  "rank"]))
def test_set_schemes_have_mean_one_respect_the_cap_and_are_monotone_in_rarity(p, ratio, scheme):
    p = np.asarray(p)
    w = scheme_weights(scheme, p, max_ratio=ratio)
    assert w.mean() == pytest.approx(1.0)
    assert w.max() / w.min() <= ratio * (1 + 1e-9)
    order = np.argsort(p, kind="stable")  # rarest first
    assert (np.diff(w[order]) <= 1e-9).all()  # rarer never weighs less
    assert np.all(w[p == p.min()] == w[np.argmin(p)])  # ties weigh the same


@settings(max_examples=100, deadline=None)
@given(p=likelihood_sets, eta=st.floats(min_value=0.05, max_value=10.0), gamma=gammas)
def test_eq4_scheme_mean_one_and_within_its_cap(p, eta, gamma):
    w = eq4_weights(np.asarray(p), eta, gamma)
    assert w.mean() == pytest.approx(1.0)
    assert w.max() / w.min() <= (eta + 1) / eta * (1 + 1e-9)


@pytest.mark.parametrize("scheme,params", [("eq4", {"eta": 0.3, "gamma": 5.0}), ("cluster-balanced", {"max_ratio": 4.0}),
                                           ("rank", {"max_ratio": 17.0, "power": 2.0})])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_and_numpy_agree_and_the_tensor_keeps_dtype_and_device(scheme, params, dtype):
    p = np.random.default_rng(0).uniform(0.01, 1.0, 200)
    p[:20] = 1.0  # ties
    expected = scheme_weights(scheme, p, **params)
    got = scheme_weights(scheme, torch.tensor(p, dtype=dtype), **params)
    assert isinstance(got, torch.Tensor) and got.dtype == dtype and got.device.type == "cpu"
    np.testing.assert_allclose(got.double().numpy(), expected, rtol=1e-5 if dtype == torch.float32 else 1e-12)
    # the one-line use: a batch's weights multiply its losses
    batch = torch.arange(8)
    loss = weighted_loss(torch.ones(8), got[batch])
    assert loss.item() == pytest.approx(float(expected[:8].mean()), rel=1e-5)


def test_scheme_record_fills_defaults_and_refuses_unknown_parameters():
    assert weight_scheme_record("rank") == {"scheme": "rank", "params": {"max_ratio": 10.0, "power": 1.0}}
    assert weight_scheme_record("eq4", eta=0.3) == {"scheme": "eq4", "params": {"eta": 0.3, "gamma": 5.0}}
    assert weight_scheme_record("cb", max_ratio=17) == {
        "scheme": "cluster-balanced", "params": {"alpha": 1.0, "beta": None, "max_ratio": 17.0}}
    with pytest.raises(ValueError, match=r"has no parameter\(s\) \['eta'\]"):
        weight_scheme_record("rank", eta=1.0)
    with pytest.raises(ValueError, match="takes no groups"):
        scheme_weights("rank", [0.5, 1.0], groups=[0, 1])
    with pytest.raises(ValueError, match="1-D"):
        scheme_weights("rank", [[0.5, 1.0]])
