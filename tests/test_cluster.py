"""deqlib.cluster: registered clusterers (DBSCAN, HDBSCAN, fast-hdbscan, any sklearn one), presets, scale-aware eps."""

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from deqlib.cluster import (
    CLUSTERERS,
    EPS_CALIBRATED_ON,
    OFFICIAL_KNN_K,
    PRESETS,
    DBSCANClusterer,
    FastHDBSCANClusterer,
    HDBSCANClusterer,
    SklearnClusterer,
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
    result = DBSCANClusterer(eps=2.0, min_samples=10, eps_scale="raw").fit(X).result_
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
    np.testing.assert_array_equal(knn.fit(X).labels_, knn.fit(X * 7.0).labels_)
    raw = DBSCANClusterer(eps=2.0, min_samples=10, eps_scale="raw")
    assert raw.fit(X).result_.n_clusters == 3 and raw.fit(X * 7.0).result_.n_clusters == 0  # all noise when 7x wider
    result = knn.fit(X).result_
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
    np.testing.assert_array_equal(clusterer.fit(X).labels_, clusterer.fit(X * 3.0).labels_)


def test_knn_distance_scale_by_hand():
    X = np.array([[0.0], [1.0], [3.0], [6.0]])
    # 1st neighbour distances: 1, 1, 2, 3 -> median 1.5
    assert knn_distance_scale(X, 1) == 1.5
    with pytest.raises(ValueError, match="exact duplicates"):
        knn_distance_scale(np.zeros((10, 3)), 2)


def test_hdbscan_keeps_outlier_scores_and_flags_the_far_point(points):
    X, _ = points
    result = HDBSCANClusterer(min_cluster_size=15).fit(X).result_
    assert result.n_clusters == 3
    assert result.outlier_scores.shape == (381,) and np.isfinite(result.outlier_scores).all()
    assert result.labels[380] == -1
    assert np.argmax(result.outlier_scores) == 380
    assert result.params["clusterer"] == "hdbscan" and result.params["min_cluster_size"] == 15


def test_degenerate_results_are_reported(points):
    X, _ = points
    all_noise = DBSCANClusterer(eps=1e-3, min_samples=10, eps_scale="raw").fit(X).result_
    assert all_noise.n_clusters == 0 and all_noise.noise_fraction == 1.0
    assert "every sample is noise" in all_noise.degenerate and "DEGENERATE" in all_noise.summary()
    one = DBSCANClusterer(eps=1e3, min_samples=10, eps_scale="raw").fit(X).result_
    assert one.n_clusters == 1 and "one cluster holds every sample" in one.params["degenerate"]


def test_bad_input_is_a_clear_error(points):
    X, _ = points
    with pytest.raises(ValueError, match=r"more samples than min_samples \(10\), got 8 sample\(s\)"):
        DBSCANClusterer(eps=1.0, min_samples=10, eps_scale="raw").fit(X[:8])
    with pytest.raises(ValueError, match=r"more samples than min_samples \(15\), got 12 sample\(s\)"):
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


def test_fit_returns_self_with_fitted_attributes_as_in_scikit_learn(points):
    X, _ = points
    clusterer = DBSCANClusterer(eps=2.0, min_samples=10, eps_scale="raw")
    assert clusterer.fit(X) is clusterer
    assert clusterer.labels_.dtype == np.int64 and clusterer.labels_.shape == (381,)
    assert clusterer.outlier_scores_ is None and clusterer.effective_eps_ == 2.0
    assert clusterer.params_ is clusterer.result_.params and clusterer.params_["n_clusters"] == 3
    np.testing.assert_array_equal(clusterer.fit_predict(X), clusterer.labels_)
    hdb = HDBSCANClusterer(min_cluster_size=15).fit(X)
    assert hdb.outlier_scores_.shape == (381,) and np.argmax(hdb.outlier_scores_) == 380


@pytest.mark.parametrize("make, message", [
    (lambda: HDBSCANClusterer(min_samples=True), "min_samples must be an integer >= 1 or None, got True"),
    (lambda: HDBSCANClusterer(cluster_selection_epsilon=-5), "cluster_selection_epsilon must be a number >= 0, got -5"),
    (lambda: HDBSCANClusterer(min_cluster_size=10.0), "min_cluster_size must be an integer >= 2, got 10.0"),
    (lambda: DBSCANClusterer(min_samples=True), "min_samples must be an integer >= 1, got True"),
    (lambda: DBSCANClusterer(eps=True), "eps must be a positive number, got True"),
    (lambda: HDBSCANClusterer(cluster_selection_method="mean"), "cluster_selection_method must be one of 'eom', 'leaf'"),
])
def test_bad_parameters_are_refused_with_one_message_style(points, make, message):
    X, _ = points
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make().fit(X)


def test_official_eps_records_the_reducer_it_was_calibrated_on():
    assert DBSCANClusterer(eps_scale="official").cache_key()["eps_calibrated_on"] == EPS_CALIBRATED_ON == "sklearn-tsne"
    assert DBSCANClusterer(eps_scale="knn").cache_key()["eps_calibrated_on"] is None


def test_any_sklearn_clusterer_plugs_in_with_one_line(points):
    from sklearn.cluster import OPTICS

    X, y = points
    CLUSTERERS.register("optics", summary="scikit-learn OPTICS")(SklearnClusterer.wrapping(OPTICS))
    try:
        clusterer = get_clusterer("optics", min_samples=10, cluster_method="dbscan", eps=2.0)
        assert isinstance(clusterer, SklearnClusterer) and clusterer.min_samples == 10  # OPTICS' parameters, its own
        assert clusterer.fit(X) is clusterer
        labels = clusterer.labels_
        assert labels[380] == -1
        sizes = np.bincount(labels[labels >= 0])
        assert list(sizes) == sorted(sizes, reverse=True)  # relabelled by size, as every clusterer
        assert list(sizes[:2]) == [200, 120]
        assert adjusted_rand_score(y, labels) > 0.99  # measured 0.9966 (the outlier and two fringe points noise)
        assert clusterer.outlier_scores_ is None and clusterer.params_["clusterer"] == "sklearn.cluster._optics.OPTICS"
        assert clusterer.get_params()["eps"] == 2.0 and clusterer.estimator_.eps == 2.0  # the given one is kept
        assert isinstance(clusterer.estimator_, OPTICS) and clusterer.reachability_.shape == (len(X),)  # read through
    finally:
        CLUSTERERS.unregister("optics")
    assert "optics" not in CLUSTERERS


def test_fast_hdbscan_finds_the_blobs_like_hdbscan(points):
    X, y = points
    fast = FastHDBSCANClusterer(min_cluster_size=15, n_jobs=1).fit(X)
    reference = HDBSCANClusterer(min_cluster_size=15).fit(X)
    assert fast.outlier_scores_ is None and fast.params_["n_clusters"] == 3
    assert fast.labels_[380] == -1
    assert adjusted_rand_score(reference.labels_, fast.labels_) > 0.95
    np.testing.assert_array_equal(fast.labels_, FastHDBSCANClusterer(min_cluster_size=15, n_jobs=2).fit_predict(X))
    assert get_clusterer("fast-hdbscan", preset="bdd100k").min_cluster_size == 100
