"""The training experiment's mechanics on a reduced run (one seed, few epochs); no assertion on who wins."""

import numpy as np
import pytest

from deqlib.experiment import ExperimentConfig, long_tailed_indices, run_experiment, signal_ranking, summarize


def test_long_tailed_class_sizes():
    labels = np.repeat(np.arange(10), 1000)
    counts = np.bincount(labels[long_tailed_indices(labels, 1000, 100.0)])
    assert counts[0] == 1000 and counts[-1] == 10
    assert (np.diff(counts) < 0).all()


def test_signal_ranking_auc():
    import pandas as pd

    ranking = signal_ranking(pd.DataFrame({"perfect": [0.1, 0.2, 0.9, 1.0], "useless": [0.5] * 4}),
                             np.array([True, True, False, False]))
    assert ranking.set_index("signal").roc_auc.to_dict() == {"perfect": 1.0, "useless": 0.5}


@pytest.fixture(scope="module")
def reduced(tmp_path_factory):
    config = ExperimentConfig(seeds=(0,), epochs=3, largest_class=200, per_class=120, test_per_class=30)
    return run_experiment(config, settings=["long_tail"], arms=["CE", "CE x GFL(1, 5)", "CB", "sampler GFL(1, 5)"],
                          cache_dir=tmp_path_factory.mktemp("emb"))


def test_weights_favour_the_rare_samples_and_change_the_result(reduced):
    results = reduced["results"].set_index("arm")
    assert results.loc["CE", "mean_weight_rare_train"] == pytest.approx(1.0)
    # The cluster likelihood finds the rare classes, so GFL gives them more than the average weight.
    assert results.loc["CE x GFL(1, 5)", "mean_weight_rare_train"] > results.loc["CE x GFL(1, 5)", "mean_weight_other_train"]
    assert results.loc["CB", "mean_weight_rare_train"] > 1.5
    assert results.loc["CE", "accuracy"] != results.loc["CE x GFL(1, 5)", "accuracy"]  # the weights change training
    ranking = reduced["ranking"].set_index("signal")
    assert ranking.loc["cluster_singleton", "roc_auc"] > 0.7


def test_summary_has_every_arm_with_mean_and_std(reduced):
    summary = summarize(reduced["results"])
    assert summary.arm.tolist() == ["CE", "CE x GFL(1, 5)", "CB", "sampler GFL(1, 5)"]
    assert {"accuracy_mean", "accuracy_std", "accuracy_rare_mean", "balanced_accuracy_mean"} <= set(summary.columns)
    assert summary.accuracy_mean.between(0.1, 1.0).all()  # better than chance (10 classes) for every arm


def test_the_experiment_caches_embeddings_in_the_workbook_by_default(tmp_path, monkeypatch):
    import deqlib.experiment as experiment

    seen = {}

    class Stop(Exception):
        pass

    def capture(setting, config, cache_dir=None, progress=False, seed=0):
        seen["cache_dir"] = cache_dir
        raise Stop

    monkeypatch.setenv("DEQ_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(experiment, "prepare_setting", capture)
    with pytest.raises(Stop):
        run_experiment(ExperimentConfig(seeds=(0,)), settings=["long_tail"])
    assert seen["cache_dir"] == tmp_path / "data" / "interim" / "embeddings"  # the quickstart's cache too
    with pytest.raises(Stop):
        run_experiment(ExperimentConfig(seeds=(0,)), settings=["long_tail"], cache_dir=tmp_path / "mine")
    assert seen["cache_dir"] == tmp_path / "mine"
