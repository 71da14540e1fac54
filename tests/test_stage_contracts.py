"""The contract every registered reducer and clusterer keeps, checked for every registry entry.

Parametrised over ``REDUCERS.names()`` and ``CLUSTERERS.names()`` when the tests are collected,
so a part is tested the moment it is registered: nothing here lists parts by hand. An entry may
declare in its registry ``extra``:

* ``test_params``: a tiny, fast setting (few iterations, small neighbourhoods) used here;
* ``invalid_params``: a bad value (required) that must raise ValueError naming the parameter;
* ``output`` (reducers, required): the family of its coordinates, read by ``build_stages``.

Plain scikit-learn classes through the one-line adapters (``SklearnClusterer.wrapping(Birch)``,
``...(OPTICS)``, ``SklearnReducer.wrapping(PCA)``) run the same contract: :data:`WRAPPED_FOR_TEST`
registers them while this module runs (and removes them afterwards, so other modules see the
real registries).
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.cluster import OPTICS, Birch
from sklearn.datasets import make_blobs
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits

from deqlib.cluster import CLUSTERERS, PRESETS, ClusterResult, SklearnClusterer, get_clusterer
from deqlib.pipeline import build_stages
from deqlib.reduce import REDUCERS, SklearnReducer

#: Scikit-learn classes registered through the one-line adapters while this module runs:
#: name -> (registry, adapter class, registry entry's extra).
WRAPPED_FOR_TEST = {
    "sklearn-birch": (CLUSTERERS, SklearnClusterer.wrapping(Birch),
                      {"test_params": {"n_clusters": 3}, "invalid_params": {"threshold": -1.0}}),
    "sklearn-optics": (CLUSTERERS, SklearnClusterer.wrapping(OPTICS),
                       {"test_params": {"min_samples": 10, "cluster_method": "dbscan", "eps": 2.0},
                        "invalid_params": {"min_samples": -3}}),
    "sklearn-pca": (REDUCERS, SklearnReducer.wrapping(PCA),
                    {"output": "pca", "test_params": {"n_components": 3},
                     "invalid_params": {"n_components": -1}}),
}
REDUCER_NAMES = REDUCERS.names() + tuple(n for n, (r, *_) in WRAPPED_FOR_TEST.items() if r is REDUCERS)
CLUSTERER_NAMES = CLUSTERERS.names() + tuple(n for n, (r, *_) in WRAPPED_FOR_TEST.items() if r is CLUSTERERS)


@pytest.fixture(scope="module", autouse=True)
def wrapped_sklearn_parts():
    """Register :data:`WRAPPED_FOR_TEST` for this module's tests only."""
    for name, (registry, adapter, extra) in WRAPPED_FOR_TEST.items():
        registry.register(name, summary=f"scikit-learn {adapter.estimator_class.__name__} (contract test)",
                          **extra)(adapter)
    yield
    for name, (registry, _, _) in WRAPPED_FOR_TEST.items():
        registry.unregister(name)


@pytest.fixture(scope="module")
def high_dim_blobs():
    """Three 12-D blobs (60, 40, 20 points): what a reducer gets."""
    X, y = make_blobs(n_samples=[60, 40, 20], n_features=12, cluster_std=1.0, random_state=5,
                      centers=np.random.default_rng(5).normal(scale=10, size=(3, 12)))
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def points():
    """Three well-separated 3-D blobs of 150, 90 and 60 points: what a clusterer gets."""
    X, y = make_blobs(n_samples=[150, 90, 60], n_features=3, centers=[[0, 0, 0], [25, 0, 0], [0, 25, 0]],
                      cluster_std=1.0, random_state=1)
    return X, y


def _reducer(name, **overrides):
    entry = REDUCERS.entry(name)
    return REDUCERS.create(name, **{**entry.extra.get("test_params", {}), **overrides})


def _clusterer(name, **overrides):
    entry = CLUSTERERS.entry(name)
    return CLUSTERERS.create(name, **{**entry.extra.get("test_params", {}), **overrides})


def _round_trips(estimator):
    params = estimator.get_params()
    twin = clone(estimator)
    assert type(twin) is type(estimator) and twin is not estimator
    assert twin.get_params() == params
    assert estimator.set_params(**params) is estimator and estimator.get_params() == params
    key = estimator.cache_key()
    assert isinstance(key, dict) and json.loads(json.dumps(key, sort_keys=True, default=str))


def test_the_registries_hold_the_documented_parts():
    assert REDUCER_NAMES[:2] == ("opentsne", "sklearn") and "umap" in REDUCER_NAMES
    assert CLUSTERER_NAMES[0] == "dbscan" and {"hdbscan", "fast-hdbscan"} <= set(CLUSTERER_NAMES)
    assert set(WRAPPED_FOR_TEST) <= set(REDUCERS.names()) | set(CLUSTERERS.names())  # while this module runs


# ------------------------------------------------------------------------------------ reducers
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "umap" else n  # numba JIT: ~25 s
                                  for n in REDUCER_NAMES])
def test_reducer_contract(name, high_dim_blobs):
    X, y = high_dim_blobs
    entry = REDUCERS.entry(name)
    assert isinstance(entry.extra.get("output"), str), "a reducer entry must say its output family (output=...)"
    reducer = _reducer(name)
    assert "random_state" in reducer.get_params()  # the stage builder's seed goes there
    n_components = reducer.get_params().get("n_components", 3)
    with threadpool_limits(1):  # OpenMP threads crawl on a shared, busy machine (results do not depend on them)
        assert reducer.fit(X) is reducer
        coords = reducer.embedding_
        assert coords.shape == (len(X), n_components) and np.isfinite(coords).all()
        # deterministic for a fixed random_state: a clone gives the same coordinates
        np.testing.assert_array_equal(clone(reducer).fit_transform(X), coords)
    # and the map keeps the blobs apart: most points' nearest neighbour in it is of their own blob
    # (chance: 0.39; the tiny test schedules leave sklearn's t-SNE at 0.89, the others at 1.0)
    distances = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    assert (y[distances.argmin(axis=1)] == y).mean() >= 0.85
    _round_trips(reducer)
    assert reducer.cache_key() != _reducer(name, random_state=(reducer.random_state or 0) + 1).cache_key()


@pytest.mark.parametrize("name", REDUCER_NAMES)
def test_reducer_refuses_bad_parameters_naming_them(name, high_dim_blobs):
    X, _ = high_dim_blobs
    invalid = REDUCERS.entry(name).extra.get("invalid_params")
    assert invalid, "a reducer entry must declare invalid_params={param: bad value} for this test"
    for param, value in {**invalid, "n_components": True}.items():
        with pytest.raises(ValueError, match=param):
            _reducer(name, **{param: value}).fit(X)


@pytest.mark.parametrize("name", REDUCER_NAMES)
def test_reducer_is_reachable_through_the_stage_builder(name):
    stages = build_stages(reducer=name, reducer_params=REDUCERS.entry(name).extra.get("test_params"), seed=21)
    assert stages.reducer.random_state == 21
    tsne = REDUCERS.entry(name).extra["output"] == "tsne"
    assert stages.clusterer.eps_scale == ("official" if tsne else "knn")


# ---------------------------------------------------------------------------------- clusterers
@pytest.mark.parametrize("name", CLUSTERER_NAMES)
def test_clusterer_contract(name, points):
    X, y = points
    clusterer = _clusterer(name)
    assert clusterer.fit(X) is clusterer
    labels = clusterer.labels_
    assert labels.shape == (len(X),) and labels.dtype == np.int64 and labels.min() >= -1
    assert adjusted_rand_score(y, labels) > 0.9
    sizes = np.bincount(labels[labels >= 0])
    assert list(sizes) == sorted(sizes, reverse=True) and sizes.size == 3  # ids relabelled by size, 0 largest
    scores = clusterer.outlier_scores_
    assert scores is None or (scores.shape == (len(X),) and np.isfinite(scores).all())
    assert isinstance(clusterer.result_, ClusterResult) and clusterer.result_.labels is labels
    assert clusterer.params_["n_clusters"] == 3 and clusterer.params_["degenerate"] is None
    np.testing.assert_array_equal(clone(clusterer).fit_predict(X), labels)
    _round_trips(clusterer)


@pytest.mark.parametrize("name", CLUSTERER_NAMES)
def test_clusterer_refuses_bad_parameters_naming_them(name, points):
    X, _ = points
    invalid = CLUSTERERS.entry(name).extra.get("invalid_params")
    assert invalid, "a clusterer entry must declare invalid_params={param: bad value} for this test"
    for param, value in invalid.items():
        with pytest.raises(ValueError, match=param):
            _clusterer(name, **{param: value}).fit(X)


@pytest.mark.parametrize("name", CLUSTERER_NAMES)
def test_clusterer_presets_and_stage_builder(name):
    entry = CLUSTERERS.entry(name)
    stages = build_stages(clusterer=name, clusterer_params=entry.extra.get("test_params"))
    assert type(stages.clusterer) is type(_clusterer(name))
    if "preset_params" in entry.extra:
        for preset in PRESETS:
            made = get_clusterer(name, preset=preset)
            assert made.get_params() == {**_clusterer(name).__class__().get_params(),
                                         **entry.extra["preset_params"](PRESETS[preset]),
                                         **({"eps_scale": made.get_params()["eps_scale"]}
                                            if "eps_scale" in made.get_params() else {})}
    else:
        with pytest.raises(ValueError, match="cannot read the paper's presets"):
            get_clusterer(name, preset="kitti")


# ---------------------------------------------------------------------------------- validation
def test_one_validation_module_one_message_style():
    from deqlib._validation import check_bool, check_choice, check_int, check_real

    assert check_int("k", np.int64(3), 1) == 3 and type(check_int("k", np.int64(3), 1)) is int
    assert check_int("min_samples", None, 1, allow_none=True) is None
    assert check_real("eps", 2, 0, exclusive=True) == 2.0 and check_real("x", 0, 0) == 0.0
    assert check_choice("method", "eom", ("eom", "leaf")) == "eom" and check_bool("flag", np.bool_(True)) is True
    cases = [
        (lambda: check_int("min_samples", True, 1, allow_none=True), "min_samples must be an integer >= 1 or None, got True"),
        (lambda: check_int("n_iter", 2.0, 0), "n_iter must be an integer >= 0, got 2.0"),
        (lambda: check_real("eps", 0, 0, exclusive=True), "eps must be a positive number, got 0"),
        (lambda: check_real("cluster_selection_epsilon", -5, 0), "cluster_selection_epsilon must be a number >= 0, got -5"),
        (lambda: check_real("theta", float("nan")), "theta must be a finite number, got nan"),
        (lambda: check_real("scale", True, 0), "scale must be a number >= 0, got True"),
        (lambda: check_choice("eps_scale", "relative", ("official", "knn", "raw")),
         "eps_scale must be one of 'official', 'knn', 'raw', got 'relative'"),
        (lambda: check_choice("n", True, (1, 2)), "n must be one of 1, 2, got True"),
        (lambda: check_bool("scale", 1), "scale must be True or False, got 1"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError) as error:
            call()
        assert str(error.value) == message


@pytest.mark.parametrize("registry, name", [(REDUCERS, n) for n in REDUCERS.names() if REDUCERS.entry(n).requires]
                         + [(CLUSTERERS, n) for n in CLUSTERERS.names() if CLUSTERERS.entry(n).requires])
def test_an_optional_part_without_its_package_says_what_to_install(registry, name, monkeypatch):
    import importlib.util

    from deqlib.registry import MissingDependencyError

    entry = registry.entry(name)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda module, *a: None if module in entry.requires else real(module, *a))
    with pytest.raises(MissingDependencyError, match=f"pip install {entry.extra.get('pip', entry.requires[0])}"):
        registry.create(name)
    # and the package is declared: pyproject.toml lists what the entry asks to install
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text().lower()
    assert f'"{entry.extra.get("pip", entry.requires[0]).lower()}>=' in pyproject


# --------------------------------------------------------------------------------- memory order
@pytest.mark.parametrize("name", CLUSTERER_NAMES)
def test_clusterer_takes_points_in_any_memory_order(name, points):
    """``bank[["x", "y", "z"]].to_numpy()`` is Fortran-ordered; fast_hdbscan's numba code raised a TypeError on it."""
    X, _ = points
    fortran = pd.DataFrame(X, columns=["x", "y", "z"])[["x", "y", "z"]].to_numpy()
    assert fortran.flags.f_contiguous and not fortran.flags.c_contiguous
    strided = np.hstack([X, X])[:, ::2]  # neither C- nor Fortran-contiguous
    expected = _clusterer(name).fit_predict(np.ascontiguousarray(X))
    for layout in (fortran, strided, fortran.astype(np.float32)):
        np.testing.assert_array_equal(_clusterer(name).fit_predict(layout), expected)


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.slow] if n == "umap" else []) for n in REDUCER_NAMES])
def test_reducer_takes_embeddings_in_any_memory_order(name, high_dim_blobs):
    X, _ = high_dim_blobs
    with threadpool_limits(1):
        expected = _reducer(name).fit_transform(np.ascontiguousarray(X))
        np.testing.assert_array_equal(_reducer(name).fit_transform(np.asfortranarray(X)), expected)
