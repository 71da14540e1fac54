"""Plain scikit-learn estimators as stages: adapters, cache keys from get_params(), and end-to-end runs.

A ``KMeans`` or ``PCA`` instance goes to ``build_stages`` as it is, and its stages to ``analyze`` /
``stability_runs`` (BERTopic-style duck typing); :func:`deqlib.reduce.as_reducer` and
:func:`deqlib.cluster.as_clusterer` adapt it, keeping its parameters, and its cache key is made
from its class and ``get_params()``.
"""

import json
import pickle
import subprocess
import sys

import hdbscan
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.cluster import DBSCAN, OPTICS, KMeans
from sklearn.datasets import make_blobs
from sklearn.decomposition import PCA
from sklearn.manifold import Isomap
from sklearn.metrics import adjusted_rand_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from deqlib.adapters import estimator_key
from deqlib.cluster import SklearnClusterer, as_clusterer
from deqlib.pipeline import analyze, build_stages
from deqlib.reduce import SklearnReducer, as_reducer, reducer_output
from deqlib.stability import stability_runs


@pytest.fixture(scope="module")
def blobs():
    """Three 12-D blobs of 60, 40 and 20 points, far apart."""
    X, y = make_blobs(n_samples=[60, 40, 20], n_features=12, cluster_std=1.0, random_state=5,
                      centers=np.random.default_rng(5).normal(scale=10, size=(3, 12)))
    return X.astype(np.float32), y


def test_plain_instances_become_stages_with_their_own_parameters():
    pca, kmeans = PCA(n_components=3, random_state=4), KMeans(n_clusters=3, n_init=1, random_state=0)
    stages = build_stages(reducer=pca, clusterer=kmeans, seed=99)
    assert isinstance(stages.reducer, SklearnReducer) and isinstance(stages.clusterer, SklearnClusterer)
    assert stages.reducer.get_params() == pca.get_params() | {} and stages.reducer.random_state == 4  # kept, not seed
    assert stages.clusterer.get_params() == kmeans.get_params()
    assert repr(stages.reducer) == repr(pca) and repr(stages.clusterer) == repr(kmeans)
    assert reducer_output(stages.reducer) == "pca"
    # a non-t-SNE map: a DBSCAN by name measures eps in k-NN units; the paper's official eps is refused
    assert build_stages(reducer=pca).clusterer.eps_scale == "knn"
    with pytest.raises(ValueError, match="calibrated on scikit-learn t-SNE output"):
        build_stages(reducer=pca, clusterer="dbscan", clusterer_params={"eps_scale": "official"})


def test_plain_kmeans_and_pca_run_analyze_end_to_end_with_a_cache(blobs, tmp_path):
    X, y = blobs
    pca, kmeans = PCA(n_components=3, random_state=0), KMeans(n_clusters=3, n_init=1, random_state=0)
    result = analyze(embeddings=X, stages=build_stages(reducer=pca, clusterer=kmeans, rarity="cluster"), cache=tmp_path)
    labels = result.samples["cluster_id"].to_numpy()
    assert adjusted_rand_score(y, labels) == 1.0
    # relabelled by size as every clusterer: 0 = the 60-point blob; eq. 3 = size / largest
    assert result.samples.groupby("cluster_id").size().tolist() == [60, 40, 20]
    np.testing.assert_allclose(sorted(set(result.samples["likelihood"])), [20 / 60, 40 / 60, 1.0])
    assert result.params["reduce"]["reducer"] == "sklearn.decomposition._pca.PCA"
    assert result.params["cluster"]["clusterer"] == "sklearn.cluster._kmeans.KMeans"
    assert result.params["cluster"]["params"]["n_clusters"] == 3 and result.params["cluster"]["n_clusters"] == 3
    assert not hasattr(pca, "components_") and not hasattr(kmeans, "labels_")  # the user's objects are not fitted

    again = analyze(embeddings=X, stages=build_stages(reducer=PCA(n_components=3, random_state=0),
                                                      clusterer=KMeans(n_clusters=3, n_init=1, random_state=0)),
                    cache=tmp_path)
    assert again.params["cached"] == {"reduce": True, "cluster": True}  # equal parameters, equal keys
    np.testing.assert_array_equal(again.samples["cluster_id"], labels)
    other = analyze(embeddings=X, stages=build_stages(reducer=PCA(n_components=3, random_state=0),
                                                      clusterer=KMeans(n_clusters=2, n_init=1, random_state=0)),
                    cache=tmp_path)
    assert other.params["cached"] == {"reduce": True, "cluster": False} and other.params["cluster"]["n_clusters"] == 2


@pytest.mark.filterwarnings("ignore:The number of connected components:UserWarning")  # three far blobs: Isomap says so
def test_plain_instances_run_the_stability_runs(blobs):
    X, y = blobs
    # Isomap has no random_state: the adapter adds one (the runs set it), which changes nothing
    stages = build_stages(reducer=Isomap(n_neighbors=10, n_components=3),
                          clusterer=KMeans(n_clusters=3, n_init=1, random_state=0))
    result = stability_runs(X, stages=stages, K=2)
    assert result.likelihoods.shape == (2, 120)
    np.testing.assert_array_equal(result.labels[0], result.labels[1])  # a deterministic map: no spread
    assert adjusted_rand_score(y, result.labels[0]) == 1.0 and result.params["reducer"]["reducer"].endswith("Isomap")
    assert "random_state" not in result.params["reducer"]["params"]  # not Isomap's: not in its key


def test_adapter_fits_a_fresh_copy_reads_fitted_attributes_through_and_pickles(blobs):
    X, _ = blobs
    kmeans = KMeans(n_clusters=3, n_init=1, random_state=0)
    adapter = as_clusterer(kmeans).fit(X)
    assert adapter.outlier_scores_ is None and adapter.n_features_in_ == 12
    assert adapter.cluster_centers_.shape == (3, 12) and adapter.n_iter_ >= 1  # KMeans' own, read through
    assert not hasattr(kmeans, "cluster_centers_")
    twin = clone(adapter)
    assert type(twin) is type(adapter) is SklearnClusterer.wrapping(KMeans) and not hasattr(twin, "labels_")
    restored = pickle.loads(pickle.dumps(adapter))
    assert type(restored) is type(adapter)
    np.testing.assert_array_equal(restored.labels_, adapter.labels_)
    # a library clusterer with GLOSH outlier scores keeps them
    scored = as_clusterer(hdbscan.HDBSCAN(min_cluster_size=10)).fit(X)
    assert scored.outlier_scores_.shape == (120,) and np.isfinite(scored.outlier_scores_).all()
    assert as_reducer(PCA(n_components=2)).fit(X).explained_variance_ratio_.shape == (2,)


@pytest.mark.slow
def test_cache_keys_come_from_parameters_not_identity(blobs):
    X, _ = blobs
    pipeline = make_pipeline(StandardScaler(), PCA(n_components=3, random_state=0))  # nested estimators
    key = as_reducer(pipeline).cache_key()
    assert key["reducer"] == "sklearn.pipeline.Pipeline"
    steps = key["params"]["steps"]
    assert [s[0] for s in steps] == ["standardscaler", "pca"]
    assert steps[1][1]["class"] == "sklearn.decomposition._pca.PCA" and steps[1][1]["params"]["n_components"] == 3
    assert as_reducer(clone(pipeline)).cache_key() == key  # another object, the same parameters
    changed = make_pipeline(StandardScaler(), PCA(n_components=2, random_state=0))
    assert as_reducer(changed).cache_key() != key
    assert as_reducer(pipeline).fit(X).embedding_.shape == (120, 3)
    # arrays by content, not identity
    centres = X[:3].astype(np.float64)
    assert as_clusterer(KMeans(3, init=centres, n_init=1)).cache_key() == \
        as_clusterer(KMeans(3, init=centres.copy(), n_init=1)).cache_key()
    assert as_clusterer(KMeans(3, init=centres + 1, n_init=1)).cache_key() != \
        as_clusterer(KMeans(3, init=centres, n_init=1)).cache_key()
    # and the same JSON in a fresh Python process (a repr with a memory address would differ)
    code = ("import json; from sklearn.pipeline import make_pipeline; "
            "from sklearn.preprocessing import StandardScaler; "
            "from sklearn.decomposition import PCA; from deqlib.reduce import as_reducer; "
            "print(json.dumps(as_reducer(make_pipeline(StandardScaler(), PCA(n_components=3, random_state=0)))"
            ".cache_key(), sort_keys=True))")
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(fresh) == json.loads(json.dumps(key, sort_keys=True))


def test_what_cannot_be_keyed_or_adapted_is_refused_naming_the_fix():
    with pytest.raises(TypeError, match="metric=.*lambda.*module level"):
        estimator_key(OPTICS(metric=lambda a, b: 0.0))
    with pytest.raises(TypeError, match="memory=<object object at 0x.*memory address"):
        estimator_key(hdbscan.HDBSCAN(memory=object()))
    assert estimator_key(hdbscan.HDBSCAN())["params"]["memory"] == {"object": "joblib.memory.Memory",
                                                                    "repr": "Memory(location=None)"}
    with pytest.raises(TypeError, match="the class PCA; pass PCA"):
        as_reducer(PCA)
    with pytest.raises(TypeError, match="registered name \\(opentsne, sklearn, umap\\).*got int"):
        build_stages(reducer=3)
    with pytest.raises(TypeError, match="has no get_params"):
        as_clusterer(type("Bare", (), {"fit": lambda self, X: self})())
    with pytest.raises(TypeError, match=r"as_clusterer\(Cls\(...\)\)"):
        SklearnClusterer(OPTICS())
    with pytest.raises(TypeError, match="takes a class"):
        SklearnClusterer.wrapping(OPTICS())
    with pytest.raises(ValueError, match="reducer_params apply to a reducer given by name"):
        build_stages(reducer=PCA(), reducer_params={"n_components": 3})
    with pytest.raises(TypeError, match="no fit_transform and sets no embedding_"):  # a clusterer passed as reducer
        as_reducer(DBSCAN()).fit(np.random.default_rng(0).normal(size=(20, 3)))


def test_one_check_of_the_data_with_messages_that_name_the_fix():
    from scipy import sparse

    from deqlib._validation import check_samples

    X = np.arange(12, dtype=np.float32).reshape(4, 3)
    fortran = np.asfortranarray(X)
    checked = check_samples(fortran)
    assert checked.flags.c_contiguous and checked.dtype == np.float32 and np.array_equal(checked, X)
    readonly = X.copy()
    readonly.flags.writeable = False
    assert check_samples(readonly) is readonly and check_samples(readonly, writeable=True).flags.writeable
    assert check_samples(X.astype(object)).dtype == np.float64 and check_samples([[1, 2], [3, 4]]).dtype == np.float64
    cases = [
        (sparse.csr_matrix(X), TypeError, r"X is a sparse matrix \(csr_matrix\); sparse input is not supported.*toarray"),
        (X + 1j, ValueError, r"Complex data not supported: X has dtype complex64; pass real numbers"),
        (np.array([[1.0, {"a": 1}]], dtype=object), TypeError, "argument must be a string or a real number.*Convert or drop"),
        (np.array([["1.0", "cat"]]), ValueError, "could not convert string to float.*Convert or drop"),
        (np.empty((0, 3)), ValueError, r"X has 0 sample\(s\) \(shape=\(0, 3\)\) while a minimum of 1 is required"),
        (np.empty((12, 0)), ValueError, r"X has 0 feature\(s\) \(shape=\(12, 0\)\) while a minimum of 1 is required"),
        (np.zeros(5), ValueError, r"non-empty 2-D array .* got shape \(5,\); a single sample is X.reshape\(1, -1\)"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), ValueError, r"NaN or infinite values in 1 of 2 rows \(first rows: \[0\]\)"),
    ]
    for data, error, message in cases:
        with pytest.raises(error, match=message):
            check_samples(data)
    with pytest.raises(ValueError, match=r"X has 1 sample\(s\) .* minimum of 2"):
        check_samples(X[:1], min_samples=2)


@pytest.mark.parametrize("name", ["opentsne", pytest.param("sklearn", marks=pytest.mark.slow)])
def test_a_3d_t_sne_map_of_2d_data_starts_from_the_padded_pca(name):
    """Both t-SNEs' PCA start asked for 3 components of 2 features and failed; now the third column is noise."""
    from deqlib.reduce import REDUCERS

    X, y = make_blobs(n_samples=[40, 30], n_features=2, centers=[[0, 0], [30, 30]], random_state=0)
    reducer = REDUCERS.create(name, **REDUCERS.entry(name).extra["test_params"])
    coords = reducer.fit_transform(X)
    assert coords.shape == (70, 3) and np.isfinite(coords).all() and coords[:, 2].std() > 0
    assert reducer.n_features_in_ == 2
    np.testing.assert_array_equal(clone(reducer).fit_transform(X), coords)  # the padding is seeded
    distances = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    assert (y[distances.argmin(axis=1)] == y).mean() >= 0.85  # the blobs stay apart (as in the reducer contract)


def test_the_sample_fit_policy_is_read_from_the_reducer():
    from deqlib.reduce import OpenTSNEReducer, min_fit_samples

    reducer = OpenTSNEReducer(perplexity=30.0)  # default policy: 100,000 of 250,000 points (40%)
    scaled = reducer.sample_fit_at(5000)
    assert (scaled.sample_size, scaled.sample_threshold) == (2000, 2000) and reducer.sample_size == 100_000
    assert OpenTSNEReducer(sample_threshold=1000, sample_size=250).sample_fit_at(5000).sample_size == 1250
    assert reducer.sample_fit_at(100).sample_size == min_fit_samples(30.0) == 91  # the perplexity's minimum
