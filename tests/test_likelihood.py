"""Eq. 1-3 with the three noise policies, and the k-NN density likelihood."""

import numpy as np
import pytest

from deqlib.likelihood import (
    assign_noise,
    cluster_likelihood,
    cluster_sizes,
    compare_noise_policies,
    knn_density_likelihood,
    scaled_likelihood,
)

# Clusters: 0 (4 samples), 1 (2), 2 (1); noise: 5 samples.
LABELS = np.array([0, 0, 0, 0, 1, 1, 2, -1, -1, -1, -1, -1])
COORDS = np.array(
    [[0, 0], [0, 1], [1, 0], [1, 1],      # cluster 0 around (0.5, 0.5)
     [10, 10], [10, 11],                  # cluster 1 around (10, 10.5)
     [20, 0],                             # cluster 2 at (20, 0)
     [0, 2], [9, 9], [19, 1], [30, 0], [11, 12]],  # noise
    dtype=float,
)


def test_eq1_and_eq3_without_noise():
    labels = np.array([3, 3, 3, 7, 7, 9])
    np.testing.assert_allclose(cluster_likelihood(labels), [3 / 6] * 3 + [2 / 6] * 2 + [1 / 6])
    np.testing.assert_allclose(scaled_likelihood(labels), [1.0] * 3 + [2 / 3] * 2 + [1 / 3])


def test_scale_factor_k_recovers_eq1():
    labels = np.array([0, 0, 0, 1])
    k = 3 / 4  # max |C| / N
    np.testing.assert_allclose(scaled_likelihood(labels, scale=k), cluster_likelihood(labels))
    for bad in (0.0, 1.5, -1, True):
        with pytest.raises(ValueError, match="scale"):
            scaled_likelihood(labels, scale=bad)


def test_singleton_policy_makes_noise_rarest():
    sizes = cluster_sizes(LABELS, "singleton")
    np.testing.assert_array_equal(sizes, [4, 4, 4, 4, 2, 2, 1, 1, 1, 1, 1, 1])
    effective = assign_noise(LABELS, "singleton")
    assert len(set(effective[LABELS == -1])) == 5 and effective[LABELS == -1].min() == 3


def test_as_cluster_policy_reproduces_the_official_flaw():
    # Five noise samples outnumber the largest real cluster (4): noise becomes the most likely.
    likelihood = scaled_likelihood(LABELS, "as_cluster")
    np.testing.assert_allclose(likelihood[LABELS == -1], 1.0)
    np.testing.assert_allclose(likelihood[:4], 4 / 5)


def test_nearest_policy_joins_nearest_centroid():
    effective = assign_noise(LABELS, "nearest", COORDS)
    np.testing.assert_array_equal(effective[7:], [0, 1, 2, 2, 1])
    np.testing.assert_array_equal(cluster_sizes(LABELS, "nearest", COORDS), [5] * 4 + [4, 4] + [3] + [5, 4, 3, 3, 4])


def test_nearest_needs_coords_and_a_cluster():
    with pytest.raises(ValueError, match="coords"):
        assign_noise(LABELS, "nearest")
    with pytest.raises(ValueError, match="every sample is noise"):
        assign_noise(np.array([-1, -1]), "nearest", np.zeros((2, 3)))
    with pytest.raises(ValueError, match="shape"):
        assign_noise(LABELS, "nearest", COORDS[:3])


def test_compare_noise_policies_table():
    table = compare_noise_policies(LABELS, COORDS)
    assert list(table.columns) == ["label", "is_noise", "likelihood_singleton", "likelihood_as_cluster",
                                   "likelihood_nearest"]
    noise = table[table.is_noise]
    assert noise.likelihood_singleton.max() == pytest.approx(1 / 4)
    assert noise.likelihood_as_cluster.min() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "labels,match",
    [(np.array([], dtype=int), "empty"), (np.array([0.0, 1.0]), "integers"), (np.array([0, -2]), ">= -1"),
     (np.array([[0, 1]]), "1-D"), (np.array([True, False]), "integers")],
)
def test_bad_labels(labels, match):
    with pytest.raises(ValueError, match=match):
        scaled_likelihood(labels)


def test_unknown_policy():
    with pytest.raises(ValueError, match="singleton"):
        scaled_likelihood(LABELS, "drop")


def test_all_noise_singleton_is_uniform():
    np.testing.assert_allclose(scaled_likelihood(np.array([-1, -1, -1])), 1.0)


def test_knn_density_likelihood_ranks_sparse_points_lowest():
    rng = np.random.default_rng(0)
    dense = rng.normal(0, 0.1, size=(200, 5))
    sparse = rng.normal(0, 3.0, size=(10, 5)) + 10
    likelihood = knn_density_likelihood(np.vstack([dense, sparse]), k=5)
    assert likelihood.shape == (210,)
    assert likelihood.max() == pytest.approx(1.0) and likelihood.min() > 0
    assert likelihood[200:].max() < np.median(likelihood[:200])
    assert likelihood[200:].mean() < 0.2 * likelihood[:200].mean()


def test_knn_density_handles_duplicates_and_bad_input():
    X = np.vstack([np.zeros((5, 2)), np.arange(10, dtype=float).reshape(5, 2) + 5])
    likelihood = knn_density_likelihood(X, k=2)
    assert np.isfinite(likelihood).all() and (likelihood <= 1).all()
    np.testing.assert_allclose(likelihood[:5], 1.0)
    with pytest.raises(ValueError, match="k must"):
        knn_density_likelihood(X, k=10)
    with pytest.raises(ValueError, match="NaN"):
        knn_density_likelihood(np.array([[0.0], [np.nan]]), k=1)
