"""deqlib.recovery: the rarity benchmark's metrics on inputs with known answers, and its registry-driven plan."""

from __future__ import annotations

import numpy as np
import pytest

from deqlib import recovery as R
from deqlib.likelihood import RARITY_SIGNALS, RaritySignal


def test_precision_at_prevalence_counts_ties_at_their_expected_share():
    rare = np.array([True, True, False, False, False])
    assert R.precision_at_prevalence(rare, [0.9, 0.1, 0.8, 0.2, 0.3]) == pytest.approx(0.5)
    assert R.precision_at_prevalence(rare, np.zeros(5)) == pytest.approx(0.4)  # constant: the prevalence
    tied = np.array([True, False, True, False, False])
    # k = 2: one sample above the cut (rare), one place left among three tied samples, one of them rare
    assert R.precision_at_prevalence(tied, [1.0, 0.5, 0.5, 0.5, 0.0]) == pytest.approx((1 + 1 / 3) / 2)


def test_recovery_metrics_of_a_perfect_and_an_inverted_signal():
    rare = np.arange(100) < 5
    found = R.recovery_metrics(rare, np.where(rare, 0.1, 1.0))
    assert found["roc_auc"] == 1.0 and found["average_precision"] == 1.0
    assert found["precision_at_prevalence"] == 1.0 and found["n_levels"] == 2
    assert found["prevalence"] == 0.05 and found["ap_over_prevalence"] == pytest.approx(20.0)
    # eq. 4: W(0.1) / W(1) = (eta + 0.9^5) / eta
    assert found["weight_ratio_1_5"] == pytest.approx((1 + 0.9 ** 5) / 1.0)
    assert found["weight_ratio_0.3_5"] == pytest.approx((0.3 + 0.9 ** 5) / 0.3)
    inverted = R.recovery_metrics(rare, np.where(rare, 1.0, 0.1))
    assert inverted["roc_auc"] == 0.0 and inverted["precision_at_prevalence"] == 0.0
    assert inverted["weight_ratio_1_5"] == pytest.approx(1 / (1 + 0.9 ** 5))
    flat = R.recovery_metrics(rare, np.ones(100))
    assert flat["roc_auc"] == 0.5 and flat["n_levels"] == 1 and flat["weight_ratio_1_5"] == 1.0


def test_metrics_refuse_inputs_that_cannot_be_scored():
    with pytest.raises(ValueError, match="boolean array"):
        R.recovery_metrics(np.array([0, 1, 0]), [1.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="some samples and not all"):
        R.recovery_metrics(np.zeros(3, bool), [1.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="NaN"):
        R.recovery_metrics(np.array([True, False]), [np.nan, 1.0])


def test_spearman_known_values():
    a = np.arange(10.0)
    assert R.spearman(a, a * 3 + 1) == pytest.approx(1.0)
    assert R.spearman(a, -a) == pytest.approx(-1.0)
    assert R.spearman(np.ones(4), np.ones(4)) == 1.0
    assert np.isnan(R.spearman(np.ones(4), a[:4]))


def test_probe_ceiling_separates_what_is_linearly_visible_and_not_noise():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 20))
    rare = np.arange(400) < 20
    X[rare, 0] += 4.0  # visible along one direction
    assert R.probe_ceiling(X, rare) > 0.95
    assert abs(R.probe_ceiling(rng.normal(size=(400, 20)), rare) - 0.5) < 0.2  # invisible: near chance
    assert np.isnan(R.probe_ceiling(X, np.arange(400) < 1))  # one rare sample: no cross-validation


class _Far(RaritySignal):
    """A temporary signal for the plan test: the norm of each vector, scaled into (0, 1]."""

    name = "test-norm"
    needs = ("embeddings",)

    def fit(self, context):
        norm = np.linalg.norm(np.asarray(context.embeddings), axis=1)
        return self._finish(norm.min() / norm)


def test_signal_variants_follow_the_registry():
    from deqlib.cluster import CLUSTERERS
    from deqlib.reduce import REDUCERS

    RARITY_SIGNALS.register("test-norm", summary="test", needs=("embeddings",))(_Far)
    try:
        variants = R.signal_variants()
        by_label = {v.label: v for v in variants}
        assert by_label["test-norm"].tier == "cheap" and by_label["knn-density"].tier == "cheap"
        assert by_label["consensus-mean"].tier == "consensus"
        cluster = [v for v in variants if v.signal == "cluster"]
        assert len(cluster) == len(REDUCERS.names(available_only=True)) * len(CLUSTERERS.names(available_only=True))
        assert "cluster[opentsne+dbscan]" in by_label and all(v.tier == "analysis" for v in cluster)
        assert {v.signal for v in variants} == set(RARITY_SIGNALS.names(available_only=True))
    finally:
        RARITY_SIGNALS.unregister("test-norm")
    assert "test-norm" not in {v.label for v in R.signal_variants()}


def test_evaluate_a_cheap_signal_on_a_planted_far_group():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 8)).astype(np.float32)
    rare = np.zeros(300, bool)
    rare[rng.choice(300, 9, replace=False)] = True
    X[rare] += 12.0  # a small group far from the rest: sparse, so low k-NN density
    record = R.evaluate_variant(R.Evaluator(X), R.SignalVariant("knn-density", "cheap"), rare, seed=0)
    assert record["roc_auc"] > 0.95 and record["ap_over_prevalence"] > 10
    assert record["spearman_ab"] == pytest.approx(1.0)  # deterministic: the row order changes nothing
    assert record["tier"] == "cheap" and record["K"] == 1 and record["seconds"] > 0
    assert record["seeds"][0] != record["seeds"][1]


@pytest.mark.slow
def test_evaluate_eq3_on_an_analysis_and_the_consensus_on_k_runs():
    rng = np.random.default_rng(2)
    centres = rng.normal(scale=10, size=(4, 16))
    X = np.concatenate([c + rng.normal(size=(100, 16)) for c in centres]).astype(np.float32)
    rare = np.zeros(len(X), bool)
    evaluator = R.Evaluator(X, K=2)
    rare[:12] = True
    X[:12] += 40.0
    evaluator = R.Evaluator(X, K=2)
    record = R.evaluate_variant(evaluator, R.SignalVariant("cluster", "analysis", "opentsne", "hdbscan"), rare, 0)
    assert 0.0 <= record["roc_auc"] <= 1.0 and record["upstream_seconds"] > 0
    assert record["variant"] == "cluster[opentsne+hdbscan]" and -1.0 <= record["spearman_ab"] <= 1.0
    consensus = R.evaluate_variant(evaluator, R.SignalVariant("consensus-mean", "consensus"), rare, 0)
    assert consensus["K"] == 2 and consensus["upstream_seconds"] > 0
    # the same analysis serves every variant that needs it: the second fit of one variant is free upstream
    _, timing = evaluator.fit(R.SignalVariant("cluster", "analysis", "opentsne", "hdbscan"), record["seeds"][0])
    assert timing["upstream_seconds"] == pytest.approx(record["upstream_seconds"])
    assert len(evaluator._analyses) == 2 and len(evaluator._runs) == 2
