"""scikit-learn's own estimator checks (``check_estimator``) on every registered reducer and clusterer.

Parametrised over ``REDUCERS`` and ``CLUSTERERS`` when the tests are collected, so a part is
checked the moment it is registered, one test per (part, check). Each part is made with its
registry entry's ``test_params``, then :data:`SMALL_DATA`: scikit-learn's checks fit arrays of 10
to 30 samples (``check_estimators_nan_inf`` and ``check_fit2d_1feature`` 10,
``check_n_features_in_after_fitting`` 15), fewer than a t-SNE at perplexity 5 (16), UMAP with 10
neighbours (11) or HDBSCAN with ``min_cluster_size=15`` (16) accept, so those parameters are
lowered where a part has them. At the entries' ``test_params`` exactly those three checks fail
on the sample count for opentsne, hdbscan and fast-hdbscan (two for sklearn-tsne and umap), with
the part's own message naming the minimum: a refusal, not a defect.

Adapters of plain scikit-learn classes (:class:`deqlib.reduce.SklearnReducer`,
:class:`deqlib.cluster.SklearnClusterer`) are checked too: one of each kind of parameter list
(with and without a ``random_state`` of their own).

Every check that is not run, or expected to fail, is listed with its reason: :data:`NOT_RUN`
(for every part), a registry entry's ``expected_failed_checks`` (``{check name: reason}``, beside
the part's registration, so adding a part stays one entry and its test) and
:data:`EXPECTED_FAILURES` (the adapters here). A check listed as failing that passes fails the
suite (``xfail_strict``), so the lists stay honest. Today no registered part lists one.
"""

import numpy as np
import pytest
from sklearn.cluster import Birch, KMeans
from sklearn.decomposition import PCA
from sklearn.manifold import Isomap
from sklearn.utils.estimator_checks import estimator_checks_generator

from deqlib.cluster import CLUSTERERS, as_clusterer
from deqlib.reduce import REDUCERS, as_reducer

#: Parameters lowered for the checks' small arrays, wherever a part has them (see the module docstring).
SMALL_DATA = {"perplexity": 3.0, "n_neighbors": 5, "min_cluster_size": 5}

#: Checks not run on any part, and why.
NOT_RUN = {
    "check_array_api_input": "deqlib's parts take NumPy arrays (they convert any input with numpy); scikit-learn "
                             "skips this check itself unless SCIPY_ARRAY_API=1 is set before scipy is imported",
}

#: Checks expected to fail on the adapters below, and why (registered parts: their entry's expected_failed_checks).
EXPECTED_FAILURES = {
    "adapter:Birch": {
        "check_clusterer_compute_labels_predict":
            "scikit-learn runs it on any estimator with a compute_labels parameter and calls predict; deqlib "
            "clusterers label the points they are fitted on and have no predict",
    },
}

#: Parts whose checks take long on 2 cores (numba compiles umap-learn's kernels: ~40 s for its 41 checks;
#: scikit-learn's TSNE runs a full t-SNE per check: ~150 s for its checks on a loaded 2-core machine, 2026-12-02).
SLOW_PARTS = {"umap", "sklearn"}


def _registered():
    for registry in (REDUCERS, CLUSTERERS):
        for name in registry.names():
            entry = registry.entry(name)
            EXPECTED_FAILURES[name] = dict(entry.extra.get("expected_failed_checks", {}))
            part = registry.create(name, **entry.extra.get("test_params", {}))
            yield name, part.set_params(**{k: v for k, v in SMALL_DATA.items() if k in part.get_params()})


PARTS = dict(_registered())
PARTS.update({
    "adapter:PCA": as_reducer(PCA(n_components=2)),
    "adapter:Isomap": as_reducer(Isomap(n_neighbors=5, n_components=2)),  # no random_state of its own
    "adapter:Birch": as_clusterer(Birch(n_clusters=3)),
    "adapter:KMeans": as_clusterer(KMeans(n_clusters=3, n_init=1)),
})


def _check_name(check) -> str:
    return getattr(check, "func", check).__name__


def _cases():
    for name, part in PARTS.items():
        marks = [pytest.mark.slow] if name in SLOW_PARTS else []
        expected = EXPECTED_FAILURES.get(name) or None
        for item in estimator_checks_generator(part, expected_failed_checks=expected, mark="xfail", xfail_strict=True):
            values, item_marks = (item.values, list(item.marks)) if hasattr(item, "values") else (item, [])
            check = values[1]
            if _check_name(check) in NOT_RUN:
                continue
            yield pytest.param(*values, marks=marks + item_marks, id=f"{name}-{_check_name(check)}")


@pytest.mark.parametrize("estimator, check", list(_cases()))
def test_scikit_learn_check(estimator, check):
    check(estimator)


def test_every_registered_part_is_checked_and_every_listed_check_exists():
    checked = {p.id.split("-check_")[0] for p in _cases()}
    assert set(REDUCERS.names()) | set(CLUSTERERS.names()) <= checked
    names = {_check_name(values[1]) for part in PARTS.values() for values in
             (item.values if hasattr(item, "values") else item for item in estimator_checks_generator(part))}
    listed = set(NOT_RUN) | {check for failures in EXPECTED_FAILURES.values() for check in failures}
    assert listed <= names, f"listed checks scikit-learn no longer has: {sorted(listed - names)}"
    assert set(EXPECTED_FAILURES) <= set(PARTS)


def test_the_small_data_parameters_are_the_only_reason_for_three_failures():
    """At their registry test_params, t-SNE, UMAP and HDBSCAN refuse the checks' 10-sample arrays by their sample
    minimum, with their own message: why SMALL_DATA exists (and it changes nothing else)."""
    X = np.random.default_rng(0).uniform(size=(10, 3))
    for registry, name, message in ((REDUCERS, "opentsne", "needs at least 16 samples"),
                                    (REDUCERS, "umap", "needs more samples than that, got 10"),
                                    (CLUSTERERS, "hdbscan", r"more samples than min_samples \(15\), got 10 sample")):
        with pytest.raises(ValueError, match=message):
            registry.create(name, **registry.entry(name).extra["test_params"]).fit(X)
