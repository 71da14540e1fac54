"""deqlib.stability: spread, agreement, consensus and faithfulness on small synthetic data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deqlib.cluster import DBSCANClusterer
from deqlib.consensus import (
    ABSENT,
    coassociation_consensus,
    consensus_mean,
    per_sample_stability,
    percentile_ranks,
    run_agreement,
    summarize_stability,
)
from deqlib.faithfulness import faithfulness, knn_recall, pca_cross_check, trustworthiness
from deqlib.likelihood import scaled_likelihood
from deqlib.stability import consensus_bank, stability_runs
from deqlib.stages import build_stages
from deqlib.weights import gfl_weight


def _blobs(sizes=(120, 60, 30), dim=8, spread=0.3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 40, (len(sizes), dim))
    X = np.vstack([rng.normal(c, spread, (s, dim)) for c, s in zip(centres, sizes)])
    truth = np.repeat(np.arange(len(sizes)), sizes)
    return X.astype(np.float32), truth


def _grid_neighbors(X, k=5):
    from sklearn.neighbors import NearestNeighbors

    return NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(return_distance=False)


def test_identical_runs_have_no_spread_and_full_agreement():
    labels = np.array([0, 0, 0, 1, 1, -1])
    L = np.tile(scaled_likelihood(labels), (4, 1))
    per = per_sample_stability(L)
    assert per["likelihood_std"].max() == 0
    assert per["likelihood_rank_spread"].max() == 0
    assert per["weight_range"].max() == 0
    np.testing.assert_allclose(per["likelihood_mean"], [1, 1, 1, 2 / 3, 2 / 3, 1 / 3])
    pairs = run_agreement(np.tile(labels, (4, 1)), L)
    assert len(pairs) == 6
    assert (pairs["ari"] == 1).all() and (pairs["spearman"] == 1).all()
    assert (pairs["weight_moved_share"] == 0).all()
    summary = summarize_stability(per, pairs)
    assert summary["weight_moved_share"] == 0 and summary["pair_spearman_min"] == 1 and summary["K"] == 4


def test_one_run_noise_gives_large_spread():
    # Run 0 and 1 agree (cluster of 8 common, 2 rare); run 2 swaps which samples are rare.
    common = np.array([0] * 8 + [1] * 2)
    flipped = np.array([1] * 2 + [0] * 8)
    labels = np.vstack([common, common, flipped])
    L = np.vstack([scaled_likelihood(row) for row in labels])
    per = per_sample_stability(L)
    # The two samples that flipped from common (1.0) to rare (0.25) and back: std of (1, 1, 0.25)
    np.testing.assert_allclose(per["likelihood_std"].iloc[0], np.std([1, 1, 0.25]))
    # percentile rank 0.65 (tied among the 8 common) in runs 0 and 1, 0.15 (the 2 rare) in run 2
    assert per["likelihood_rank_spread"].iloc[0] == pytest.approx(0.5)
    assert per["likelihood_rank_spread"].iloc[5] == 0  # never moved
    moved = abs(gfl_weight(1.0) - gfl_weight(0.25))
    assert moved > 0.1
    # samples 0, 1 (common -> rare) and 8, 9 (rare -> common) moved: 4 of 10
    assert summarize_stability(per, run_agreement(labels, L))["weight_moved_share"] == pytest.approx(0.4)
    pairs = run_agreement(labels, L).set_index(["run_a", "run_b"])
    assert pairs.loc[(0, 1), "spearman"] == 1
    assert pairs.loc[(0, 2), "spearman"] < 0
    assert pairs.loc[(0, 2), "weight_moved_share"] == pytest.approx(0.4)


def test_percentile_ranks_ties_and_absent_samples():
    L = np.array([[0.5, 0.5, 1.0, np.nan], [0.2, 0.4, 0.6, 0.8]])
    ranks = percentile_ranks(L)
    np.testing.assert_allclose(ranks[0, :3], [1.5 / 3, 1.5 / 3, 1.0])
    assert np.isnan(ranks[0, 3])
    np.testing.assert_allclose(ranks[1], [0.25, 0.5, 0.75, 1.0])
    per = per_sample_stability(L)
    assert per["n_runs"].tolist() == [2, 2, 2, 1]
    assert per["likelihood_std"].iloc[3] == 0  # one run: no spread measurable, reported as 0


def test_sample_in_no_run_is_an_error():
    with pytest.raises(ValueError, match="in no run"):
        per_sample_stability(np.array([[0.5, np.nan], [0.5, np.nan]]))


def test_consensus_of_identical_runs_equals_the_run():
    X, truth = _blobs()
    labels = truth.copy()
    labels[[0, 130]] = -1  # two noise samples
    runs = np.tile(labels, (3, 1))
    L = np.vstack([scaled_likelihood(r) for r in runs])
    np.testing.assert_array_equal(consensus_mean(L), scaled_likelihood(labels))
    consensus = coassociation_consensus(runs, _grid_neighbors(X))
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(consensus, labels) == 1.0
    assert (consensus[[0, 130]] == -1).all()
    np.testing.assert_allclose(scaled_likelihood(consensus), scaled_likelihood(labels))


def test_coassociation_keeps_pairs_the_majority_agrees_on():
    X, truth = _blobs(sizes=(40, 40))
    merged = np.zeros_like(truth)  # one run merges the two blobs
    runs = np.vstack([truth, truth, merged])
    consensus = coassociation_consensus(runs, _grid_neighbors(X))
    assert np.unique(consensus).tolist() == [0, 1]
    # absent samples (subsample) do not count against a pair
    with_absent = runs.copy()
    with_absent[0, :10] = ABSENT
    assert coassociation_consensus(with_absent, _grid_neighbors(X)).max() == 1


def test_faithfulness_of_an_isometry_is_perfect_and_of_a_shuffle_is_poor():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 3))
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    Y = X @ rotation * 2.0 + 5.0  # rotation, scale and shift keep every neighbourhood
    assert trustworthiness(X, Y) == pytest.approx(1.0)
    assert knn_recall(X, Y) == pytest.approx(1.0)
    shuffled = Y[rng.permutation(len(Y))]
    assert knn_recall(X, shuffled) < 0.2
    assert trustworthiness(X, shuffled) < 0.7
    # the sample: 100 of 300 rows, still an isometry
    assert knn_recall(X, Y, sample_size=100) == pytest.approx(1.0)


def test_pca_cross_check_agrees_on_separated_blobs():
    X, truth = _blobs(dim=60)
    clusterer = DBSCANClusterer(eps=3.0, min_samples=5, eps_scale="knn")
    check = pca_cross_check(X, truth, clusterer)
    assert check["pca_components"] == 50
    assert check["pca_n_clusters"] == 3 and check["map_n_clusters"] == 3
    assert check["pca_ari"] == pytest.approx(1.0)
    assert check["pca_noise_fraction"] == 0
    both = faithfulness(X, X[:, :3], truth, clusterer)
    assert {"trustworthiness", "knn_recall", "pca_ari", "sample_size"} <= set(both)
    assert both["sample_size"] == len(X)


def _fast_runs(X, **kw):
    from deqlib.reduce import OpenTSNEReducer

    reducer = OpenTSNEReducer(perplexity=10, n_jobs=1, schedule="fast", early_exaggeration_iter=50, n_iter=50)
    clusterer = DBSCANClusterer(eps=3.0, min_samples=5, eps_scale="knn", n_jobs=1)
    return stability_runs(X, stages=build_stages(reducer=reducer, clusterer=clusterer), **kw)


def test_stability_runs_on_separated_blobs_agree_and_give_a_consensus_bank(tmp_path):
    from deqlib.bank import export_official_pickle, import_official_pickle, read_bank, write_bank

    X, truth = _blobs(sizes=(90, 45, 25))
    result = _fast_runs(X, K=3, seeds=[5, 6, 7])
    assert result.likelihoods.shape == (3, 160)
    assert result.params["shared_affinities"] is True and result.params["seeds"] == [5, 6, 7]
    assert result.params["row_orders"] == ["input"] * 3
    assert result.summary["pair_spearman_min"] > 0.99
    assert result.summary["pair_ari_min"] > 0.99
    assert result.summary["weight_moved_share"] == 0
    assert result.runs["n_clusters"].tolist() == [3, 3, 3]
    np.testing.assert_allclose(result.consensus("consensus-mean"), scaled_likelihood(truth), atol=1e-12)
    faithful = result.faithfulness(X)
    assert faithful["trustworthiness"] > 0.9

    bank = consensus_bank(result, "consensus-mean")
    assert bank.metadata["signal"] == "consensus-mean" and bank.metadata["K"] == 3
    assert {"likelihood_std", "likelihood_rank_spread"} <= set(bank.table.columns)
    path = write_bank(tmp_path / "bank.parquet", bank)
    back = read_bank(path)
    mean, std = back.likelihood_of(["0", "150"], return_spread=True)
    np.testing.assert_allclose(mean, scaled_likelihood(truth)[[0, 150]])
    np.testing.assert_array_equal(std, [0.0, 0.0])
    quantised = import_official_pickle(export_official_pickle(back, tmp_path / "x.pkl"))  # (round(p 10**6), 10**6)
    np.testing.assert_allclose(quantised.likelihood_of(back.sample_ids), back.likelihood_of(back.sample_ids),
                               atol=5e-7, rtol=0)
    coassoc = consensus_bank(result, "consensus-coassoc")
    exported = import_official_pickle(export_official_pickle(coassoc, tmp_path / "c.pkl")).table.set_index("sample_id")
    assert exported.loc["0", "cluster_size"] == 90 and exported.loc["150", "cluster_size"] == 25


def test_varying_order_subsample_and_band_is_recorded():
    X, _ = _blobs(sizes=(90, 45, 25))
    result = _fast_runs(X, K=2, seeds=[1, 2], vary=("order", "subsample", "band"), subsample=0.9)
    assert not np.isnan(result.likelihoods).all(axis=0).any()  # every sample in some run
    assert result.params["shared_affinities"] is False
    assert all(order != "input" for order in result.params["row_orders"])
    assert result.runs["n_samples"].tolist() == [144, 144]
    assert "eps" in result.runs.columns
    assert result.runs["eps"].between(3.0 * 0.8, 3.0 * 1.25).all() and result.runs["eps"].nunique() == 2
    absent = np.isnan(result.likelihoods)
    assert absent.sum(axis=1).tolist() == [16, 16]
    assert not (absent[0] & absent[1]).any()  # left-out sets are disjoint
    assert (result.labels[absent] == ABSENT).all()
    assert result.pairs["n_common"].iloc[0] == int((~absent).all(axis=0).sum())
    assert result.summary["K"] == 2


def test_run_schedule_sets_the_runs_iterations_and_keeps_explicit_numbers():
    from deqlib.reduce import OpenTSNEReducer
    from deqlib.stability import RUN_SCHEDULES

    X, truth = _blobs(sizes=(90, 45, 25))
    clusterer = DBSCANClusterer(eps=3.0, min_samples=5, eps_scale="knn", n_jobs=1)
    reducer = OpenTSNEReducer(perplexity=10, n_jobs=1)  # schedule 'fast': 125 + 100 iterations, theta 0.8
    affinities = OpenTSNEReducer(perplexity=10, n_jobs=1, random_state=5,
                                 initialization="random").fit_affinities(X)
    by_schedule = {}
    for schedule, (early, n_iter, theta) in (("consensus", (100, 50, 1.0)), ("analysis", (125, 100, 0.8))):
        result = stability_runs(X, stages=build_stages(reducer=reducer, clusterer=clusterer), K=2, seeds=[5, 6],
                                run_schedule=schedule)
        key = result.params["reducer"]
        assert (key["early_exaggeration_iter"], key["n_iter"], key["theta"]) == (early, n_iter, theta)
        assert result.params["run_schedule"] == schedule
        # each run is exactly the t-SNE of that schedule over the shared affinities, from the run's seed
        alone = OpenTSNEReducer(perplexity=10, n_jobs=1, random_state=6, initialization="random",
                                early_exaggeration_iter=early, n_iter=n_iter, theta=theta)
        np.testing.assert_allclose(result.coords[1], alone.fit_transform(X, affinities=affinities), rtol=1e-6)
        np.testing.assert_allclose(result.consensus("consensus-mean"), scaled_likelihood(truth), atol=1e-12)
        by_schedule[schedule] = result.coords
    assert RUN_SCHEDULES["consensus"] == {"early_exaggeration_iter": 100, "n_iter": 50, "theta": 1.0}
    assert not np.array_equal(by_schedule["consensus"], by_schedule["analysis"])
    # numbers given on the reducer are the user's: only theta (left to the schedule) is replaced
    assert _fast_runs(X, K=2, seeds=[1, 2], run_schedule="consensus").params["run_overrides"] == {"theta": 1.0}
    default = _fast_runs(X, K=2, seeds=[1, 2])  # the default runs each as one analysis
    assert default.params["run_schedule"] == "analysis" and default.params["run_overrides"] == {}


@pytest.mark.parametrize("bad, message", [
    ({"K": 1}, "K must be"), ({"seeds": [1, 1]}, "distinct"), ({"vary": ("colour",)}, "vary must"),
    ({"subsample": 0}, "subsample"), ({"band": (2, 1)}, "band"), ({"run_schedule": "slow"}, "run_schedule"),
])
def test_bad_arguments_say_what_to_fix(bad, message):
    X, _ = _blobs()
    with pytest.raises(ValueError, match=message):
        stability_runs(X, **{"K": 2, **bad})


def test_likelihood_of_without_spread_column_says_so():
    from deqlib.bank import bank_from_labels

    bank = bank_from_labels(["a", "b"], [0, 0])
    assert bank.likelihood_of(["a"]).tolist() == [1.0]
    with pytest.raises(KeyError, match="likelihood_std"):
        bank.likelihood_of(["a"], return_spread=True)


def test_plots_draw_mean_vs_spread_and_agreement():
    import matplotlib

    matplotlib.use("Agg")
    from deqlib.plots.stability import agreement_matrix, mean_vs_spread

    labels = np.vstack([np.array([0] * 8 + [1] * 2)] * 2 + [np.array([1] * 2 + [0] * 8)])
    L = np.vstack([scaled_likelihood(r) for r in labels])
    figure = mean_vs_spread(per_sample_stability(L))
    assert figure.axes[0].collections[0].get_offsets().shape == (10, 2)
    matrix = agreement_matrix(run_agreement(labels, L))
    image = matrix.axes[0].images[0].get_array()
    assert image.shape == (3, 3)
    assert image[0, 1] == 1.0 and image[0, 2] < 0  # Spearman above the diagonal
    with pytest.raises(ValueError, match="missing column"):
        mean_vs_spread(pd.DataFrame({"x": [1]}))


def test_deq_stability_command_writes_bank_report_and_figures(tmp_path, capsys):
    import json

    from deqlib.bank import read_bank
    from deqlib.cli import main
    from deqlib.plots.paper import read_png_metadata

    X, truth = _blobs(sizes=(90, 45, 25))
    ids = np.array([f"s{i}" for i in range(len(X))])
    np.savez(tmp_path / "vectors.npz", vectors=X, sample_ids=ids)
    code = main(["stability", "--embeddings", str(tmp_path / "vectors.npz"), "-K", "2", "--seeds", "3,4",
                 "--perplexity", "10", "--eps", "3", "--min-samples", "5", "--eps-scale", "knn",
                 "--signal", "consensus-coassoc", "--output", str(tmp_path / "bank.parquet"),
                 "--export-official", str(tmp_path / "bank.pkl"), "--report", str(tmp_path / "report.json"),
                 "--figures", str(tmp_path / "figures"), "--threads", "1", "--no-progress",
                 "--run-schedule", "consensus"])
    assert code == 0
    out = capsys.readouterr().out
    assert "run pairs: ARI mean 1.000" in out and "trustworthiness" in out
    bank = read_bank(tmp_path / "bank.parquet")
    assert bank.metadata["signal"] == "consensus-coassoc" and bank.metadata["K"] == 2
    assert bank.metadata["stability_params"]["seeds"] == [3, 4]
    assert bank.metadata["stability_params"]["run_schedule"] == "consensus"
    assert bank.metadata["stability_params"]["reducer"]["n_iter"] == 50  # not the analysis's 100
    assert bank.metadata["faithfulness"]["knn_recall"] > 0.3
    assert sorted(bank.table["cluster_size"].unique().tolist()) == [25, 45, 90]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["summary"]["weight_moved_share"] == 0 and len(report["pairs"]) == 1
    for name in ("stability_mean_vs_spread.png", "stability_agreement.png"):
        assert read_png_metadata(tmp_path / "figures" / name)["parameters"]["K"] == 2
    assert (tmp_path / "bank.pkl").stat().st_size > 0


def test_deq_stability_default_seeds_and_one_consensus_bank_per_run(tmp_path, capsys, monkeypatch):
    """Issue 19: without --seeds the runs use 0, 1, ... (the notebooks' stability report; was 33, 34, ...
    unsaid), and the default bank path carries N and the run id, so another -K or seed set never
    overwrites an earlier consensus bank."""
    import re

    from deqlib.bank import read_bank
    from deqlib.cli import main

    monkeypatch.setenv("DEQ_DATA_DIR", str(tmp_path / "data"))
    X, _ = _blobs(sizes=(60, 30, 20))
    np.savez(tmp_path / "vectors.npz", vectors=X, sample_ids=np.array([f"s{i}" for i in range(len(X))]))
    base = ["stability", "--embeddings", str(tmp_path / "vectors.npz"), "--perplexity", "10", "--eps", "3",
            "--min-samples", "5", "--eps-scale", "knn", "--threads", "1", "--no-progress", "--no-faithfulness",
            "--run-schedule", "consensus"]
    written = {}
    for name, extra in {"default": ["-K", "2"], "again": ["-K", "2"], "other": ["-K", "2", "--seeds", "5,6"]}.items():
        assert main([*base, *extra]) == 0, capsys.readouterr().err
        written[name] = Path(re.search(r"bank \(2 runs\) written to (\S+)", capsys.readouterr().out).group(1))
    assert read_bank(written["default"]).metadata["stability_params"]["seeds"] == [0, 1]
    assert read_bank(written["other"]).metadata["stability_params"]["seeds"] == [5, 6]
    assert written["default"] == written["again"] != written["other"]  # the same run, the same file
    assert re.fullmatch(r"vectors_precomputed_default_consensus-mean_n110_[0-9a-f]{8}\.parquet", written["other"].name)
    assert len(list((tmp_path / "data" / "processed").glob("*.parquet"))) == 2


def test_gallery_picks_the_least_stable_clusters():
    from deqlib.plots.clusters import gallery_clusters

    samples = pd.DataFrame({"cluster_id": [0, 0, 1, 1, 2, -1], "cluster_size": [2, 2, 2, 2, 1, 1],
                            "likelihood_std": [0.0, 0.1, 0.3, 0.3, 0.2, 0.9]})
    assert gallery_clusters(samples, "least_stable", 2) == [1, 2]  # noise (-1) never shown
    with pytest.raises(ValueError, match="likelihood_std"):
        gallery_clusters(samples.drop(columns="likelihood_std"), "least_stable")


def test_analyze_reports_faithfulness_in_summary_and_run_summary(tmp_path):
    from deqlib.pipeline import analyze
    from deqlib.reduce import OpenTSNEReducer
    from deqlib.sweep import summarize_run

    X, truth = _blobs(sizes=(90, 45, 25))
    stages = build_stages(reducer=OpenTSNEReducer(perplexity=10, n_jobs=1, early_exaggeration_iter=50, n_iter=50),
                          clusterer=DBSCANClusterer(eps=3.0, min_samples=5, eps_scale="knn", n_jobs=1))
    result = analyze(embeddings=X, stages=stages, cache=False, faithfulness=True)
    faithful = result.params["faithfulness"]
    assert faithful["sample_size"] == 160 and faithful["pca_components"] == 8  # 8-d input: PCA keeps 8
    assert faithful["trustworthiness"] > 0.9 and faithful["pca_ari"] == pytest.approx(1.0)
    assert "3-D map faithfulness (160 samples): trustworthiness" in result.summary()
    summary = summarize_run(result.samples, faithfulness=faithful)
    assert summary["trustworthiness"] == faithful["trustworthiness"] and summary["pca_ari"] == faithful["pca_ari"]
    assert "trustworthiness" not in summarize_run(result.samples)  # nothing invented without a measurement
    stable = summarize_run(result.samples, stability={"K": 3, "pair_spearman_mean": 0.5, "pair_ari_mean": 0.4,
                                                      "weight_moved_share": 0.2})
    assert (stable["stability_K"], stable["pair_spearman_mean"], stable["weight_moved_share"]) == (3, 0.5, 0.2)
    tiny = faithfulness(X[:15], X[:15, :3])
    assert "skipped" in tiny and "trustworthiness" not in tiny


def test_stages_from_the_builder_give_the_same_runs_and_the_seeds_set_the_reducer():
    X, _ = _blobs(sizes=(90, 45, 25))
    stages = build_stages(reducer="opentsne", clusterer="dbscan", seed=99,
                          reducer_params=dict(perplexity=10, n_jobs=1, early_exaggeration_iter=50, n_iter=50),
                          clusterer_params=dict(eps=3.0, min_samples=5, eps_scale="knn", n_jobs=1))
    with_stages = stability_runs(X, K=2, seeds=[5, 6], stages=stages)
    with_instances = _fast_runs(X, K=2, seeds=[5, 6])
    np.testing.assert_array_equal(with_stages.likelihoods, with_instances.likelihoods)
    assert with_stages.params["reducer"]["random_state"] == 5  # the first seed, not the stages' 99
    assert stages.reducer.random_state == 99  # the given stages are not changed
    with pytest.raises(TypeError, match="unexpected keyword argument 'clusterer'"):
        stability_runs(X, K=2, stages=stages, clusterer="hdbscan")  # one way to name the parts: build_stages


def test_stability_runs_takes_stages_and_run_options_and_its_weights_from_the_stages():
    import inspect

    parameters = inspect.signature(stability_runs).parameters
    assert len(parameters) <= 12 and "stages" in parameters
    assert not {"reducer", "clusterer", "noise_policy", "mode", "preset", "eta", "gamma"} & set(parameters)
    X, _ = _blobs(sizes=(90, 45, 25))
    stages = build_stages(reducer_params=dict(perplexity=10, n_jobs=1, early_exaggeration_iter=50, n_iter=50),
                          clusterer_params=dict(eps=3.0, min_samples=5, eps_scale="knn", n_jobs=1), eta=0.3, gamma=2.0)
    result = stability_runs(X, stages=stages, K=2, seeds=[5, 6])
    assert (result.params["eta"], result.params["gamma"]) == (0.3, 2.0)
    np.testing.assert_allclose(result.per_sample["weight_mean"],
                               np.nanmean(gfl_weight(result.likelihoods, eta=0.3, gamma=2.0), axis=0))


def test_stability_progress_goes_to_stdout_not_stderr(capsys, monkeypatch):
    """JupyterLab shows stderr in a pink error box; progress is not an error (one helper: deqlib.progress)."""
    import logging

    monkeypatch.setattr(logging.getLogger("deqlib.stability"), "propagate", False)  # no handlers: a fresh kernel
    X, _ = _blobs(sizes=(90, 45, 25))
    _fast_runs(X, K=2, seeds=[1, 2], progress=True)
    captured = capsys.readouterr()
    assert "[deq stability] run 1/2 (seed 1):" in captured.out and "[deq stability] run 2/2" in captured.out
    assert "[deq stability]" not in captured.err

