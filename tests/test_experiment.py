"""The training experiment: its parts on known data (weights, placebo, paired CIs, seeded draws) and a small
end-to-end run on one core beside a busy process. No assertion on which arm wins."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deqlib import experiment as ex

ROOT = Path(__file__).resolve().parent.parent


def test_long_tailed_sizes_follow_the_random_class_order():
    labels = np.repeat(np.arange(10), 1000)
    order = [3, 7, 0, 9, 1, 2, 8, 4, 6, 5]
    counts = np.bincount(labels[ex.long_tailed_indices(labels, 1000, 100.0, seed=1, class_order=order)])
    assert counts[3] == 1000 and counts[5] == 10
    assert (np.diff(counts[order]) < 0).all()
    assert ex.long_tailed_sizes(10, 800, 100.0).tolist() == [800, 480, 288, 172, 103, 62, 37, 22, 13, 8]


QUICK = ex.experiment_config(quick=True)


def _arm(name, config=QUICK):
    return {arm.name: arm for arm in ex.design(config)}[name]


def test_oracle_weights_give_the_stated_ratio_under_every_weight():
    rare = np.zeros(1000, bool)
    rare[:50] = True
    likelihood = ex.oracle_likelihood(rare)
    assert likelihood[~rare].tolist() == [1.0] * 950 and likelihood[rare] == pytest.approx(50 / 950)
    y = np.arange(1000) % 10
    expected = {"eq4(1,5)": (1 + (1 - 50 / 950) ** 5) / 1, "eq4(0.3,5)": (0.3 + (1 - 50 / 950) ** 5) / 0.3,
                "cb(4)": 4.0, "cb(17)": 17.0,  # 950 / 50 = 19, capped
                "rank(10)": 10 ** (950 / 999)}   # u of a rare sample: 950 of the 999 others are more common
    for weight, ratio in expected.items():
        weights = ex.arm_weights(_arm(f"oracle-rare x {weight}"), {"oracle-rare": likelihood}, y, QUICK, seed=0)
        assert ex.realised_ratio(weights, rare) == pytest.approx(ratio), weight
        assert weights.mean() == pytest.approx(1.0)
    assert ex.realised_ratio(ex.arm_weights(_arm("CE"), {}, y, QUICK, 0), rare) == 1.0


def test_the_class_oracle_is_eq3_of_the_true_classes_and_only_where_classes_are_rare():
    y = np.array([0] * 6 + [1] * 3 + [2])
    np.testing.assert_allclose(ex.class_oracle_likelihood(y), [1.0] * 6 + [0.5] * 3 + [1 / 6])
    arms = ex.design(QUICK)
    assert "oracle-class x cb(17)" in {a.name for a in ex.arms_for(arms, "long_tail", "frozen_head")}
    blurred = {a.name for a in ex.arms_for(arms, "blurred", "frozen_head")}
    assert not {n for n in blurred if n.startswith("oracle-class") or n in ("class-balanced", "logit-adjusted")}


@pytest.mark.parametrize("weight", list(ex.ExperimentConfig().weights))
def test_placebo_is_the_oracle_weight_multiset_exactly_and_breaks_the_link_to_rarity(weight):
    rng = np.random.default_rng(0)
    rare = rng.random(2000) < 0.05
    y = rng.integers(0, 10, 2000)
    likelihoods = {"oracle-rare": ex.oracle_likelihood(rare)}
    oracle = ex.arm_weights(_arm(f"oracle-rare x {weight}"), likelihoods, y, QUICK, seed=3)
    placebo = ex.arm_weights(_arm(f"placebo x {weight}"), likelihoods, y, QUICK, seed=3)
    np.testing.assert_array_equal(np.sort(placebo), np.sort(oracle))  # the same multiset, bit for bit
    assert ex.realised_ratio(oracle, rare) > 1.7  # eq4(1,5) at 5% prevalence: 1 + (1 - 0.053)^5 = 1.76
    assert 0.7 < ex.realised_ratio(placebo, rare) < 1.4
    # seeded: same seed, same permutation; another seed, another one
    np.testing.assert_array_equal(placebo, ex.arm_weights(_arm(f"placebo x {weight}"), likelihoods, y, QUICK, 3))
    assert not np.array_equal(placebo, ex.arm_weights(_arm(f"placebo x {weight}"), likelihoods, y, QUICK, 4))


def test_the_design_takes_label_free_signals_by_registry_name_from_the_config():
    config = ex.ExperimentConfig(signals={"knn10": ("knn-density", {"k": 10}), "eq3": ("cluster", {})})
    arms = ex.design(config)
    names = [a.name for a in arms]
    assert len(names) == len(set(names)) and names[0] == "CE"
    weights = list(config.weights)
    assert weights == ["eq4(1,5)", "eq4(0.3,5)", "cb(4)", "cb(17)", "rank(10)"]
    for signal in ("oracle-rare", "oracle-class", "knn10", "eq3", "placebo"):
        assert [f"{signal} x {w}" for w in weights] == [n for n in names if n.startswith(f"{signal} x ")]
    assert [n for n in names if n.startswith("sweep")] == [f"sweep AUC {a:g}" for a in (0.6, 0.7, 0.8, 0.9, 0.95)]
    # the CNN's fractional design: the baselines and every signal at the weights of cnn_weights only
    cnn = {a.name for a in ex.arms_for(arms, "long_tail", "small_cnn")}
    assert cnn == {"CE", "class-balanced", "logit-adjusted"} | {
        f"{s} x {w}" for s in ("oracle-rare", "oracle-class", "knn10", "eq3", "placebo") for w in config.cnn_weights}
    assert len(ex.arms_for(arms, "long_tail", "frozen_head")) == 3 + 5 * 5 + 5
    with pytest.raises(ValueError, match="reserved names"):
        ex.design(ex.ExperimentConfig(signals={"placebo": ("cluster", {})}))
    with pytest.raises(ValueError, match="not in config.weights"):
        ex.design(ex.ExperimentConfig(cnn_weights=("eq4(2,2)",)))
    likelihood = ex.signal_likelihood("knn10", ex.SignalContext(np.random.default_rng(0).normal(size=(60, 4)),
                                                                config, 0), config)
    assert likelihood.shape == (60,) and likelihood.max() == 1.0
    with pytest.raises(ValueError, match="config.signals has"):
        ex.signal_likelihood("lof", None, config)


def test_design_size_and_the_cpu_estimate_count_every_run():
    config = ex.ExperimentConfig()
    counts = ex.count_runs(config).set_index(["setting", "model"])
    # signals: oracle-rare, oracle-class (rare classes only), 4 label-free, placebo. Frozen head: the baselines
    # (3 where classes are rare, else CE) + signals x 5 weights + 5 sweep levels, 10 seeds; CNN: the baselines +
    # signals x 3 weights (cnn_weights), 20 seeds
    assert counts.loc[("long_tail", "frozen_head"), ["arms", "runs"]].tolist() == [3 + 7 * 5 + 5, 430]
    assert counts.loc[("fogged", "frozen_head"), ["arms", "runs"]].tolist() == [1 + 6 * 5 + 5, 360]
    assert counts.loc[("long_tail", "small_cnn"), ["arms", "runs"]].tolist() == [3 + 7 * 3, 480]
    assert counts.loc[("blurred", "small_cnn"), ["arms", "runs"]].tolist() == [1 + 6 * 3, 380]
    estimate = ex.estimate_cpu_seconds(config, {"frozen_head": 1.0, "small_cnn": 10.0}, 2.0)
    assert estimate["runs"] == 430 + 3 * 360 + 480 + 3 * 380
    assert estimate["tasks"] == 4 * 20 and estimate["cpu_seconds"] == 1510 + 10 * 1620 + 160
    # the CNN left out of two settings: their tasks keep only the frozen head's seeds
    fewer = ex.ExperimentConfig(cnn_settings=("long_tail", "blurred"))
    assert fewer.seeds_of("small_cnn", "fogged") == () and fewer.seeds_of("small_cnn", "blurred") == tuple(range(20))
    assert ex.estimate_cpu_seconds(fewer, {"frozen_head": 0.0, "small_cnn": 1.0}, 1.0) == {
        "runs": 1510 + 480 + 380, "tasks": 20 + 20 + 10 + 10, "training_cpu_seconds": 860.0,
        "signal_cpu_seconds": 60.0, "cpu_seconds": 920.0}


def test_noisy_oracle_reaches_the_requested_auc():
    rare = np.zeros(20000, bool)
    rare[:1000] = True
    for auc in (0.6, 0.7, 0.8, 0.9, 0.95):
        likelihood = ex.noisy_oracle_likelihood(rare, auc, seed=0)
        assert likelihood.min() == pytest.approx(0.001) and likelihood.max() == 1.0
        # one seed: within 2.5 standard errors of the AUC (about 0.009 at 1,000 rare samples); four: within 0.015
        measured = [ex.signal_quality(ex.noisy_oracle_likelihood(rare, auc, s), rare)["signal_auc"] for s in range(4)]
        assert measured[0] == pytest.approx(auc, abs=0.025) and np.mean(measured) == pytest.approx(auc, abs=0.015)
    quality = ex.signal_quality(ex.oracle_likelihood(rare), rare)
    assert quality == {"signal_auc": 1.0, "signal_ap": 1.0, "prevalence": 0.05}


def test_holm_on_known_pvalues():
    # sorted 0.01, 0.02, 0.03, 0.04 of m = 4: 4 * 0.01, 3 * 0.02, 2 * 0.03, 1 * 0.04, made monotone
    np.testing.assert_allclose(ex.holm([0.03, 0.01, 0.04, 0.02]), [0.06, 0.04, 0.06, 0.06])
    np.testing.assert_allclose(ex.holm([0.5, np.nan, 0.001]), [0.5, np.nan, 0.002])
    assert ex.holm([0.9, 0.8]).tolist() == [1.0, 1.0]  # 2 * 0.8 capped at 1, and never below a smaller p's


def test_bootstrap_interval_and_sign_flip_on_known_data():
    assert ex.bootstrap_interval([0.02] * 8) == (0.02, 0.02, 0.02)
    # one 1 among ten zeros: a resample's mean is Binomial(10, 0.1) / 10; P(X = 0) = 0.35 > 2.5%, so the low end
    # is 0; P(X >= 4) = 1.3% < 2.5% < P(X >= 3) = 7.0%, so the high end is 0.3
    assert ex.bootstrap_interval([0.0] * 9 + [1.0]) == (0.1, 0.0, 0.3)
    # 1..5: only all-plus and all-minus of the 32 sign flips reach |mean| 3
    assert ex.sign_flip_pvalue([1, 2, 3, 4, 5]) == 2 / 32
    assert ex.sign_flip_pvalue([1.0] * 10) == 2 / 1024
    assert ex.sign_flip_pvalue([0.0] * 6) == 1.0
    assert ex.sign_flip_pvalue([1.0, -1.0] * 10) == 1.0  # random flips (n > 12): the observed |mean| 0 always reached
    assert 0.0 < ex.sign_flip_pvalue([1.0] * 20) < 1e-4   # 1 / 20,001 at least, never 0
    assert np.isnan(ex.bootstrap_interval([1.0])[1])


def test_paired_differences_pair_by_seed():
    rng = np.random.default_rng(1)
    ce = rng.uniform(0.6, 0.9, 8)  # large seed-to-seed spread, constant paired shift
    runs = pd.DataFrame([{"setting": "s", "model": "m", "arm": arm, "seed": seed, "accuracy_rare": value,
                          "weight_ratio": ratio} for arm, shift, ratio in (("CE", 0.0, 1.0), ("B", 0.02, 2.0))
                         for seed, value in enumerate(ce + shift)])
    table = ex.paired_differences(runs).set_index("arm")
    assert table.loc["B", "diff_vs_ce"] == pytest.approx(0.02)
    assert table.loc["B", "ci_high"] - table.loc["B", "ci_low"] == pytest.approx(0.0, abs=1e-9)  # paired: no spread
    assert table.loc["B", "p_value"] == 2 / 256  # all 8 differences positive
    assert table.loc["B", "weight_ratio"] == 2.0 and table.loc["CE", "diff_vs_ce"] == 0.0
    assert table.loc["B", "n_seeds"] == 8 and table.loc["B", "mean"] == pytest.approx(ce.mean() + 0.02)


def test_summarize_applies_holm_per_endpoint_and_cell():
    rng = np.random.default_rng(2)
    rows = []
    for model in ("frozen_head", "small_cnn"):
        for seed in range(10):
            base = rng.uniform(0.3, 0.6)
            for arm, shift in (("CE", 0.0), ("good", 0.05), ("none", 0.0), ("sweep AUC 0.9", 0.05)):
                noise = 0.0 if arm != "none" else rng.choice([-0.01, 0.01])
                rows.append({"setting": "blurred", "model": model, "arm": arm, "seed": seed, "weight_ratio": 1.0,
                             "accuracy_rare": base + shift + noise, "accuracy_common": 0.8,
                             "balanced_accuracy": 0.7})
    summary = ex.summarize(pd.DataFrame(rows))
    assert set(summary.metric) == set(ex.ENDPOINTS)
    rare = summary[(summary.metric == "accuracy_rare") & (summary.model == "frozen_head")].set_index("arm")
    # family {good, none} of 2 (the sweep is its own family of 1): good's p 2/1024 -> Holm 4/1024
    assert rare.loc["good", "p_value"] == 2 / 1024 and rare.loc["good", "p_holm"] == 4 / 1024
    assert rare.loc["sweep AUC 0.9", "p_holm"] == 2 / 1024
    assert bool(rare.loc["good", "holm_significant"]) and not bool(rare.loc["none", "holm_significant"])
    assert rare.loc["good", "holm_low"] == pytest.approx(0.05) and np.isnan(rare.loc["CE", "p_holm"])
    common = summary[summary.metric == "accuracy_common"]
    assert (common[common.arm != "CE"].p_value == 1.0).all()  # no difference on the others


def _fake_pools(per_class=100, rare_per_class=20, test_per_class=40, conditions=("blurred", "darkened", "fogged")):
    def pool(n, n_mod):
        labels = np.repeat(np.arange(10), n)
        mod_base = np.concatenate([np.flatnonzero(labels == c)[:n_mod] for c in range(10)])
        base = np.concatenate([np.arange(len(labels))] + [mod_base] * len(conditions))
        shown = np.concatenate([np.full(len(labels), "", object)] +
                               [np.full(len(mod_base), c, object) for c in conditions])
        return ex.Pool(X=np.zeros((len(base), 2)), pixels=np.zeros((len(base), 1, 1, 3), np.uint8),
                       labels=labels[base], condition=shown, base=base)
    return {"train": pool(per_class, rare_per_class), "test": pool(test_per_class, test_per_class)}


def test_the_seed_changes_the_data_draw_and_the_same_seed_repeats_it():
    pools = _fake_pools()
    config = ex.ExperimentConfig(largest_class=100, per_class=60, test_per_class=20)
    for setting in config.settings:
        a, b, again = (ex.draw_setting(pools, setting, config, seed) for seed in (0, 1, 0))
        for key in ("train_idx", "test_idx"):
            np.testing.assert_array_equal(a[key], again[key])
            assert not np.array_equal(a[key], b[key])
    draws = [ex.draw_setting(pools, "long_tail", config, seed)["class_order"] for seed in range(5)]
    assert len(set(draws)) == 5  # a random class order per seed


def test_draws_have_the_stated_composition():
    pools = _fake_pools()
    config = ex.ExperimentConfig(largest_class=100, per_class=60, test_per_class=20, rare_fraction=0.05)
    tail = ex.draw_setting(pools, "long_tail", config, seed=2)
    order = [int(c) for c in tail["class_order"].split()]
    counts = np.bincount(tail["train_y"], minlength=10)
    assert counts[order].tolist() == ex.long_tailed_sizes(10, 100, 100.0).tolist()
    assert set(np.unique(tail["train_y"][tail["train_rare"]])) == set(order[-3:])
    assert not pools["train"].modified[tail["train_idx"]].any()
    cond = ex.draw_setting(pools, "darkened", config, seed=2)
    train = pools["train"]
    assert set(train.condition[cond["train_idx"]]) == {"", "darkened"}
    assert np.bincount(cond["train_y"]).tolist() == [60] * 10
    assert np.bincount(cond["train_y"][cond["train_rare"]]).tolist() == [3] * 10
    np.testing.assert_array_equal(train.modified[cond["train_idx"]], cond["train_rare"])
    assert len(set(train.base[cond["train_idx"]])) == 600  # never an image and its own blurred copy
    assert np.bincount(cond["test_y"][cond["test_rare"]]).tolist() == [10] * 10
    np.testing.assert_array_equal(pools["test"].condition[cond["test_idx"]] == "darkened", cond["test_rare"])
    with pytest.raises(ValueError, match="setting must be one of"):
        ex.draw_setting(pools, "rare_condition", config, seed=2)


def test_the_rare_conditions_include_the_committed_rankings_first_and_exist():
    ranking = pd.read_csv(ROOT / "benchmarks" / "training" / "results" / "condition_ranking.csv")
    assert ranking.knn_rare_purity.is_monotonic_decreasing
    conditions = ex.ExperimentConfig().conditions
    assert len(conditions) >= 3 and ranking.condition.iloc[0] in conditions
    assert set(conditions) <= set(ex.CONDITIONS) and set(ranking.condition) <= set(ex.CONDITIONS)
    assert ex.ExperimentConfig().settings == ("long_tail", *conditions)


def test_darkened_and_fogged_conditions_by_hand():
    from PIL import Image

    image = Image.fromarray(np.array([[[0, 90, 255]]], dtype=np.uint8))
    assert np.asarray(ex.CONDITIONS["darkened"](image)).tolist() == [[[0, 30, 85]]]
    # 0.45 * x + 99
    assert np.asarray(ex.CONDITIONS["fogged"](image)).tolist() == [[[99, 140, 214]]]


def test_stopping_uses_no_rare_labels_by_construction():
    """The stopping rule reads the unweighted validation loss, so the validation samples' weights, the only
    place a rare label could enter it, are never read: changing them changes nothing."""
    import inspect

    import torch

    assert list(inspect.signature(ex.train_model).parameters) == ["model", "X", "y", "weights", "config", "seed",
                                                                 "logit_offset"]
    rng = np.random.default_rng(0)
    n = 300
    X = torch.as_tensor(rng.normal(size=(n, 16)), dtype=torch.float32)
    y = rng.integers(0, 10, n)
    config = ex.ExperimentConfig(max_epochs={"frozen_head": 60, "small_cnn": 2}, patience=3, hidden=16)
    _, val = ex.validation_split(n, config.validation_fraction, seed=5)
    weights = rng.uniform(0.5, 2.0, n)
    changed = weights.copy()
    changed[val] = np.where(rng.random(len(val)) < 0.5, 17.0, 0.01)  # e.g. an oracle's rare flags
    first, epochs, capped = ex.train_model("frozen_head", X, y, weights, config, seed=5)
    second, epochs_again, _ = ex.train_model("frozen_head", X, y, changed, config, seed=5)
    assert epochs == epochs_again and not capped and epochs < 60
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # while the fit samples' weights do change training
    refit = weights.copy()
    refit[np.setdiff1d(np.arange(n), val)[:50]] = 5.0
    third, _, _ = ex.train_model("frozen_head", X, y, refit, config, seed=5)
    assert not torch.equal(first[0].weight, third[0].weight)


def test_the_epoch_cap_is_reported_when_it_binds():
    import torch

    X = torch.as_tensor(np.random.default_rng(1).normal(size=(200, 8)), dtype=torch.float32)
    y = np.arange(200) % 10
    config = ex.ExperimentConfig(max_epochs={"frozen_head": 2, "small_cnn": 2}, patience=5, hidden=8)
    _, epochs, capped = ex.train_model("frozen_head", X, y, np.ones(200), config, seed=0)
    assert epochs == 2 and capped


def _synthetic_runs(seeds=3):
    rng = np.random.default_rng(0)
    arms = ["CE", "oracle-rare x cb(17)", "placebo x cb(17)", "sweep AUC 0.7", "sweep AUC 0.9"]
    rows = [{"setting": s, "model": m, "arm": a, "seed": seed, "accuracy": rng.random(),
             "balanced_accuracy": rng.random(), "accuracy_rare": rng.random(), "accuracy_common": rng.random(),
             "weight_ratio": 1.0 + rng.random(), "signal_auc": 0.5 + 0.1 * i, "signal_ap": 0.1, "epochs": 12,
             "hit_cap": False, "cpu_seconds": 1.5, "max_over_min": 17.0}
            for s in ("long_tail", "blurred") for m in ex.MODELS for i, a in enumerate(arms) for seed in range(seeds)]
    ranking = pd.DataFrame([{"setting": s, "seed": seed, "signal": "knn-density", "mean_likelihood_rare": 0.3,
                             "mean_likelihood_rest": 0.6, "roc_auc": 0.7 + 0.01 * seed, "average_precision": 0.2,
                             "prevalence": 0.05} for s in ("long_tail", "blurred") for seed in range(seeds)])
    info = pd.DataFrame([{"setting": s, "seed": seed, "signal_cpu_seconds": 4.0}
                         for s in ("long_tail", "blurred") for seed in range(seeds)])
    return pd.DataFrame(rows), ranking, info


def test_outputs_rewritten_from_the_saved_rows_are_identical(tmp_path):
    runs, ranking, info = _synthetic_runs()
    ex.write_outputs(runs, ranking, tmp_path / "first", info=info)
    out = ex.reproduce(folder=tmp_path / "first", rerun=False)  # reads the rows back, rewrites everything
    assert out["source"] == "saved"
    ex.write_outputs(out["runs"], out["ranking"], tmp_path / "second", info=out["info"])
    for name in ("training_gfl_runs.csv", "training_gfl_results.csv", "training_gfl_signal_ranking.csv",
                 "training_gfl_auc_sweep.csv", "training_gfl_cost.csv", "training_gfl_results.png",
                 "training_gfl_auc_sweep.png"):
        assert (tmp_path / "first" / name).read_bytes() == (tmp_path / "second" / name).read_bytes(), name
    summary = pd.read_csv(tmp_path / "first" / "training_gfl_results.csv")
    assert len(summary) == 3 * 2 * len(ex.MODELS) * 5  # three endpoints
    assert pd.read_csv(tmp_path / "first" / "training_gfl_signal_ranking.csv").roc_auc.iloc[0] == pytest.approx(0.71)
    sweep = pd.read_csv(tmp_path / "first" / "training_gfl_auc_sweep.csv")
    assert len(sweep) == 2 * 2 * 2 and sweep.target_auc.tolist()[:2] == [0.7, 0.9]
    assert sweep.signal_auc.tolist()[:2] == pytest.approx([0.8, 0.9])
    cost = pd.read_csv(tmp_path / "first" / "training_gfl_cost.csv")
    assert cost[cost.arm == "CE"].cpu_seconds.tolist() == [4.5] * 4  # 3 seeds x 1.5 s, per setting x model
    assert cost[cost.arm == "(signals)"].cpu_seconds.tolist() == [12.0, 12.0]


TINY = dict(largest_class=40, imbalance_ratio=10.0, per_class=24, rare_fraction=0.125, test_per_class=10,
            pool_per_class=40, pool_rare_per_class=6, test_pool_per_class=10, seeds=(0,), cnn_seeds=(0,),
            conditions=("blurred", "darkened"), cnn_weights=("cb(17)",), consensus_runs=2,
            signals={"cluster": ("cluster", {}), "knn-density": ("knn-density", {"k": 5}),
                     "consensus-mean": ("consensus-mean", {})},
            sweep_aucs=(0.7, 0.9), max_epochs={"frozen_head": 3, "small_cnn": 2}, patience=2, min_cluster_size=5)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """The tiny run's pools, embedded once (in this process) into a temporary cache."""
    cache = tmp_path_factory.mktemp("emb")
    ex.build_pools(ex.ExperimentConfig(**TINY), cache_dir=cache)
    return cache


@pytest.mark.slow
def test_tiny_experiment_end_to_end_on_one_busy_core_with_numbers_and_resume(embedded, tmp_path):
    if not Path("/usr/bin/taskset").exists():
        pytest.fail("taskset (util-linux) is needed for this test: apt-get install util-linux")
    script = (f"import sys; from deqlib import experiment as ex; "
              f"c = ex.ExperimentConfig(**{TINY!r}); "
              f"out = ex.run_experiment(c, cache_dir=sys.argv[1], runs_path=sys.argv[2])")
    busy = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", "while True: pass"])
    try:
        started = time.perf_counter()
        done = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", script, str(embedded),
                               str(tmp_path / "runs.csv")], env={**os.environ, "PYTHONPATH": str(ROOT)},
                              capture_output=True, text=True, timeout=600)
        seconds = time.perf_counter() - started
    finally:
        busy.kill()
        busy.wait()
    assert done.returncode == 0, done.stderr[-3000:]
    config = ex.ExperimentConfig(**TINY)
    arms = ex.design(config)
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert len(runs) == sum(len(ex.arms_for(arms, s, m)) for s in config.settings for m in ex.MODELS)
    assert not runs.duplicated(ex.RUN_KEY).any()
    assert runs.accuracy.between(0.0, 1.0).all() and (runs.epochs >= 1).all() and runs.hit_cap.dtype == bool
    assert runs[runs.model == "frozen_head"].accuracy.mean() > 0.2  # above chance (0.1) even this small
    by = runs.set_index(["setting", "model", "arm"])
    for setting in config.settings:
        rare, n = by.loc[(setting, "small_cnn", "CE"), ["n_rare_train", "n_train"]]
        p = rare / (n - rare)
        assert by.loc[(setting, "frozen_head", "oracle-rare x eq4(1,5)"), "weight_ratio"] == pytest.approx(
            1 + (1 - p) ** 5)
        assert by.loc[(setting, "small_cnn", "oracle-rare x cb(17)"), "weight_ratio"] == pytest.approx(min(1 / p, 17))
        assert by.loc[(setting, "frozen_head", "oracle-rare x cb(17)"), "signal_auc"] == 1.0
        assert by.loc[(setting, "frozen_head", "CE"), "weight_ratio"] == 1.0
        for model in ex.MODELS:  # the placebo's weights are the oracle's, permuted
            assert by.loc[(setting, model, "placebo x cb(17)"), "max_over_min"] == pytest.approx(
                by.loc[(setting, model, "oracle-rare x cb(17)"), "max_over_min"])
    assert by.xs("long_tail").loc["frozen_head", "class-balanced"].weight_ratio > 2.0
    assert set(runs[runs.setting == "blurred"].arm) & {"class-balanced", "logit-adjusted"} == set()
    ranking = pd.read_csv(tmp_path / "runs_ranking.csv") if (tmp_path / "runs_ranking.csv").exists() else None
    cache = ex.read_row_cache(tmp_path / ex.ROWS_FOLDER)
    assert len(cache["runs"]) == len(runs) and set(cache["ranking"].signal) >= {"cluster", "knn-density",
                                                                               "consensus-mean", "oracle-rare"}
    assert ranking is None
    # resume: delete two cached rows of one task, and only those two are trained again
    task_file = tmp_path / ex.ROWS_FOLDER / "blurred__0.csv"
    rows = pd.read_csv(task_file)
    dropped = rows.iloc[[2, 5]]
    rows.drop(index=[2, 5]).to_csv(task_file, index=False)
    again = ex.run_experiment(config, cache_dir=embedded, runs_path=tmp_path / "runs.csv", resume=True)
    assert len(again["runs"]) == len(runs)
    assert len(again["info"]) == len(config.settings)  # one info per task: the re-run task's replaced its own
    assert again["info"].set_index("setting").loc["blurred", "signals"] != "" and len(again["runs"]) == len(runs)
    merged = again["runs"].merge(runs[ex.RUN_KEY + ["seconds"]], on=ex.RUN_KEY, suffixes=("", "_first"))
    kept = ~merged.set_index(ex.RUN_KEY).index.isin(dropped.set_index(ex.RUN_KEY).index)
    assert (merged.seconds[kept] == merged.seconds_first[kept]).all()  # every other row is the cached one
    print(f"tiny experiment on one busy core: {seconds:.0f} s")


def test_markdown_table_shows_paired_differences_with_holm_intervals_and_ratios():
    runs = pd.DataFrame([{"setting": "long_tail", "model": "small_cnn", "arm": arm, "seed": seed,
                          "accuracy_rare": 0.5 + shift + 0.01 * seed * (arm == "B"), "accuracy_common": 0.5,
                          "balanced_accuracy": 0.5, "weight_ratio": ratio}
                         for arm, shift, ratio in (("CE", 0.0, 1.0), ("B", 0.1, 3.0)) for seed in range(3)])
    lines = ex.markdown_table(ex.summarize(runs)).splitlines()
    assert lines[0] == "| arm | rare classes, small CNN |"
    assert lines[2] == "| CE | 50.0% (n=3) |"
    # differences 0.10, 0.11, 0.12: mean 11.0 points; the bootstrap means lie in [10, 12]; p = 2/8 (3 seeds)
    # is no rejection, so no star
    assert lines[3].startswith("| B | +11.0 [+10.") and lines[3].endswith("] x3.00 |")
    assert "*" not in lines[3]


@pytest.mark.notebook
def test_notebook_07_rewrites_the_table_from_saved_rows(tmp_path):
    from deqlib import notebooks

    runs, ranking, info = _synthetic_runs()
    ex.write_outputs(runs, ranking, tmp_path / "saved", info=info)
    expected = (tmp_path / "saved" / "training_gfl_results.csv").read_bytes()
    (tmp_path / "saved" / "training_gfl_results.csv").unlink()
    (tmp_path / "saved" / "training_gfl_results.png").unlink()
    notebooks.execute_notebook("07", parameters={"output_dir": str(tmp_path / "saved")}, output_dir=tmp_path / "build")
    assert (tmp_path / "saved" / "training_gfl_results.csv").read_bytes() == expected
    assert (tmp_path / "saved" / "training_gfl_results.png").is_file()


def test_train_demo_and_notebook_07_write_to_the_same_folder_and_a_quick_run_never_to_figures(tmp_path, monkeypatch):
    from deqlib.cli import main

    monkeypatch.setenv("DEQ_FIGURES_DIR", str(tmp_path / "figures"))
    monkeypatch.setenv("DEQ_BUILD_DIR", str(tmp_path / "build"))
    assert ex.output_folder() == tmp_path / "figures"
    assert ex.output_folder(quick=True) == tmp_path / "build" / "train-demo-quick"
    (tmp_path / "figures").mkdir()
    # nothing saved in the quick folder: the committed full run's rows are rewritten there, figures/ is untouched
    assert main(["train-demo", "--quick", "--from-saved"]) == 0
    quick = tmp_path / "build" / "train-demo-quick"
    committed = ex.read_outputs(ROOT / "figures")
    ex.write_outputs(committed["runs"], committed["ranking"], tmp_path / "expected", info=committed["info"])
    assert (quick / "training_gfl_results.csv").read_bytes() == \
        (tmp_path / "expected" / "training_gfl_results.csv").read_bytes()
    assert list((tmp_path / "figures").iterdir()) == []


def test_limit_threads_sets_and_restores_torch_and_blas_pools():
    import torch
    from threadpoolctl import threadpool_info

    from deqlib.threads import limit_threads

    before = torch.get_num_threads()
    with limit_threads(1) as n:
        assert n == 1 and torch.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="at least 1"):
        with limit_threads(0):
            pass
