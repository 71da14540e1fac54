"""The training integration: bank lookup, the loss module, the sampler, class-balanced weights."""

import numpy as np
import pytest
import torch
from torch import nn

from deqlib.bank import bank_from_labels, export_official_pickle, write_bank
from deqlib.training import BankLookup, GFLWeightedLoss, class_balanced_weights, load_bank, weighted_sampler

IDS = [f"{i:06d}" for i in range(6)]
LABELS = np.array([0, 0, 0, 0, 1, -1])  # likelihoods 1, 1, 1, 1, 0.25, 0.25 (singleton noise)


@pytest.fixture
def bank():
    return bank_from_labels(IDS, LABELS)


def test_lookup_likelihoods_and_weights(bank):
    lookup = BankLookup(bank, eta=1.0, gamma=2.0)
    torch.testing.assert_close(lookup.likelihood(["000004", "000000"]), torch.tensor([0.25, 1.0]))
    torch.testing.assert_close(lookup.weights(["000004", "000000"]), torch.tensor([(1 + 0.75 ** 2) / 2, 0.5]))
    with pytest.raises(KeyError, match="999999"):
        lookup.weights(["000001", "999999"])
    lenient = BankLookup(bank, eta=1.0, gamma=2.0, default_likelihood=0.0)
    torch.testing.assert_close(lenient.weights(["999999", "000000"]), torch.tensor([1.0, 0.5]))


def test_parquet_and_official_pickle_banks_give_the_same_weights(bank, tmp_path):
    parquet = write_bank(tmp_path / "b.parquet", bank)
    pickle_path = export_official_pickle(bank, tmp_path / "kitti_training_cluster_info.pkl")
    a, b = BankLookup(load_bank(parquet)), BankLookup(load_bank(pickle_path))
    torch.testing.assert_close(a.weights(IDS), b.weights(IDS))


def test_module_equals_manual_weighting_and_scales_gradients(bank):
    torch.manual_seed(0)
    logits = torch.randn(3, 4, requires_grad=True)
    targets = torch.tensor([0, 1, 2])
    ids = ["000000", "000004", "000005"]
    criterion = GFLWeightedLoss(nn.CrossEntropyLoss(reduction="none"), bank, eta=1.0, gamma=5.0)
    loss = criterion(logits, targets, ids)
    per_sample = nn.functional.cross_entropy(logits, targets, reduction="none")
    weights = torch.tensor([0.5, (1 + 0.75 ** 5) / 2, (1 + 0.75 ** 5) / 2])
    torch.testing.assert_close(loss, (per_sample * weights).mean())
    loss.backward()
    plain = logits.detach().clone().requires_grad_(True)
    nn.functional.cross_entropy(plain, targets, reduction="none").mean().backward()
    ratio = logits.grad.norm(dim=1) / plain.grad.norm(dim=1)
    torch.testing.assert_close(ratio, weights)  # each sample's gradient is scaled by its weight


def test_module_refuses_a_reducing_criterion(bank):
    with pytest.raises(ValueError, match="reduction='none'"):
        GFLWeightedLoss(nn.CrossEntropyLoss(), bank)


def test_sampler_draws_in_proportion_to_weights():
    sampler = weighted_sampler([1.0, 3.0], num_samples=20_000, seed=0)
    draws = np.bincount(list(sampler), minlength=2)
    assert draws[1] / draws.sum() == pytest.approx(0.75, abs=0.015)
    with pytest.raises(ValueError):
        weighted_sampler([1.0, -1.0])


def test_class_balanced_weights_match_cui_et_al_by_hand():
    weights = class_balanced_weights([100, 10], beta=0.99)
    raw = np.array([(1 - 0.99) / (1 - 0.99 ** 100), (1 - 0.99) / (1 - 0.99 ** 10)])
    np.testing.assert_allclose(weights, raw / raw.sum() * 2)
    assert weights[1] > weights[0]
    np.testing.assert_allclose(class_balanced_weights([5, 50], beta=0.0), [1.0, 1.0])  # beta 0: no re-weighting


def test_lookup_with_a_set_level_scheme_weighs_every_bank_sample_once(bank, tmp_path):
    from deqlib.weights import rank_weights

    lookup = BankLookup(bank, scheme="rank", scheme_params={"max_ratio": 4.0})
    # likelihoods 1, 1, 1, 1, 0.25, 0.25: u = 0 x4 and 4/5 x2 -> 1 x4, 4^0.8 x2, over the mean
    raw = np.array([1.0] * 4 + [4 ** 0.8] * 2)
    np.testing.assert_allclose(lookup.all_weights(), raw / raw.mean(), rtol=1e-6)
    torch.testing.assert_close(lookup.weights(["000004", "000000"]),
                               torch.tensor([4 ** 0.8, 1.0]) / float(raw.mean()))
    assert lookup.scheme_record == {"scheme": "rank", "params": {"max_ratio": 4.0, "power": 1.0}, "normalised": True}
    np.testing.assert_allclose(lookup.all_weights(), rank_weights(bank.table["likelihood"].to_numpy(), 4.0),
                               rtol=1e-6)
    with pytest.raises(KeyError, match="bank's samples only"):
        lookup.weights(["999999"])
    with pytest.raises(ValueError, match="default_likelihood is for eq. 4"):
        BankLookup(bank, scheme="cluster-balanced", default_likelihood=0.0)
    with pytest.raises(ValueError, match="scheme_params is for"):
        BankLookup(bank, scheme="eq4", scheme_params={"eta": 0.3})
    cb = GFLWeightedLoss(nn.CrossEntropyLoss(reduction="none"), bank, scheme="cluster-balanced",
                         scheme_params={"max_ratio": 2.0})
    # groups of 4 and noise singletons of likelihood 0.25: 0.25^-1 = 4 capped at 2 -> 1 x4, 2 x2 over 4/3
    np.testing.assert_allclose(cb.lookup.all_weights(), [0.75] * 4 + [1.5] * 2, rtol=1e-6)
    logits, targets = torch.zeros(2, 3), torch.tensor([0, 1])
    assert cb(logits, targets, ["000000", "000004"]).item() == pytest.approx(np.log(3) * (0.75 + 1.5) / 2, rel=1e-6)
    assert BankLookup(bank).scheme_record == {"scheme": "eq4", "params": {"eta": 1.0, "gamma": 5.0},
                                              "normalised": False}


def test_the_forks_pickle_carries_eq4_only(bank, tmp_path):
    from deqlib.bank import BankFormatError

    with pytest.raises(BankFormatError, match="scheme='rank'"):
        export_official_pickle(bank, tmp_path / "a.pkl", weight_scheme="rank")
    bank.metadata["weight_scheme"] = {"scheme": "cluster-balanced", "params": {"max_ratio": 4.0}}
    with pytest.raises(BankFormatError, match="cannot travel"):
        export_official_pickle(bank, tmp_path / "b.pkl")
    assert not (tmp_path / "a.pkl").exists() and not (tmp_path / "b.pkl").exists()
    path = export_official_pickle(bank, tmp_path / "c.pkl", weight_scheme="eq4")  # explicit eq. 4 wins
    assert bank.metadata["official_export"]["weight_scheme"] == "eq4"
    torch.testing.assert_close(BankLookup(load_bank(path)).weights(IDS), BankLookup(bank).weights(IDS))
