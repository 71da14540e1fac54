"""Every registered rarity signal keeps the contract (deqlib.likelihood.RARITY_SIGNALS).

Parametrised over the registry, so a signal is tested the moment it is registered. The toy data:
a big blob (160 samples) and a rare blob (16) far apart in 8-D, their true partition as the
labels, and three runs (the truth twice and once with ten big-blob samples as noise) for the
consensus signals.
"""

from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.base import clone

from deqlib.bank import BankFormatError, bank_from_signal, export_official_pickle, import_official_pickle
from deqlib.likelihood import (
    DEFAULT_RARITY_SIGNAL,
    RARITY_SIGNALS,
    RarityContext,
    RaritySignal,
    get_rarity_signal,
    knn_density_likelihood,
    scaled_likelihood,
)

N_BIG, N_RARE = 160, 16
RARE = np.r_[np.zeros(N_BIG, bool), np.ones(N_RARE, bool)]
NAMES = RARITY_SIGNALS.names()


def _toy_context() -> RarityContext:
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0.0, 1.0, (N_BIG, 8)), rng.normal(0.0, 1.0, (N_RARE, 8)) + 30.0])
    truth = RARE.astype(np.int64)
    noisy = truth.copy()
    noisy[:10] = -1
    run_labels = np.vstack([truth, noisy, truth])
    runs = SimpleNamespace(labels=run_labels, likelihoods=np.vstack([scaled_likelihood(r) for r in run_labels]),
                           params={"seeds": [5, 6, 7]})
    return RarityContext(embeddings=X, coords=X[:, :3], labels=truth, outlier_scores=np.zeros(truth.size), runs=runs)


CONTEXT = _toy_context()


@pytest.fixture(params=NAMES)
def name(request):
    return request.param


def test_registry_holds_the_signals_and_the_default_is_eq3():
    assert {"cluster", "knn-density", "consensus-mean", "consensus-coassoc"} <= set(NAMES)
    assert NAMES[0] == DEFAULT_RARITY_SIGNAL == "cluster"
    assert type(get_rarity_signal()).__name__ == "ClusterSignal"
    with pytest.raises(ValueError, match="unknown rarity signal 'lof'.*cluster, knn-density"):
        get_rarity_signal("lof")


def test_values_in_unit_interval_length_n_and_scaled_max_is_one(name):
    signal = RARITY_SIGNALS.create(name)
    assert isinstance(signal, RaritySignal) and signal.fit(CONTEXT) is signal
    likelihood = signal.likelihood_
    assert likelihood.dtype == np.float64 and likelihood.shape == (N_BIG + N_RARE,)
    assert ((likelihood > 0) & (likelihood <= 1)).all()
    assert RARITY_SIGNALS.entry(name).extra["scaled"] == signal.scaled
    if signal.scaled:
        assert likelihood.max() == 1.0
    assert signal.params_["signal"] == name and signal.name == name


def test_deterministic_and_clone_keeps_parameters(name):
    first = RARITY_SIGNALS.create(name).fit(CONTEXT).likelihood_
    signal = RARITY_SIGNALS.create(name)
    again = clone(signal).fit(CONTEXT).likelihood_
    np.testing.assert_array_equal(first, again)
    assert clone(signal).get_params() == signal.get_params()


def test_the_rare_blob_is_less_likely_than_the_big_blob(name):
    likelihood = RARITY_SIGNALS.create(name).fit(CONTEXT).likelihood_
    assert likelihood[RARE].max() < np.median(likelihood[~RARE])


def test_a_missing_context_input_is_named(name):
    signal = RARITY_SIGNALS.create(name)
    for attribute in signal.needs:
        context = RarityContext(**{**CONTEXT.__dict__, attribute: None})
        with pytest.raises(ValueError, match=rf"needs context\.{attribute}"):
            signal.fit(context)


def test_cluster_based_flag_agrees_with_the_pickle_export(name, tmp_path):
    signal = RARITY_SIGNALS.create(name).fit(CONTEXT)
    assert RARITY_SIGNALS.entry(name).extra["cluster_based"] is signal.cluster_based
    ids = [f"{i:06d}" for i in range(N_BIG + N_RARE)]
    bank = bank_from_signal(ids, signal)
    assert bank.metadata["signal"] == name and bank.has_clusters is signal.cluster_based
    path = tmp_path / "bank.pkl"
    if signal.cluster_based:
        export_official_pickle(bank, path)
        # the forks recompute cluster_size / largest_cluster_size: it must be this signal's likelihood
        np.testing.assert_array_equal(import_official_pickle(path).likelihood_of(ids), signal.likelihood_)
    else:
        with pytest.raises(BankFormatError, match=rf"{name}'.*not cluster-based.*Parquet bank"):
            export_official_pickle(bank, path)
        assert not path.exists()


# ---------------------------------------------------------------- specific signals through the registry
def test_cluster_signal_is_eq3_with_its_noise_policy():
    labels = np.array([0, 0, 0, 1, 1, -1, -1])
    coords = np.array([[0, 0], [0, 1], [1, 0], [9, 9], [9, 8], [0, 2], [8, 8]], dtype=float)
    for policy, sizes in (("singleton", [3, 3, 3, 2, 2, 1, 1]), ("as_cluster", [3, 3, 3, 2, 2, 2, 2]),
                          ("nearest", [4, 4, 4, 3, 3, 4, 3])):
        signal = RARITY_SIGNALS.create("cluster", noise_policy=policy).fit(RarityContext(labels=labels,
                                                                                         coords=coords))
        np.testing.assert_array_equal(signal.cluster_size_, sizes)
        np.testing.assert_array_equal(signal.likelihood_, np.array(sizes) / max(sizes))
        assert signal.largest_cluster_size_ == max(sizes)
    assert signal.params_ == {"signal": "cluster", "noise_policy": "nearest", "scale": 1.0, "n_clusters": 2,
                              "n_noise": 2}
    np.testing.assert_array_equal(signal.cluster_id_, [0, 0, 0, 1, 1, 0, 1])  # noise took its cluster's id


def test_knn_density_signal_is_the_documented_function_with_k_10():
    signal = RARITY_SIGNALS.create("knn-density")
    assert signal.get_params() == {"k": 10, "reference_quantile": 0.01, "space": "embeddings"}
    np.testing.assert_array_equal(signal.fit(CONTEXT).likelihood_, knn_density_likelihood(CONTEXT.embeddings, k=10))
    on_map = RARITY_SIGNALS.create("knn-density", k=5, space="coords").fit(CONTEXT).likelihood_
    np.testing.assert_array_equal(on_map, knn_density_likelihood(CONTEXT.coords, k=5))
    with pytest.raises(ValueError, match="space must be"):
        RARITY_SIGNALS.create("knn-density", space="pixels").fit(CONTEXT)


def test_consensus_signals_on_the_runs():
    mean = RARITY_SIGNALS.create("consensus-mean").fit(CONTEXT).likelihood_
    # the ten samples that were noise in one run (a singleton there; the big cluster then has 150)
    np.testing.assert_allclose(mean[:10], (1.0 + 1.0 / 150 + 1.0) / 3)
    np.testing.assert_allclose(mean[-1], (16 / 160 + 16 / 150 + 16 / 160) / 3)
    coassoc = RARITY_SIGNALS.create("consensus-coassoc").fit(CONTEXT)
    # two of three runs put the ten samples in the big cluster: more than half, so the partition is the truth
    np.testing.assert_array_equal(coassoc.cluster_id_, RARE.astype(int))
    np.testing.assert_array_equal(coassoc.likelihood_, scaled_likelihood(RARE.astype(int)))


def test_consensus_coassoc_signal_equals_stability_runs_consensus():
    from deqlib.cluster import DBSCANClusterer
    from deqlib.reduce import OpenTSNEReducer
    from deqlib.stability import stability_runs

    X = CONTEXT.embeddings
    result = stability_runs(X, K=2, seeds=[3, 4], reducer=OpenTSNEReducer(perplexity=10, n_jobs=1, early_exaggeration_iter=50, n_iter=50),
                            clusterer=DBSCANClusterer(eps=3.0, min_samples=5, eps_scale="knn", n_jobs=1))
    signal = RARITY_SIGNALS.create("consensus-coassoc").fit(RarityContext(embeddings=X, runs=result))
    np.testing.assert_array_equal(signal.likelihood_, result.per_sample["consensus_coassoc"].to_numpy())
    mean = RARITY_SIGNALS.create("consensus-mean").fit(RarityContext(runs=result)).likelihood_
    np.testing.assert_array_equal(mean, result.consensus("consensus-mean"))


def test_get_rarity_signal_keeps_an_instance_and_refuses_params_for_it():
    mine = RARITY_SIGNALS.create("cluster", noise_policy="as_cluster")
    assert get_rarity_signal(mine) is mine
    with pytest.raises(ValueError, match="rarity_params are for a signal given by name"):
        get_rarity_signal(mine, noise_policy="singleton")
    with pytest.raises(TypeError, match="fit"):
        get_rarity_signal(3)


# ---------------------------------------------------------------- the training experiment's signals
def test_experiment_signals_come_from_the_registry_with_the_same_numbers():
    from deqlib import experiment as ex

    labels = np.array([0, 0, 0, 1, 1, -1, 2, -1] * 2)
    coords = np.random.default_rng(1).normal(size=(16, 3))
    context = RarityContext(embeddings=np.random.default_rng(2).normal(size=(16, 4)), coords=coords, labels=labels)
    for name, policy in (("cluster_singleton", "singleton"), ("cluster_as_cluster", "as_cluster"),
                         ("cluster_nearest", "nearest")):
        np.testing.assert_array_equal(ex.signal_likelihood(name, context), scaled_likelihood(labels, policy, coords))
    np.testing.assert_array_equal(ex.signal_likelihood("knn_density", context),
                                  knn_density_likelihood(context.embeddings, k=10))
    assert all(registered in RARITY_SIGNALS for registered, _ in ex.SIGNALS.values())


def test_experiment_context_computes_no_tsne_for_a_density_signal():
    from deqlib import experiment as ex

    X = np.random.default_rng(3).normal(size=(30, 4))
    context = ex.SignalContext(X, ex.ExperimentConfig(), seed=0)
    np.testing.assert_array_equal(ex.signal_likelihood("knn_density", context), knn_density_likelihood(X, k=10))
    assert "coords" not in context.__dict__ and "clustering" not in context.__dict__
