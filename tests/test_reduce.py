"""deqlib.reduce: openTSNE 3-D reducer (schedules, PCA, subsample + transform) and the sklearn reference."""

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.neighbors import KNeighborsClassifier
from threadpoolctl import threadpool_limits

from deqlib.reduce import (
    REDUCERS,
    SCHEDULES,
    OpenTSNEReducer,
    SklearnTSNEReducer,
    UMAPReducer,
    check_embeddings,
    get_reducer,
    reducer_output,
)

SHORT = dict(early_exaggeration_iter=50, n_iter=50)


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=300, n_features=20, centers=4, cluster_std=1.0, random_state=0)
    return X.astype(np.float32), y


def knn_accuracy(coords, labels) -> float:
    """Leave-one-out 1-NN label agreement: do blobs stay together in the embedding?"""
    classifier = KNeighborsClassifier(n_neighbors=2).fit(coords, labels)
    neighbours = classifier.kneighbors(coords, return_distance=False)[:, 1]
    return float((labels[neighbours] == labels).mean())


def test_schedules_match_the_official_run_and_the_fast_default():
    official = OpenTSNEReducer(schedule="official").resolved_params()
    assert (official["early_exaggeration_iter"], official["n_iter"], official["theta"]) == (250, 250, 0.5)
    # sklearn's max_iter=500 counts the 250 exaggerated iterations: same total
    assert official["early_exaggeration_iter"] + official["n_iter"] == SklearnTSNEReducer().max_iter
    fast = OpenTSNEReducer().resolved_params()
    assert (fast["schedule"], fast["early_exaggeration_iter"], fast["n_iter"], fast["theta"]) == ("fast", 125, 100, 0.8)
    assert OpenTSNEReducer(schedule="official", n_iter=10).resolved_params()["n_iter"] == 10
    assert set(SCHEDULES) == {"fast", "official"}


def test_gradient_method_is_barnes_hut_in_3d_and_fft_refused():
    assert OpenTSNEReducer().resolved_params()["negative_gradient_method"] == "bh"
    assert OpenTSNEReducer(n_components=2).resolved_params()["negative_gradient_method"] == "fft"
    with pytest.raises(ValueError, match="at most 2 dimensions"):
        OpenTSNEReducer(negative_gradient_method="fft").resolved_params()
    with pytest.raises(ValueError, match="schedule must be one of"):
        OpenTSNEReducer(schedule="slow").resolved_params()


def test_opentsne_keeps_blobs_together_in_3d(blobs):
    X, y = blobs
    reducer = OpenTSNEReducer(**SHORT, n_jobs=1)
    coords = reducer.fit_transform(X)
    assert coords.shape == (300, 3) and coords.dtype == np.float64
    assert knn_accuracy(coords, y) == 1.0
    assert reducer.fit_indices_ is None
    assert reducer.params_["n_fit"] == 300 and reducer.params_["pca_components"] is None  # 20 dims < 50


@pytest.mark.slow
def test_same_seed_same_coordinates_other_seed_differs(blobs):
    X, _ = blobs
    first = OpenTSNEReducer(**SHORT, random_state=1, n_jobs=1).fit_transform(X)
    again = OpenTSNEReducer(**SHORT, random_state=1, n_jobs=2).fit_transform(X)  # exact neighbours below 1,000 points
    other = OpenTSNEReducer(**SHORT, random_state=2, n_jobs=1).fit_transform(X)
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).max() > 1e-3


def test_pca_pre_reduction_is_recorded(blobs):
    X, y = blobs
    reducer = OpenTSNEReducer(**SHORT, pca_components=5, n_jobs=1)
    coords = reducer.fit_transform(X)
    assert reducer.params_["pca_components"] == 5
    assert 0.5 < reducer.params_["pca_explained_variance"] <= 1.0
    assert knn_accuracy(coords, y) == 1.0


@pytest.mark.parametrize("placement", ["transform", "neighbors"])
def test_fit_on_a_sample_places_the_rest_near_their_blob(blobs, placement):
    X, y = blobs
    reducer = OpenTSNEReducer(**SHORT, sample_threshold=200, sample_size=150, placement=placement, n_jobs=1)
    coords = reducer.fit_transform(X)
    fitted = reducer.fit_indices_
    assert fitted.size == 150 and np.unique(fitted).size == 150
    assert reducer.params_["n_fit"] == 150 and reducer.params_["placement"] == placement
    rest = np.setdiff1d(np.arange(300), fitted)
    # each placed point's nearest fitted point is from its own blob
    classifier = KNeighborsClassifier(n_neighbors=1).fit(coords[fitted], y[fitted])
    assert (classifier.predict(coords[rest]) == y[rest]).mean() >= 0.99


def test_too_few_samples_for_the_perplexity_is_a_clear_error(blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match=r"perplexity 30 needs at least 91 samples .* got 60"):
        OpenTSNEReducer(**SHORT).fit_transform(X[:60])
    with pytest.raises(ValueError, match="more samples than the perplexity"):
        SklearnTSNEReducer().fit_transform(X[:30])


def test_nan_or_inf_embeddings_are_refused_naming_the_rows(blobs):
    X, _ = blobs
    bad = X.copy()
    bad[7, 3] = np.nan
    bad[42, 0] = np.inf
    with pytest.raises(ValueError, match=r"NaN or infinite values in 2 of 300 rows \(first rows: \[7, 42\]\)"):
        OpenTSNEReducer(**SHORT).fit_transform(bad)
    with pytest.raises(ValueError, match="NaN or infinite"):
        SklearnTSNEReducer().fit_transform(bad)  # refused before any t-SNE work
    with pytest.raises(ValueError, match="non-empty 2-D"):
        check_embeddings(np.zeros(5))


def test_sklearn_reducer_is_the_official_configuration(blobs):
    from sklearn.manifold import TSNE

    reducer = SklearnTSNEReducer()
    assert reducer.get_params() == {"n_components": 3, "perplexity": 30.0, "max_iter": 500, "learning_rate": "auto",
                                    "init": "pca", "random_state": 33, "n_jobs": None, "n_threads": 1}
    X, _ = blobs
    short = SklearnTSNEReducer(max_iter=250)
    with threadpool_limits(1):  # sklearn's OpenMP threads crawl on a shared, busy machine
        ours = short.fit_transform(X[:150])
        theirs = TSNE(n_components=3, perplexity=30, max_iter=250, learning_rate="auto", init="pca",
                      random_state=33).fit_transform(X[:150].astype(np.float64))
    np.testing.assert_allclose(ours, theirs)
    assert short.params_["reducer"] == "sklearn" and short.params_["n_samples"] == 150


def test_get_reducer_by_name():
    assert isinstance(get_reducer("opentsne", schedule="official"), OpenTSNEReducer)
    assert isinstance(get_reducer("sklearn"), SklearnTSNEReducer)
    assert isinstance(get_reducer("reference"), SklearnTSNEReducer) and isinstance(get_reducer("default"), OpenTSNEReducer)
    assert REDUCERS.names()[:2] == ("opentsne", "sklearn")
    with pytest.raises(ValueError, match="unknown reducer 'tsnecuda'; choose one of opentsne, sklearn"):
        get_reducer("tsnecuda")


def test_fit_returns_self_and_sets_embedding(blobs):
    X, _ = blobs
    reducer = OpenTSNEReducer(**SHORT, n_jobs=1)
    assert reducer.fit(X) is reducer and reducer.embedding_.shape == (300, 3)
    np.testing.assert_array_equal(reducer.embedding_, OpenTSNEReducer(**SHORT, n_jobs=1).fit_transform(X))


@pytest.mark.parametrize("make, message", [
    (lambda: OpenTSNEReducer(n_components=True), "n_components must be an integer >= 1, got True"),
    (lambda: OpenTSNEReducer(perplexity=0), "perplexity must be a positive number, got 0"),
    (lambda: OpenTSNEReducer(pca_components=2.5), "pca_components must be an integer >= 1 or None, got 2.5"),
    (lambda: OpenTSNEReducer(random_state=True), "random_state must be an integer >= 0 or None, got True"),
    (lambda: OpenTSNEReducer(learning_rate=-1), "learning_rate must be a positive number, got -1"),
    (lambda: SklearnTSNEReducer(init="spectral"), "init must be one of 'pca', 'random', got 'spectral'"),
    (lambda: SklearnTSNEReducer(max_iter=100), "max_iter must be an integer >= 250, got 100"),
])
def test_bad_parameters_are_refused_with_one_message_style(make, message):
    with pytest.raises(ValueError, match=message):
        make().cache_key()


@pytest.mark.slow  # five UMAP fits; the first compiles umap-learn's numba kernels
def test_umap_reducer_keeps_blobs_together_and_is_seeded(blobs):
    X, y = blobs
    reducer = UMAPReducer(n_epochs=50)
    assert reducer.get_params()["n_neighbors"] == 15 and reducer.min_dist == 0.1 and reducer.n_components == 3
    assert reducer.fit(X) is reducer
    coords = reducer.embedding_
    assert coords.shape == (300, 3) and coords.dtype == np.float64 and np.isfinite(coords).all()
    assert knn_accuracy(coords, y) == 1.0
    assert reducer.params_["n_jobs"] == 1 and reducer.params_["pca_components"] is None  # 20 dims < 50
    np.testing.assert_array_equal(coords, UMAPReducer(n_epochs=50).fit_transform(X))
    assert not np.allclose(coords, UMAPReducer(n_epochs=50, random_state=1).fit_transform(X))
    wide = np.hstack([X, X @ np.random.default_rng(0).normal(size=(20, 60))]).astype(np.float32)
    pca = UMAPReducer(n_epochs=50, pca_components=10).fit(wide)
    assert pca.params_["pca_components"] == 10 and pca.params_["pca_explained_variance"] > 0.9
    assert reducer_output(reducer) == "umap" and reducer_output(OpenTSNEReducer()) == "tsne"
