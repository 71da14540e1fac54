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


def test_oracle_weights_give_the_stated_ratio():
    rare = np.zeros(1000, bool)
    rare[:50] = True
    likelihood = ex.oracle_likelihood(rare)
    assert likelihood[~rare].tolist() == [1.0] * 950 and likelihood[rare] == pytest.approx(50 / 950)
    y = np.arange(1000) % 10
    for eta, gamma in ((1.0, 5.0), (0.3, 5.0)):
        weights = ex.arm_weights(ex.Arm("o", "oracle", eta, gamma), {"oracle": likelihood}, y, seed=0)
        # W(p) = (eta + (1-p)^gamma) / (eta + 1); common samples have p = 1, so W = eta / (eta + 1).
        assert ex.realised_ratio(weights, rare) == pytest.approx((eta + (1 - 50 / 950) ** gamma) / eta)
        assert weights.mean() == pytest.approx(1.0)
    assert ex.realised_ratio(np.ones(1000), rare) == 1.0


def test_placebo_preserves_the_weight_multiset_and_breaks_the_link_to_rarity():
    rng = np.random.default_rng(0)
    rare = rng.random(2000) < 0.05
    likelihood = np.where(rare, 0.05, 1.0) * rng.uniform(0.8, 1.0, 2000)
    y = rng.integers(0, 10, 2000)
    real = ex.arm_weights(ex.Arm("r", "s", 0.3, 5.0), {"s": likelihood}, y, seed=3)
    placebo = ex.arm_weights(ex.Arm("p", "s", 0.3, 5.0, shuffled=True), {"s": likelihood}, y, seed=3)
    np.testing.assert_allclose(np.sort(placebo), np.sort(real))
    assert ex.realised_ratio(real, rare) > 3.0
    assert 0.7 < ex.realised_ratio(placebo, rare) < 1.4
    # the shuffle is seeded: same seed, same permutation; another seed, another one
    shuffled = ex.Arm("p", "s", 0.3, 5.0, shuffled=True)
    np.testing.assert_array_equal(placebo, ex.arm_weights(shuffled, {"s": likelihood}, y, 3))
    assert not np.array_equal(placebo, ex.arm_weights(shuffled, {"s": likelihood}, y, 4))


def test_every_label_free_signal_has_an_arm_and_the_design_arms_exist():
    names = [arm.name for arm in ex.ARMS]
    assert len(names) == len(set(names))
    assert {"CE", "class-balanced", "oracle GFL(1, 5)", "oracle GFL(0.3, 5)", "cluster GFL(1, 5)",
            "placebo GFL(0.3, 5)"} <= set(names)
    assert {arm.signal for arm in ex.ARMS} - {None, "oracle"} == set(ex.SIGNALS)


def test_paired_interval_and_detectable_effect_on_known_data():
    # d = 1..5: mean 3, sd sqrt(2.5); t(0.975, 4) = 2.7764 -> half width 2.7764 * 1.5811 / sqrt(5) = 1.9632
    mean, low, high = ex.paired_interval([1, 2, 3, 4, 5])
    assert mean == 3.0 and low == pytest.approx(3 - 1.9632, abs=1e-3) and high == pytest.approx(3 + 1.9632, abs=1e-3)
    # n = 10, sd 1: (t(0.975, 9) + t(0.8, 9)) / sqrt(10) = (2.2622 + 0.8834) / 3.1623 = 0.9947
    assert ex.minimum_detectable_effect(1.0, 10) == pytest.approx(0.9947, abs=1e-3)
    assert np.isnan(ex.paired_interval([1.0])[1])


def test_paired_differences_pair_by_seed():
    rng = np.random.default_rng(1)
    ce = rng.uniform(0.6, 0.9, 8)  # large seed-to-seed spread, constant paired shift
    runs = pd.DataFrame([{"setting": "s", "model": "m", "arm": arm, "seed": seed, "accuracy_rare": value,
                          "weight_ratio": ratio} for arm, shift, ratio in (("CE", 0.0, 1.0), ("B", 0.02, 2.0))
                         for seed, value in enumerate(ce + shift)])
    table = ex.paired_differences(runs).set_index("arm")
    assert table.loc["B", "diff_vs_ce"] == pytest.approx(0.02)
    assert table.loc["B", "ci_high"] - table.loc["B", "ci_low"] == pytest.approx(0.0, abs=1e-9)  # paired: no spread
    assert table.loc["B", "weight_ratio"] == 2.0 and table.loc["CE", "diff_vs_ce"] == 0.0
    assert table.loc["B", "n_seeds"] == 8 and table.loc["B", "mean"] == pytest.approx(ce.mean() + 0.02)


def _fake_pools(per_class=100, rare_per_class=20, test_per_class=40):
    def pool(n, n_mod):
        labels = np.repeat(np.arange(10), n)
        mod_base = np.concatenate([np.flatnonzero(labels == c)[:n_mod] for c in range(10)])
        base = np.concatenate([np.arange(len(labels)), mod_base])
        return ex.Pool(X=np.zeros((len(base), 2)), pixels=np.zeros((len(base), 1, 1, 3), np.uint8),
                       labels=labels[base], modified=np.arange(len(base)) >= len(labels), base=base)
    return {"train": pool(per_class, rare_per_class), "test": pool(test_per_class, test_per_class)}


def test_the_seed_changes_the_data_draw_and_the_same_seed_repeats_it():
    pools = _fake_pools()
    config = ex.ExperimentConfig(largest_class=100, per_class=60, test_per_class=20)
    for setting in ex.SETTINGS:
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
    cond = ex.draw_setting(pools, "rare_condition", config, seed=2)
    train = pools["train"]
    assert np.bincount(cond["train_y"]).tolist() == [60] * 10
    assert np.bincount(cond["train_y"][cond["train_rare"]]).tolist() == [3] * 10
    np.testing.assert_array_equal(train.modified[cond["train_idx"]], cond["train_rare"])
    assert len(set(train.base[cond["train_idx"]])) == 600  # never an image and its own blurred copy
    assert np.bincount(cond["test_y"][cond["test_rare"]]).tolist() == [10] * 10
    np.testing.assert_array_equal(pools["test"].modified[cond["test_idx"]], cond["test_rare"])


def test_the_rare_condition_is_the_one_the_committed_ranking_puts_first():
    ranking = pd.read_csv(ROOT / "benchmarks" / "training" / "results" / "condition_ranking.csv")
    assert ranking.knn_rare_purity.is_monotonic_decreasing
    assert ex.ExperimentConfig().condition == ranking.condition.iloc[0]
    assert set(ranking.condition) == set(ex.CONDITIONS)


def _synthetic_runs(seeds=3):
    rng = np.random.default_rng(0)
    rows = [{"setting": s, "model": m, "arm": a.name, "seed": seed, "accuracy": rng.random(),
             "balanced_accuracy": rng.random(), "accuracy_rare": rng.random(), "accuracy_common": rng.random(),
             "weight_ratio": 1.0 + rng.random()} for s in ex.SETTINGS for m in ex.MODELS for a in ex.ARMS[:3]
            for seed in range(seeds)]
    ranking = pd.DataFrame([{"setting": s, "seed": seed, "signal": "knn_density", "mean_likelihood_rare": 0.3,
                             "mean_likelihood_rest": 0.6, "roc_auc": 0.7 + 0.01 * seed}
                            for s in ex.SETTINGS for seed in range(seeds)])
    return pd.DataFrame(rows), ranking


def test_outputs_rewritten_from_the_saved_rows_are_identical(tmp_path):
    runs, ranking = _synthetic_runs()
    ex.write_outputs(runs, ranking, tmp_path / "first")
    out = ex.reproduce(folder=tmp_path / "first", rerun=False)  # reads the rows back, rewrites everything
    assert out["source"] == "saved"
    ex.write_outputs(out["runs"], out["ranking"], tmp_path / "second")
    for name in ("training_gfl_runs.csv", "training_gfl_results.csv", "training_gfl_signal_ranking.csv",
                 "training_gfl_results.png"):
        assert (tmp_path / "first" / name).read_bytes() == (tmp_path / "second" / name).read_bytes(), name
    summary = pd.read_csv(tmp_path / "first" / "training_gfl_results.csv")
    assert len(summary) == 2 * len(ex.SETTINGS) * len(ex.MODELS) * 3  # two metrics
    assert pd.read_csv(tmp_path / "first" / "training_gfl_signal_ranking.csv").roc_auc.iloc[0] == pytest.approx(0.71)


TINY = dict(largest_class=40, imbalance_ratio=10.0, per_class=24, rare_fraction=0.125, test_per_class=10,
            pool_per_class=40, pool_rare_per_class=6, test_pool_per_class=10, seeds=(0,),
            max_epochs={"frozen_head": 3, "small_cnn": 2}, patience=2, min_cluster_size=5)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """The tiny run's pools, embedded once (in this process) into a temporary cache."""
    cache = tmp_path_factory.mktemp("emb")
    ex.build_pools(ex.ExperimentConfig(**TINY), cache_dir=cache)
    return cache


@pytest.mark.slow
def test_quick_experiment_finishes_on_one_core_beside_a_busy_process(embedded, tmp_path):
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
                              capture_output=True, text=True, timeout=300)
        seconds = time.perf_counter() - started
    finally:
        busy.kill()
        busy.wait()
    assert done.returncode == 0, done.stderr[-3000:]
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert len(runs) == len(ex.SETTINGS) * sum(len(arm.models) for arm in ex.ARMS)
    assert set(runs[runs.model == "small_cnn"].arm) == {a.name for a in ex.ARMS if "small_cnn" in a.models}
    assert runs.accuracy.between(0.0, 1.0).all()
    assert runs[runs.model == "frozen_head"].accuracy.mean() > 0.2  # above chance (0.1) even this small
    assert (runs.epochs >= 1).all() and set(runs.arm) == {arm.name for arm in ex.ARMS}
    by = runs.set_index(["setting", "model", "arm"])
    for setting in ex.SETTINGS:
        rare, n = by.loc[(setting, "small_cnn", "CE"), ["n_rare_train", "n_train"]]
        p = rare / (n - rare)
        assert by.loc[(setting, "small_cnn", "oracle GFL(1, 5)"), "weight_ratio"] == pytest.approx(1 + (1 - p) ** 5)
        assert by.loc[(setting, "frozen_head", "CE"), "weight_ratio"] == 1.0
    assert (by.xs("long_tail").loc["frozen_head", "class-balanced"].weight_ratio > 2.0)
    print(f"tiny experiment on one busy core: {seconds:.0f} s")


def test_markdown_table_shows_paired_differences_with_intervals_and_ratios():
    runs = pd.DataFrame([{"setting": "long_tail", "model": "small_cnn", "arm": arm, "seed": seed,
                          "accuracy_rare": 0.5 + shift + 0.01 * seed * (arm == "B"), "balanced_accuracy": 0.5,
                          "weight_ratio": ratio}
                         for arm, shift, ratio in (("CE", 0.0, 1.0), ("B", 0.1, 3.0)) for seed in range(3)])
    lines = ex.markdown_table(ex.summarize(runs)).splitlines()
    assert lines[0] == "| arm | rare classes, small CNN |"
    assert lines[2] == "| CE | 50.0% (n=3) |"
    # differences 0.10, 0.11, 0.12: mean 11.0 points, t(0.975, 2) * 0.01 / sqrt(3) = 2.48 points
    assert lines[3] == "| B | +11.0 [+8.5, +13.5] x3.00 |"


@pytest.mark.notebook
def test_notebook_07_rewrites_the_table_from_saved_rows(tmp_path):
    from deqlib import notebooks

    runs, ranking = _synthetic_runs()
    ex.write_outputs(runs, ranking, tmp_path / "saved")
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
    assert (quick / "training_gfl_results.csv").read_bytes() == (ROOT / "figures" / "training_gfl_results.csv").read_bytes()
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
