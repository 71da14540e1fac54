"""Every registered rarity signal keeps the contract (deqlib.likelihood.RARITY_SIGNALS).

Parametrised over the registry, so a signal is tested the moment it is registered. The toy data:
a big blob (160 samples) and a rare blob (16) far apart in 8-D, their true partition as the
labels, and three runs (the truth twice and once with ten big-blob samples as noise) for the
consensus signals.
"""

import re
import warnings
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.base import clone

from deqlib.bank import (
    LIKELIHOOD_LEVELS,
    bank_from_signal,
    export_official_pickle,
    import_official_pickle,
)
from deqlib.likelihood import (
    DEFAULT_RARITY_SIGNAL,
    PAPER_RARITY_SIGNAL,
    RARITY_SIGNALS,
    RarityContext,
    RaritySignal,
    get_rarity_signal,
    is_cluster_based,
    scaled_likelihood,
)
from deqlib.weights import gfl_weight

N_BIG, N_RARE = 160, 16


def _eq3_by_hand(labels, policy="singleton", coords=None) -> np.ndarray:
    """Eq. 3, |C_i| / max_j |C_j|, counted in plain Python, independently of deqlib.likelihood."""
    labels = [int(label) for label in labels]
    clusters = sorted({label for label in labels if label != -1})
    groups = []
    for i, label in enumerate(labels):
        if label != -1:
            groups.append(label)
        elif policy == "singleton":
            groups.append(("noise", i))  # a group of its own
        elif policy == "as_cluster":
            groups.append("noise")  # one group of all noise
        else:  # 'nearest': the cluster whose centroid in coords is closest
            centroid = {c: np.mean([coords[j] for j, other in enumerate(labels) if other == c], axis=0)
                        for c in clusters}
            groups.append(min(clusters, key=lambda c: float(np.sum((coords[i] - centroid[c]) ** 2))))
    counts = Counter(groups)
    largest = max(counts.values())
    return np.array([counts[group] / largest for group in groups])


def _knn_density_by_hand(X, k: int, reference_quantile: float = 0.01) -> np.ndarray:
    """min(1, r_ref / r_i) with r_i the distance to the k-th neighbour, by brute force (no scikit-learn)."""
    X = np.asarray(X, dtype=np.float64)
    distances = np.sqrt(((X[:, None, :] - X[None, :, :]) ** 2).sum(axis=-1))
    radius = np.sort(distances, axis=1)[:, k]  # column 0 is the sample itself
    return np.minimum(1.0, np.quantile(radius, reference_quantile) / radius)
RARE = np.r_[np.zeros(N_BIG, bool), np.ones(N_RARE, bool)]
NAMES = RARITY_SIGNALS.names()


def _toy_context() -> RarityContext:
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0.0, 1.0, (N_BIG, 8)), rng.normal(0.0, 1.0, (N_RARE, 8)) + 30.0])
    # away from the origin, as an encoder's vectors are (the embedding-space signals compare directions)
    X -= 20.0
    truth = RARE.astype(np.int64)
    noisy = truth.copy()
    noisy[:10] = -1
    run_labels = np.vstack([truth, noisy, truth])
    runs = SimpleNamespace(labels=run_labels, likelihoods=np.vstack([scaled_likelihood(r) for r in run_labels]),
                           params={"seeds": [5, 6, 7]})
    # GLOSH-like scores: low in the big blob, high in the rare one (the glosh signal's own test uses real HDBSCAN)
    outlier_scores = np.where(RARE, 0.6, 0.1) + rng.uniform(0.0, 0.05, truth.size)
    return RarityContext(embeddings=X, coords=X[:, :3], labels=truth, outlier_scores=outlier_scores, runs=runs)


CONTEXT = _toy_context()


@pytest.fixture(params=NAMES)
def name(request):
    return request.param


def test_registry_holds_the_signals_and_the_default_is_the_benchmarks_choice_with_eq3_for_reference():
    from deqlib.stages import build_stages, checked_stages

    assert {"cluster", "knn-density", "consensus-mean", "consensus-coassoc"} <= set(NAMES)
    assert {"glosh", "lof", "knn-cosine", "two-sided-density", "parent-relative", "multi-granularity",
            "isolation-forest", "cleanlab-ood", "multi-granularity+lof"} <= set(NAMES)  # issue 20's signals
    assert NAMES[0] == PAPER_RARITY_SIGNAL == "cluster"
    assert DEFAULT_RARITY_SIGNAL == "multi-granularity+lof"  # docs/rarity.md: the benchmark's decision
    assert type(get_rarity_signal()).__name__ == "RankFusionSignal"
    assert type(build_stages().rarity).__name__ == "RankFusionSignal"
    assert build_stages("reference").rarity is None  # eq. 3, as the official code
    assert build_stages(rarity="cluster").rarity is None
    assert checked_stages(build_stages(rarity="cluster")).rarity is None  # what analyze runs keeps eq. 3
    assert type(checked_stages(None).rarity).__name__ == "RankFusionSignal"
    with pytest.raises(ValueError, match="unknown rarity signal 'loff'.*cluster, knn-density"):
        get_rarity_signal("loff")


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


def fork_weights(path, sample_ids, eta=0.3, gamma=5.0) -> np.ndarray:
    """What the BEVFusion fork does with the pickle (docs/training.md, /work/shared/REFERENCE.md): load the
    dict, ``p = cluster_size / largest_cluster_size`` per sample token (1.0 when the token has no entry),
    weight ``(eta + (1 - p) ** gamma) / (eta + 1)``. Written from that description, with plain pickle.load."""
    import pickle

    with open(path, "rb") as handle:
        cluster_info = pickle.load(handle)
    weights = []
    for token in sample_ids:
        if token in cluster_info:
            info = cluster_info[token]
            sample_likelihood = info["cluster_size"] / info["largest_cluster_size"]
        else:
            sample_likelihood = 1.0
        weights.append((eta + (1 - sample_likelihood) ** gamma) / (eta + 1))
    return np.array(weights)


def test_cluster_based_flag_agrees_with_the_pickle_export(name, tmp_path):
    signal = RARITY_SIGNALS.create(name).fit(CONTEXT)
    assert RARITY_SIGNALS.entry(name).extra["cluster_based"] is signal.cluster_based is is_cluster_based(name)
    ids = [f"{i:06d}" for i in range(N_BIG + N_RARE)]
    bank = bank_from_signal(ids, signal)
    assert bank.metadata["signal"] == name and bank.has_clusters is signal.cluster_based
    path = tmp_path / "bank.pkl"
    if signal.cluster_based:
        export_official_pickle(bank, path)
        # the forks recompute cluster_size / largest_cluster_size: it must be this signal's likelihood
        np.testing.assert_array_equal(import_official_pickle(path).likelihood_of(ids), signal.likelihood_)
        assert bank.metadata["official_export"]["likelihood_levels"] is None
    else:  # any other likelihood p travels as the pair (round(p * L), L)
        export_official_pickle(bank, path)
        back = import_official_pickle(path)
        assert set(back.table["largest_cluster_size"]) == {LIKELIHOOD_LEVELS} and set(back.table["cluster_id"]) == {-1}
        np.testing.assert_array_equal(back.table.set_index("sample_id").loc[ids, "cluster_size"],
                                      np.maximum(1, np.rint(signal.likelihood_ * LIKELIHOOD_LEVELS)))
        # within 0.5 / L, or 1 / L below 1 / L (a pair is never (0, L))
        np.testing.assert_allclose(back.likelihood_of(ids), signal.likelihood_, rtol=0, atol=1.0 / LIKELIHOOD_LEVELS)
        assert bank.metadata["official_export"]["likelihood_levels"] == LIKELIHOOD_LEVELS
    # the fork's own arithmetic gives the weights of eq. 4 on this signal's likelihood
    np.testing.assert_allclose(fork_weights(path, ids), gfl_weight(signal.likelihood_, eta=0.3, gamma=5.0),
                               rtol=0, atol=5.0 / LIKELIHOOD_LEVELS)


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
    np.testing.assert_allclose(signal.fit(CONTEXT).likelihood_, _knn_density_by_hand(CONTEXT.embeddings, k=10),
                               rtol=1e-9)
    on_map = RARITY_SIGNALS.create("knn-density", k=5, space="coords").fit(CONTEXT).likelihood_
    np.testing.assert_allclose(on_map, _knn_density_by_hand(CONTEXT.coords, k=5), rtol=1e-9)
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
    np.testing.assert_allclose(coassoc.likelihood_, np.where(RARE, N_RARE / N_BIG, 1.0), rtol=1e-12)


def test_consensus_coassoc_signal_equals_stability_runs_consensus():
    from deqlib.cluster import DBSCANClusterer
    from deqlib.reduce import OpenTSNEReducer
    from deqlib.stability import stability_runs
    from deqlib.stages import build_stages

    X = CONTEXT.embeddings
    reducer = OpenTSNEReducer(perplexity=10, n_jobs=1, early_exaggeration_iter=50, n_iter=50)
    stages = build_stages(reducer=reducer, clusterer=DBSCANClusterer(eps=3.0, min_samples=5, eps_scale="knn", n_jobs=1))
    result = stability_runs(X, K=2, seeds=[3, 4], stages=stages)
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
    config = ex.ExperimentConfig(signals={
        "cluster_singleton": ("cluster", {"noise_policy": "singleton"}),
        "cluster_as_cluster": ("cluster", {"noise_policy": "as_cluster"}),
        "cluster_nearest": ("cluster", {"noise_policy": "nearest"}),
        "knn_density": ("knn-density", {"k": 10})})
    # clusters of 6, 4 and 2 samples and 4 noise samples: singletons (1/6) or one group of 4 (4/6)
    np.testing.assert_allclose(ex.signal_likelihood("cluster_singleton", context, config),
                               np.array([6, 6, 6, 4, 4, 1, 2, 1] * 2) / 6, rtol=1e-12)
    np.testing.assert_allclose(ex.signal_likelihood("cluster_as_cluster", context, config),
                               np.array([6, 6, 6, 4, 4, 4, 2, 4] * 2) / 6, rtol=1e-12)
    for name, policy in (("cluster_singleton", "singleton"), ("cluster_as_cluster", "as_cluster"),
                         ("cluster_nearest", "nearest")):
        np.testing.assert_allclose(ex.signal_likelihood(name, context, config), _eq3_by_hand(labels, policy, coords),
                                   rtol=1e-12)
    np.testing.assert_allclose(ex.signal_likelihood("knn_density", context, config),
                               _knn_density_by_hand(context.embeddings, k=10), rtol=1e-9)
    assert all(registered in RARITY_SIGNALS for registered, _ in ex.ExperimentConfig().signals.values())
    with pytest.raises(ValueError, match="unknown experiment signal"):
        ex.signal_likelihood("no-such-signal", context, config)


def test_experiment_context_computes_no_tsne_for_a_density_signal():
    from deqlib import experiment as ex

    X = np.random.default_rng(3).normal(size=(30, 4))
    config = ex.ExperimentConfig(signals={"knn_density": ("knn-density", {"k": 10})})
    context = ex.SignalContext(X, config, seed=0)
    np.testing.assert_allclose(ex.signal_likelihood("knn_density", context, config), _knn_density_by_hand(X, k=10),
                               rtol=1e-9)
    assert "coords" not in context.__dict__ and "clustering" not in context.__dict__


# ---------------------------------------------------------------- the rarity stage in analyze and the CLI
def _blobs():
    rng = np.random.default_rng(4)
    return np.vstack([rng.normal(0.0, 1.0, (100, 6)), rng.normal(0.0, 1.0, (12, 6)) + 15.0]).astype(np.float32)


def _analyze(**stage_options):
    from deqlib.pipeline import analyze
    from deqlib.reduce import OpenTSNEReducer
    from deqlib.stages import build_stages

    reducer = OpenTSNEReducer(perplexity=10, n_jobs=1, early_exaggeration_iter=50, n_iter=50)
    stages = build_stages(reducer=reducer, clusterer_params={"eps": 3.0, "min_samples": 5, "eps_scale": "knn"},
                          **stage_options)
    return analyze(embeddings=_blobs(), stages=stages, cache=False)


def test_analyze_eq3_and_a_named_signal_replaces_only_the_likelihood():
    default = _analyze(rarity="cluster")
    labels = default.samples["raw_cluster_id"].to_numpy()
    assert sorted(np.bincount(labels).tolist()) == [12, 100]  # the two blobs, no noise
    np.testing.assert_allclose(default.bank.table["likelihood"], np.where(labels == np.argmax(np.bincount(labels)),
                                                                          1.0, 12 / 100), rtol=1e-12)
    assert default.bank.metadata["signal"] == "cluster" and default.bank.has_clusters
    named = _analyze(rarity="cluster", noise_policy="singleton")
    np.testing.assert_array_equal(named.bank.table["likelihood"], default.bank.table["likelihood"])
    reference_free = _analyze()  # no rarity: the default signal, in the embedding space
    assert reference_free.bank.metadata["signal"] == "multi-granularity+lof"

    density = _analyze(rarity="knn-density", rarity_params={"k": 5})
    np.testing.assert_allclose(density.bank.table["likelihood"], _knn_density_by_hand(_blobs(), k=5), rtol=1e-9)
    assert density.bank.metadata["signal"] == "knn-density" and density.bank.metadata["signal_params"]["k"] == 5
    assert not density.bank.has_clusters
    # the per-sample table keeps the analysis' clusters; its likelihood and weight are the signal's
    np.testing.assert_array_equal(density.samples["cluster_size"], default.samples["cluster_size"])
    np.testing.assert_array_equal(density.samples["likelihood"], density.bank.table["likelihood"])
    assert "rarity signal 'knn-density'" in density.summary()


def test_build_stages_rarity_rules():
    from deqlib.pipeline import build_stages

    assert build_stages(rarity="cluster").rarity is None  # eq. 3 with the stage's noise policy
    assert build_stages(rarity="knn-density", rarity_params={"k": 5}).rarity.get_params()["k"] == 5
    with pytest.raises(ValueError, match="needs K runs"):
        build_stages(rarity="consensus-mean")
    with pytest.raises(ValueError, match="noise_policy="):
        build_stages(rarity="cluster", rarity_params={"noise_policy": "nearest"})
    with pytest.raises(ValueError, match="unknown parameter 'kk'.*valid: k, reference_quantile, space"):
        build_stages(rarity="knn-density", rarity_params={"kk": 3})
    with pytest.raises(ValueError, match="mode='reference'"):
        build_stages("reference", rarity="knn-density")
    assert build_stages("reference", rarity="cluster").rarity is None


@pytest.mark.slow
def test_deq_analyze_rarity_knn_density_writes_its_bank_and_its_likelihood_into_the_pickle(tmp_path, capsys):
    from deqlib.bank import read_bank
    from deqlib.cli import main

    vectors = tmp_path / "vectors.npz"
    np.savez(vectors, vectors=_blobs(), sample_ids=np.asarray([f"s{i:03d}" for i in range(112)]))
    base = ["analyze", "--embeddings", str(vectors), "--cache-dir", str(tmp_path / "cache"), "--no-progress",
            "--perplexity", "10", "--eps", "3", "--min-samples", "5", "--eps-scale", "knn"]
    bank_path, pickle_path = tmp_path / "density.parquet", tmp_path / "density.pkl"
    assert main(base + ["--rarity", "knn-density", "--rarity-param", "k=5", "--output", str(bank_path),
                        "--export-official", str(pickle_path)]) == 0
    bank = read_bank(bank_path)
    np.testing.assert_allclose(fork_weights(pickle_path, bank.sample_ids, eta=1.0, gamma=5.0),
                               gfl_weight(bank.likelihood_of(bank.sample_ids), eta=1.0, gamma=5.0), atol=1e-5)
    assert bank.metadata["official_export"]["likelihood_levels"] == LIKELIHOOD_LEVELS
    assert bank.metadata["signal"] == "knn-density" and bank.metadata["signal_params"]["k"] == 5
    assert not bank.has_clusters
    np.testing.assert_allclose(bank.table["likelihood"], _knn_density_by_hand(_blobs(), k=5), rtol=1e-9)
    assert main(base + ["--rarity", "cluster", "--output", str(tmp_path / "eq3.parquet"),
                        "--export-official", str(tmp_path / "eq3.pkl")]) == 0  # eq. 3 travels exactly
    np.testing.assert_array_equal(import_official_pickle(tmp_path / "eq3.pkl").likelihood_of(bank.sample_ids),
                                  read_bank(tmp_path / "eq3.parquet").likelihood_of(bank.sample_ids))


@pytest.mark.parametrize("name, params, match", [
    ("cluster", {"scale": True}, r"scale \(K~\) must be a number in \(0, 1\], got True"),
    ("cluster", {"noise_policy": "drop"}, "noise_policy must be one of"),
    ("knn-density", {"k": True}, "k must be an integer with 1 <= k < N = 176, got True"),
    ("knn-density", {"reference_quantile": False}, "reference_quantile must be a number >= 0, got False"),
    ("knn-density", {"reference_quantile": 1.0}, r"reference_quantile must be a number in \[0, 1\), got 1.0"),
    ("consensus-coassoc", {"n_neighbors": True}, "n_neighbors must be an integer >= 1, got True"),
    ("consensus-coassoc", {"threshold": False}, "threshold must be a number >= 0, got False"),
])
def test_bad_parameters_are_refused_with_one_message_style(name, params, match):
    with pytest.raises(ValueError, match=match):
        RARITY_SIGNALS.create(name, **params).fit(CONTEXT)


def test_a_density_bank_from_analyze_keeps_the_clusterers_labels_for_the_explorer():
    from deqlib.plots.explorer import samples_from_bank

    density = _analyze(rarity="knn-density")
    labels = density.samples["raw_cluster_id"].to_numpy()
    np.testing.assert_array_equal(density.bank.table["raw_cluster_id"], labels)
    table = samples_from_bank(density.bank)
    np.testing.assert_array_equal(table["cluster_id"], labels)
    expected = [1 if label < 0 else int((labels == label).sum()) for label in labels]
    np.testing.assert_array_equal(table["cluster_size"], expected)
    assert set(labels) == {0, 1}  # the two blobs, so the sizes above are 100 and 12


def test_a_newly_registered_signal_reaches_build_stages_the_cli_and_banks_with_no_other_edit(tmp_path):
    import argparse

    from deqlib.commands.analyze import add_stage_arguments
    from deqlib.pipeline import build_stages

    @RARITY_SIGNALS.register("outlier-score", summary="one minus the clusterer's outlier score")
    class OutlierSignal(RaritySignal):  # its class attributes are enough: no registry extras needed
        name = "outlier-score"
        needs = ("outlier_scores",)
        scaled = False

        def fit(self, context):
            scores = np.asarray(self._need(context, "outlier_scores", "GLOSH scores"), dtype=float)
            return self._finish(np.clip(1.0 - scores, 1e-3, 1.0))

    try:
        parser = argparse.ArgumentParser()
        add_stage_arguments(parser, rarity=True)
        assert parser.parse_args(["--rarity", "outlier-score"]).rarity == "outlier-score"
        signal = build_stages(rarity="outlier-score").rarity.fit(RarityContext(outlier_scores=np.array([0.0, 0.5])))
        bank = bank_from_signal(["a", "b"], signal)
        assert bank.metadata["signal"] == "outlier-score" and bank.table["likelihood"].tolist() == [1.0, 0.5]
        exported = import_official_pickle(export_official_pickle(bank, tmp_path / "o.pkl"))
        assert exported.likelihood_of(["a", "b"]).tolist() == [1.0, 0.5]  # (10**6, 10**6) and (500000, 10**6)
    finally:
        RARITY_SIGNALS.unregister("outlier-score")
    assert "outlier-score" not in RARITY_SIGNALS


# --------------------------------------------------------------------------------------------------
# Identical vectors, identical likelihoods (issue 19: two vectors x 100 copies gave 145 samples p = 0.043,
# the rest up to 1.0). Through the whole analysis: the t-SNE, the clusterer and the signal.
def _vectors_with_copies():
    """Two random 64-D vectors copied 100 times each (the issue's case) beside three blobs of 60 distinct
    vectors, the rows shuffled; returns the vectors and the row indices of each group of copies."""
    rng = np.random.default_rng(0)
    copies = np.repeat(rng.normal(size=(2, 64)), 100, axis=0)
    blobs = np.vstack([rng.normal(0.0, 1.0, (60, 64)) + 3.0 * rng.normal(size=64) for _ in range(3)])
    order = rng.permutation(380)
    X = np.vstack([copies, blobs]).astype(np.float32)[order]
    position = np.argsort(order)  # where original row r went
    return X, [position[:100], position[100:200]]


def _likelihood_through_the_analysis(name, X):
    from deqlib.pipeline import analyze
    from deqlib.stability import stability_runs
    from deqlib.stages import build_stages

    # the default analysis (openTSNE 'fast', DBSCAN eps 1.0 in official units), min_samples 5
    if RARITY_SIGNALS.entry(name).extra.get("needs_runs"):
        runs = stability_runs(X, K=2, seeds=[3, 4], stages=build_stages(clusterer_params={"min_samples": 5}))
        return RARITY_SIGNALS.create(name).fit(RarityContext(embeddings=X, runs=runs)).likelihood_
    if "outlier_scores" in RARITY_SIGNALS.entry(name).extra.get("needs", ()):  # GLOSH: HDBSCAN's outlier scores
        stages = build_stages(clusterer="hdbscan", clusterer_params={"min_cluster_size": 5}, rarity=name)
    else:
        stages = build_stages(clusterer_params={"min_samples": 5}, rarity=name)
    result = analyze(embeddings=X, stages=stages, cache=False)
    return result.samples["likelihood"].to_numpy()


@pytest.mark.slow
def test_identical_vectors_get_identical_likelihoods_under_every_signal(name):
    from deqlib.pipeline import DuplicateEmbeddingsWarning

    X, groups = _vectors_with_copies()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DuplicateEmbeddingsWarning)
        likelihood = _likelihood_through_the_analysis(name, X)
    for rows in groups:
        assert np.unique(likelihood[rows]).size == 1, (name, np.unique(likelihood[rows]))
    assert np.unique(likelihood).size > 1  # and the signal still tells samples apart


def test_large_duplicate_groups_are_reported_with_the_count_and_the_fix():
    from deqlib.pipeline import DuplicateEmbeddingsWarning, analyze
    from deqlib.reduce import OpenTSNEReducer
    from deqlib.stages import build_stages

    X, groups = _vectors_with_copies()
    stages = build_stages(reducer=OpenTSNEReducer(early_exaggeration_iter=20, n_iter=20))
    with pytest.warns(DuplicateEmbeddingsWarning) as caught:
        result = analyze(embeddings=X, stages=stages, cache=False)
    [message] = [str(w.message) for w in caught if issubclass(w.category, DuplicateEmbeddingsWarning)]
    assert "200 of 380 samples are identical vectors in 2 groups (largest: 100 copies" in message
    assert "drop the copies" in message
    assert result.params["embedding"]["duplicates"] == {"n_distinct": 182, "n_groups": 2, "n_copies": 198,
                                                        "largest_group": 100}
    # only the two vectors, 100 copies each (the case): refused, naming the duplicates
    two = X[np.concatenate(groups)]
    with pytest.warns(DuplicateEmbeddingsWarning), pytest.raises(ValueError, match="2 distinct vectors among 200"):
        analyze(embeddings=two, cache=False)
