"""Issue 20's rarity signals, each against an independent computation of its own numbers.

The registry-wide contract (range, determinism, missing inputs, the rare blob) is in
tests/test_rarity_contracts.py; here each signal is recomputed by hand or by the library it
wraps, and the embedding-space signals are checked for row-order and thread-count invariance on
real images (Fashion-MNIST pixels, the Debian package the project's default dataset comes from).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import rankdata, spearmanr
from sklearn.metrics import adjusted_rand_score

from deqlib.likelihood import (
    RARITY_SIGNALS,
    RarityContext,
    embedding_space,
    granularity_cuts,
    micro_clusters,
    percentile_ranks,
    relative_likelihood,
    ward_cuts,
)

NEW_SIGNALS = ("glosh", "lof", "knn-cosine", "two-sided-density", "parent-relative", "multi-granularity",
               "isolation-forest", "cleanlab-ood", "multi-granularity+lof")
EMBEDDING_SIGNALS = tuple(name for name in NEW_SIGNALS if name != "glosh")


def _unit_rows(X):
    X = np.asarray(X, dtype=np.float64)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def _blobs(seed=0, sizes=(150, 120, 12), dim=12):
    """Three groups away from the origin (as an encoder's vectors are): two common, one rare."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 4.0, (len(sizes), dim)) + 15.0
    X = np.vstack([rng.normal(0.0, 1.0, (n, dim)) + c for n, c in zip(sizes, centres)])
    truth = np.repeat(np.arange(len(sizes)), sizes)
    return X, truth


@pytest.fixture(scope="module")
def fashion_pixels():
    """400 real Fashion-MNIST images as 784-d pixel vectors, 12 of them fogged (the rare group).

    Fog, not darkening: the signals compare directions (unit vectors), and darkening raw pixels
    only scales them; an encoder's vectors do change direction under darkening."""
    from deqlib.sources import open_source

    n = 400
    source = open_source("fashion-mnist", max_images=n, seed=0)
    X = np.stack([np.asarray(source.load(i))[:, :, 0] for i in range(n)]).reshape(n, -1) / 255.0
    rare = np.zeros(n, bool)
    rare[np.random.default_rng(1).choice(n, 12, replace=False)] = True
    X[rare] = 0.45 + 0.4 * X[rare]  # fog: low contrast, bright
    return X, rare


# ---------------------------------------------------------------- the shared space
def test_embedding_space_is_pca_of_the_unit_vectors_with_fixed_signs():
    from sklearn.decomposition import PCA

    X, _ = _blobs()
    Z = embedding_space(X, n_components=5)
    reference = PCA(5, svd_solver="full").fit_transform(_unit_rows(X))
    np.testing.assert_allclose(np.abs(Z), np.abs(reference), atol=1e-9)
    # the same numbers whatever the row order (signs included)
    order = np.random.default_rng(3).permutation(len(X))
    np.testing.assert_allclose(embedding_space(X[order], n_components=5), Z[order], atol=1e-9)
    np.testing.assert_allclose(embedding_space(X, 5, whiten=True).std(axis=0, ddof=1), 1.0, rtol=1e-9)
    # not centred: the cosines of the original vectors survive a lossless projection
    full = embedding_space(X, n_components=None, centre=False)
    np.testing.assert_allclose(full, _unit_rows(X), atol=1e-12)
    lossless = embedding_space(X, n_components=12, centre=False)
    np.testing.assert_allclose(lossless @ lossless.T, _unit_rows(X) @ _unit_rows(X).T, atol=1e-9)


def test_embedding_space_drops_components_without_variance_and_refuses_bad_input():
    X = np.hstack([_blobs()[0], np.zeros((282, 3))])  # the unit rows vary in 12 directions only
    assert embedding_space(X, n_components=50).shape == (282, 12)
    with pytest.raises(ValueError, match="n_components must be an integer >= 1"):
        embedding_space(X, n_components=0)
    with pytest.raises(ValueError, match="NaN"):
        embedding_space(np.full((5, 3), np.nan))


def test_ward_cuts_are_scikit_learns_connectivity_constrained_ward_partitions():
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.neighbors import kneighbors_graph

    X, _ = _blobs(seed=2)
    Z = embedding_space(X, 8)
    cuts = ward_cuts(Z, [2, 5, 17], n_neighbors=10)
    graph = kneighbors_graph(Z, 10, include_self=False)
    for n_clusters, labels in cuts.items():
        model = AgglomerativeClustering(n_clusters=n_clusters, linkage="ward", connectivity=graph + graph.T).fit(Z)
        assert adjusted_rand_score(model.labels_, labels) == 1.0
        assert labels.max() + 1 == n_clusters and labels[0] == 0
    assert granularity_cuts(5000) == [5, 10, 20, 40, 78, 156, 312]
    assert granularity_cuts(100) == [2, 3, 6]


def test_ward_cuts_above_max_tree_points_cut_a_tree_on_micro_clusters_and_ignore_the_row_order():
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.neighbors import kneighbors_graph

    X, groups = _blobs(seed=3, sizes=(400, 300, 20))
    Z = embedding_space(X, 8)
    exact = ward_cuts(Z, [3, 40], n_neighbors=10, max_tree_points=None)
    assert all(np.array_equal(exact[c], ward_cuts(Z, [3, 40], 10, max_tree_points=len(Z))[c]) for c in (3, 40))

    cuts = ward_cuts(Z, [3, 40, 500], n_neighbors=10, max_tree_points=200)
    centres, assignment = micro_clusters(Z, 50)  # max_tree_points // 4
    assert len(centres) <= 50 and assignment.max() + 1 == len(centres)
    graph = kneighbors_graph(centres, 10, include_self=False)
    for n_clusters in (3, 40):
        labels = cuts[n_clusters]
        model = AgglomerativeClustering(n_clusters=n_clusters, linkage="ward", connectivity=graph + graph.T).fit(centres)
        assert adjusted_rand_score(model.labels_[assignment], labels) == 1.0  # each sample takes its centre's label
        assert labels.max() + 1 == n_clusters and labels[0] == 0
    assert cuts[500].max() + 1 == len(centres)  # a cut finer than the micro-clusters is clipped to them
    assert adjusted_rand_score(cuts[3], exact[3]) > 0.95  # the coarse structure is the exact tree's
    assert np.array_equal(groups == 2, cuts[3] == np.bincount(cuts[3]).argmin())  # the rare blob stays apart

    order = np.random.default_rng(0).permutation(len(Z))
    permuted = ward_cuts(Z[order], [3, 40], n_neighbors=10, max_tree_points=200)
    for n_clusters in (3, 40):
        assert adjusted_rand_score(permuted[n_clusters], cuts[n_clusters][order]) == 1.0
    with pytest.raises(ValueError, match="max_tree_points"):
        ward_cuts(Z, [3], max_tree_points=1)


def test_relative_likelihood_and_percentile_ranks():
    np.testing.assert_allclose(relative_likelihood(np.array([1.0, 2.0, 4.0, 0.5]), 0.0), [0.5, 0.25, 0.125, 1.0])
    np.testing.assert_array_equal(relative_likelihood(np.zeros(3)), np.ones(3))
    np.testing.assert_array_equal(percentile_ranks([3.0, 1.0, 1.0, 2.0]), [1.0, 0.375, 0.375, 0.75])


# ---------------------------------------------------------------- each signal's own numbers
def test_lof_is_one_over_scikit_learns_lof_in_the_space():
    from sklearn.neighbors import LocalOutlierFactor

    X, truth = _blobs()
    signal = RARITY_SIGNALS.create("lof", n_neighbors=15).fit(RarityContext(embeddings=X))
    lof = -LocalOutlierFactor(n_neighbors=15).fit(embedding_space(X, 50)).negative_outlier_factor_
    np.testing.assert_allclose(signal.likelihood_, np.minimum(1.0, 1.0 / lof), rtol=1e-12)
    np.testing.assert_allclose(signal.outlier_factor_, lof, rtol=1e-12)
    assert signal.likelihood_[truth == 2].mean() < signal.likelihood_[truth < 2].mean()
    with pytest.raises(ValueError, match="n_neighbors must be below the number of samples N = 282"):
        RARITY_SIGNALS.create("lof", n_neighbors=282).fit(RarityContext(embeddings=X))


def test_knn_cosine_is_the_cosine_distance_to_the_kth_neighbour_by_brute_force():
    X, truth = _blobs()
    unit = _unit_rows(X)
    distance = 1.0 - unit @ unit.T
    kth = np.sort(distance, axis=1)[:, 7]  # column 0 is the sample itself (distance 0)
    expected = np.minimum(1.0, np.quantile(kth, 0.01, method="lower") / kth)
    exact = RARITY_SIGNALS.create("knn-cosine", k=7, n_components=None).fit(RarityContext(embeddings=X))
    np.testing.assert_allclose(exact.likelihood_, expected, rtol=1e-8)
    projected = RARITY_SIGNALS.create("knn-cosine", k=7).fit(RarityContext(embeddings=X))  # 12 < 50 components
    np.testing.assert_allclose(projected.likelihood_, expected, rtol=1e-8)


def test_two_sided_density_calls_a_tight_group_rare():
    rng = np.random.default_rng(5)
    spread = rng.normal(0.0, 1.0, (300, 6)) + 20.0
    tight = rng.normal(0.0, 0.02, (15, 6)) + 20.0 + np.array([3.0, 0, 0, 0, 0, 0])  # blurred: alike, dense
    X = np.vstack([spread, tight])
    context = RarityContext(embeddings=X)
    signal = RARITY_SIGNALS.create("two-sided-density", k=5).fit(context)
    Z = embedding_space(X, 50)
    radius = np.sort(np.sqrt(((Z[:, None] - Z[None]) ** 2).sum(-1)), axis=1)[:, 5]
    typical = np.quantile(radius, 0.5, method="lower")
    np.testing.assert_allclose(signal.likelihood_, np.minimum(radius / typical, typical / radius), rtol=1e-8)
    assert signal.likelihood_[300:].max() < np.quantile(signal.likelihood_[:300], 0.1)
    # the one-sided density calls the same group the most common
    one_sided = RARITY_SIGNALS.create("knn-cosine", k=5).fit(context).likelihood_
    assert one_sided[300:].min() > np.median(one_sided[:300])


def test_isolation_forest_is_scikit_learns_seeded_forest_and_n_jobs_does_not_matter():
    from sklearn.ensemble import IsolationForest

    X, truth = _blobs()
    context = RarityContext(embeddings=X)
    signal = RARITY_SIGNALS.create("isolation-forest", random_state=4, n_estimators=50).fit(context)
    anomaly = -IsolationForest(n_estimators=50, random_state=4).fit(embedding_space(X, 50)).score_samples(
        embedding_space(X, 50))
    np.testing.assert_allclose(signal.likelihood_, np.minimum(1.0, np.quantile(anomaly, 0.01, method="lower")
                                                             / anomaly), rtol=1e-12)
    two_jobs = RARITY_SIGNALS.create("isolation-forest", random_state=4, n_estimators=50, n_jobs=2).fit(context)
    np.testing.assert_array_equal(two_jobs.likelihood_, signal.likelihood_)
    other = RARITY_SIGNALS.create("isolation-forest", random_state=5, n_estimators=50).fit(context)
    assert not np.array_equal(other.likelihood_, signal.likelihood_)


def test_cleanlab_ood_is_cleanlabs_own_score_over_its_maximum():
    from cleanlab.outlier import OutOfDistribution

    X, truth = _blobs()
    signal = RARITY_SIGNALS.create("cleanlab-ood", k=8).fit(RarityContext(embeddings=X))
    features = embedding_space(X, 50, centre=False)
    scores = OutOfDistribution(params={"k": 8}).fit_score(features=features, verbose=False)
    np.testing.assert_allclose(signal.likelihood_, scores / scores.max(), rtol=1e-12)
    assert signal.params_["cleanlab_version"].startswith("2.")
    assert signal.likelihood_[truth == 2].mean() < signal.likelihood_[truth < 2].mean()


def test_glosh_is_one_minus_hdbscans_outlier_scores():
    import hdbscan

    X, truth = _blobs()
    X = np.vstack([X, np.full((2, X.shape[1]), 60.0) + np.arange(2)[:, None]])  # two far outliers
    scores = hdbscan.HDBSCAN(min_cluster_size=10).fit(X).outlier_scores_
    signal = RARITY_SIGNALS.create("glosh").fit(RarityContext(outlier_scores=scores))
    expected = np.maximum(1.0 - scores, 1e-3)
    np.testing.assert_allclose(signal.likelihood_, expected / expected.max(), rtol=1e-12)
    assert signal.likelihood_[-2:].max() < np.median(signal.likelihood_[:-2])
    with_nan = RARITY_SIGNALS.create("glosh").fit(RarityContext(outlier_scores=np.array([0.2, np.nan, 1.0])))
    np.testing.assert_allclose(with_nan.likelihood_, [0.8, 1.0, 1e-3])
    assert with_nan.params_["n_nonfinite"] == 1
    with pytest.raises(ValueError, match=r"outlier_scores must lie in \[0, 1\]"):
        RARITY_SIGNALS.create("glosh").fit(RarityContext(outlier_scores=np.array([0.2, 1.5])))
    with pytest.raises(ValueError, match=r"min_likelihood must be a number in \(0, 1\]"):
        RARITY_SIGNALS.create("glosh", min_likelihood=2.0).fit(RarityContext(outlier_scores=scores))


def _eq3(labels):
    counts = np.bincount(labels)
    return counts[labels] / counts.max()


def test_multi_granularity_is_the_geometric_mean_of_eq3_over_cuts_and_views():
    X, truth = _blobs()
    signal = RARITY_SIGNALS.create("multi-granularity", divisors=(100, 20)).fit(RarityContext(embeddings=X))
    cuts = granularity_cuts(len(X), (100, 20))
    assert signal.params_["cuts"] == cuts == [3, 14]
    logs = [np.log(_eq3(labels)) for whiten in (False, True)
            for labels in ward_cuts(embedding_space(X, 50, whiten=whiten), cuts, 10).values()]
    expected = np.exp(np.mean(logs, axis=0))
    np.testing.assert_allclose(signal.likelihood_, expected / expected.max(), rtol=1e-12)
    assert signal.likelihood_[truth == 2].max() < signal.likelihood_[truth < 2].min()
    with pytest.raises(ValueError, match="views must be a non-empty sequence"):
        RARITY_SIGNALS.create("multi-granularity", views=("plain", "pca")).fit(RarityContext(embeddings=X))
    with pytest.raises(ValueError, match="divisors must be an integer >= 1"):
        RARITY_SIGNALS.create("multi-granularity", divisors=(0,)).fit(RarityContext(embeddings=X))


def test_parent_relative_finds_a_small_group_inside_a_large_cluster():
    rng = np.random.default_rng(7)
    big = rng.normal(0.0, 1.0, (400, 6)) + 20.0
    inside = rng.normal(0.0, 0.3, (20, 6)) + 20.0 + np.array([2.5, 0, 0, 0, 0, 0])  # a subgroup at its edge
    other = rng.normal(0.0, 1.0, (300, 6)) + 20.0 + np.array([0, 12.0, 0, 0, 0, 0])
    X = np.vstack([big, inside, other])
    signal = RARITY_SIGNALS.create("parent-relative", parent_divisor=300, child_divisor=40).fit(
        RarityContext(embeddings=X))
    cuts = ward_cuts(embedding_space(X, 50), [signal.params_["n_parents"], signal.params_["n_children"]], 10)
    parents, children = cuts[signal.params_["n_parents"]], cuts[signal.params_["n_children"]]
    expected = np.empty(len(X))
    for i in range(len(X)):
        siblings = np.unique(children[parents == parents[i]])
        largest = max(int((children == c).sum()) for c in siblings)
        expected[i] = ((children == children[i]).sum() / largest
                       * (parents == parents[i]).sum() / np.bincount(parents).max())
    np.testing.assert_allclose(signal.likelihood_, expected / expected.max(), rtol=1e-12)
    with pytest.raises(ValueError, match="child_divisor must be below parent_divisor"):
        RARITY_SIGNALS.create("parent-relative", parent_divisor=50, child_divisor=50).fit(RarityContext(embeddings=X))


def test_rank_fusion_is_the_lower_of_the_two_signals_ranks():
    X, truth = _blobs()
    context = RarityContext(embeddings=X)
    fused = RARITY_SIGNALS.create("multi-granularity+lof", divisors=(100, 20)).fit(context)
    granular = RARITY_SIGNALS.create("multi-granularity", divisors=(100, 20)).fit(context).likelihood_
    lof = RARITY_SIGNALS.create("lof").fit(context).likelihood_
    expected = np.minimum(rankdata(granular) / len(X), rankdata(lof) / len(X))
    np.testing.assert_allclose(fused.likelihood_, expected / expected.max(), rtol=1e-12)
    np.testing.assert_allclose(fused.component_likelihoods_["multi-granularity"], granular, rtol=1e-12)
    np.testing.assert_array_equal(fused.component_likelihoods_["lof"], lof)


# ---------------------------------------------------------------- stability on real images
@pytest.mark.slow
@pytest.mark.parametrize("name", EMBEDDING_SIGNALS)
def test_row_order_does_not_move_the_ranking_on_real_images(name, fashion_pixels):
    X, rare = fashion_pixels
    order = np.random.default_rng(11).permutation(len(X))
    base = RARITY_SIGNALS.create(name).fit(RarityContext(embeddings=X)).likelihood_
    permuted = RARITY_SIGNALS.create(name).fit(RarityContext(embeddings=X[order])).likelihood_
    unpermuted = np.empty_like(permuted)
    unpermuted[order] = permuted
    rho = spearmanr(base, unpermuted).statistic
    assert rho > 0.95, f"{name}: Spearman {rho:.3f} between the original and the permuted row order"
    if name != "isolation-forest":  # a forest's subsamples are drawn by row position: only its ranking holds
        assert rho > 0.999, f"{name}: Spearman {rho:.4f}"


@pytest.mark.slow
@pytest.mark.parametrize("name", EMBEDDING_SIGNALS)
def test_thread_count_and_rounding_noise_do_not_move_the_ranking_on_real_images(name, fashion_pixels):
    from threadpoolctl import threadpool_limits

    X, rare = fashion_pixels
    with threadpool_limits(1):
        one = RARITY_SIGNALS.create(name).fit(RarityContext(embeddings=X)).likelihood_
    with threadpool_limits(2):
        two = RARITY_SIGNALS.create(name).fit(RarityContext(embeddings=X)).likelihood_
    assert spearmanr(one, two).statistic > 0.999
    noisy = X * (1.0 + np.random.default_rng(2).uniform(-1e-6, 1e-6, X.shape))  # float32-level rounding
    moved = RARITY_SIGNALS.create(name).fit(RarityContext(embeddings=noisy)).likelihood_
    assert spearmanr(one, moved).statistic > 0.95


def test_the_candidate_default_finds_fogged_images_among_real_ones(fashion_pixels):
    from sklearn.metrics import roc_auc_score

    X, rare = fashion_pixels
    context = RarityContext(embeddings=X)
    granular = RARITY_SIGNALS.create("multi-granularity").fit(context).likelihood_
    fused = RARITY_SIGNALS.create("multi-granularity+lof").fit(context).likelihood_
    one_sided = RARITY_SIGNALS.create("knn-cosine").fit(context).likelihood_
    # measured 2026-12-02: 0.86, 0.76 and 0.09 (fogged pixels are alike: a tight group, which a one-sided
    # density calls common)
    assert roc_auc_score(rare, 1.0 - granular) > 0.8
    assert roc_auc_score(rare, 1.0 - fused) > 0.7
    assert roc_auc_score(rare, 1.0 - one_sided) < 0.3
    assert np.unique(fused).size >= 100


# ---------------------------------------------------------------- through analyze and the CLI
def _analysis_vectors():
    X, _ = _blobs(seed=9, sizes=(90, 60, 10), dim=8)
    return X.astype(np.float32)


@pytest.mark.parametrize("name", NEW_SIGNALS)
def test_each_new_signal_runs_through_analyze_into_its_bank(name):
    from deqlib.pipeline import analyze
    from deqlib.reduce import OpenTSNEReducer
    from deqlib.stages import build_stages

    X = _analysis_vectors()
    reducer = OpenTSNEReducer(perplexity=10, n_jobs=1, early_exaggeration_iter=50, n_iter=50)
    stages = build_stages(reducer=reducer, clusterer="hdbscan", clusterer_params={"min_cluster_size": 5},
                          rarity=name)
    result = analyze(embeddings=X, stages=stages, cache=False)
    bank = result.bank
    assert bank.metadata["signal"] == name and len(bank) == len(X)
    context = RarityContext(embeddings=X, outlier_scores=result.samples["outlier_score"].to_numpy())
    expected = RARITY_SIGNALS.create(name, **stages.rarity.get_params()).fit(context).likelihood_
    np.testing.assert_allclose(bank.table["likelihood"].to_numpy(), expected, rtol=1e-12)
    np.testing.assert_array_equal(result.samples["likelihood"].to_numpy(), bank.table["likelihood"].to_numpy())
    if "random_state" in stages.rarity.get_params():
        assert bank.metadata["signal_params"]["random_state"] == stages.seed


def test_deq_analyze_rarity_takes_a_new_signal_by_name(tmp_path):
    from deqlib.bank import read_bank
    from deqlib.cli import main

    vectors = tmp_path / "vectors.npz"
    X = _analysis_vectors()
    np.savez(vectors, vectors=X, sample_ids=np.asarray([f"s{i:03d}" for i in range(len(X))]))
    bank_path = tmp_path / "fused.parquet"
    assert main(["analyze", "--embeddings", str(vectors), "--cache-dir", str(tmp_path / "cache"), "--no-progress",
                 "--perplexity", "10", "--eps", "3", "--min-samples", "5", "--eps-scale", "knn",
                 "--rarity", "multi-granularity+lof", "--rarity-param", "lof_neighbors=15",
                 "--output", str(bank_path)]) == 0
    bank = read_bank(bank_path)
    assert bank.metadata["signal"] == "multi-granularity+lof"
    assert bank.metadata["signal_params"]["lof_neighbors"] == 15
    expected = RARITY_SIGNALS.create("multi-granularity+lof", lof_neighbors=15).fit(
        RarityContext(embeddings=X)).likelihood_
    np.testing.assert_allclose(bank.likelihood_of(bank.sample_ids), expected, rtol=1e-12)
