"""deqlib.cluster: DBSCAN / HDBSCAN behind one interface, presets, scale-aware eps, degenerate results."""

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from deqlib.cluster import (
    OFFICIAL_KNN_K,
    PRESETS,
    DBSCANClusterer,
    HDBSCANClusterer,
    get_clusterer,
    knn_distance_scale,
    official_knn_scale,
)


@pytest.fixture(scope="module")
def points():
    """Three 3-D blobs of 200, 120 and 60 points plus one far outlier (index 380)."""
    X, y = make_blobs(n_samples=[200, 120, 60], n_features=3, centers=[[0, 0, 0], [20, 0, 0], [0, 20, 0]],
                      cluster_std=1.0, random_state=0)
    X = np.vstack([X, [[60.0, 60.0, 60.0]]])
    return X, np.append(y, -1)


def test_presets_are_the_papers_settings():
    assert PRESETS == {"kitti": {"eps": 2.0, "min_samples": 10}, "nuscenes": {"eps": 1.0, "min_samples": 10},
                       "waymo": {"eps": 1.0, "min_samples": 10}, "bdd100k": {"eps": 1.5, "min_samples": 100}}
    bdd = DBSCANClusterer.from_preset("BDD100K", eps_scale="raw")
    assert (bdd.eps, bdd.min_samples, bdd.eps_scale) == (1.5, 100, "raw")
    assert HDBSCANClusterer.from_preset("kitti").min_cluster_size == 10
    with pytest.raises(ValueError, match="unknown preset 'argoverse'"):
        DBSCANClusterer.from_preset("argoverse")


def test_dbscan_raw_finds_the_blobs_with_ids_ordered_by_size(points):
    X, y = points
    result = DBSCANClusterer(eps=2.0, min_samples=10, eps_scale="raw").fit(X)
    assert result.n_clusters == 3 and result.outlier_scores is None
    assert result.labels[380] == -1
    sizes = np.bincount(result.labels[result.labels >= 0])
    assert list(sizes) == sorted(sizes, reverse=True)  # id 0 is the largest cluster
    assert sizes[0] >= 190 and (result.labels[y == 0] == 0).mean() >= 0.95  # the blob of 200 (fringe: noise)
    assert (result.labels[y == 2] == 2).mean() >= 0.95  # the blob of 60 is the smallest
    assert result.params["effective_eps"] == 2.0 and result.params["knn_scale"] is None
    assert result.degenerate is None


def test_knn_eps_is_invariant_to_the_embeddings_scale_raw_eps_is_not(points):
    X, _ = points
    knn = DBSCANClusterer(eps=1.5, min_samples=10, eps_scale="knn")
    np.testing.assert_array_equal(knn.fit(X).labels, knn.fit(X * 7.0).labels)
    raw = DBSCANClusterer(eps=2.0, min_samples=10, eps_scale="raw")
    assert raw.fit(X).n_clusters == 3 and raw.fit(X * 7.0).n_clusters == 0  # all noise when 7x wider
    result = knn.fit(X)
    assert result.params["effective_eps"] == pytest.approx(1.5 * knn_distance_scale(X, 9))


def test_official_eps_is_converted_with_the_sklearn_tsne_knn_scale(points):
    X, _ = points
    clusterer = DBSCANClusterer(eps=1.0, min_samples=10, eps_scale="official")
    eps, scale = clusterer.effective_eps(X)
    assert scale == pytest.approx(knn_distance_scale(X, OFFICIAL_KNN_K))
    assert eps == pytest.approx(scale / official_knn_scale(len(X)))
    # the calibration falls slowly with N (measured power law), so larger data gets a larger eps
    assert official_knn_scale(200_000) < official_knn_scale(20_000) < official_knn_scale(2_000)
    # and it is scale-free: a 3x wider copy of the same points clusters the same way
    np.testing.assert_array_equal(clusterer.fit(X).labels, clusterer.fit(X * 3.0).labels)


def test_knn_distance_scale_by_hand():
    X = np.array([[0.0], [1.0], [3.0], [6.0]])
    # 1st neighbour distances: 1, 1, 2, 3 -> median 1.5
    assert knn_distance_scale(X, 1) == 1.5
    with pytest.raises(ValueError, match="exact duplicates"):
        knn_distance_scale(np.zeros((10, 3)), 2)


def test_hdbscan_keeps_outlier_scores_and_flags_the_far_point(points):
    X, _ = points
    result = HDBSCANClusterer(min_cluster_size=15).fit(X)
    assert result.n_clusters == 3
    assert result.outlier_scores.shape == (381,) and np.isfinite(result.outlier_scores).all()
    assert result.labels[380] == -1
    assert np.argmax(result.outlier_scores) == 380
    assert result.params["clusterer"] == "hdbscan" and result.params["min_cluster_size"] == 15


def test_degenerate_results_are_reported(points):
    X, _ = points
    all_noise = DBSCANClusterer(eps=1e-3, min_samples=10, eps_scale="raw").fit(X)
    assert all_noise.n_clusters == 0 and all_noise.noise_fraction == 1.0
    assert "every sample is noise" in all_noise.degenerate and "DEGENERATE" in all_noise.summary()
    one = DBSCANClusterer(eps=1e3, min_samples=10, eps_scale="raw").fit(X)
    assert one.n_clusters == 1 and "one cluster holds every sample" in one.params["degenerate"]


def test_bad_input_is_a_clear_error(points):
    X, _ = points
    with pytest.raises(ValueError, match=r"more samples \(8\) than min_samples \(10\)"):
        DBSCANClusterer(eps=1.0, min_samples=10, eps_scale="raw").fit(X[:8])
    with pytest.raises(ValueError, match=r"more samples \(12\) than min_samples \(15\)"):
        HDBSCANClusterer(min_cluster_size=15).fit(X[:12])
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        DBSCANClusterer().fit(bad)
    with pytest.raises(ValueError, match="eps must be a positive number"):
        DBSCANClusterer(eps=0).fit(X)
    with pytest.raises(ValueError, match="eps_scale must be one of"):
        DBSCANClusterer(eps_scale="relative").fit(X)
    with pytest.raises(ValueError, match="min_cluster_size must be an integer >= 2"):
        HDBSCANClusterer(min_cluster_size=1).fit(X)


def test_get_clusterer():
    assert isinstance(get_clusterer("hdbscan", min_cluster_size=5), HDBSCANClusterer)
    assert get_clusterer("dbscan", preset="kitti").eps == 2.0
    with pytest.raises(ValueError, match="unknown clusterer"):
        get_clusterer("kmeans")
