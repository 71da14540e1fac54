"""deqlib.dataset_report: the steps the dataset notebooks share, on a fake KITTI tree in its real layout."""

import re
import types

import numpy as np
import pytest

from deqlib import dataset_report
from deqlib.bank import OFFICIAL_BANK_FILENAMES, import_official_pickle, read_bank
from deqlib.dataset_report import DatasetReport, open_dataset
from deqlib.encoders import get_encoder
from deqlib.pipeline import analyze, build_stages
from deqlib.plots.png import read_png_metadata
from deqlib.sweep import read_run_summary
from layouts import make_bdd100k_tree, make_kitti_tree

N = 21
PARAMETERS = {"source": "kitti", "clusterer": "hdbscan", "seed": 0}


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """A fake KITTI tree under data/raw/kitti, analysed once (efficientnet-lite0, small t-SNE, HDBSCAN)."""
    data = tmp_path_factory.mktemp("data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DEQ_DATA_DIR", str(data))
        make_kitti_tree(data / "raw" / "kitti", n_images=N)
        source = open_dataset("kitti", split="trainval")
        stages = build_stages(reducer_params={"perplexity": 5.0}, clusterer="hdbscan",
                              clusterer_params={"min_cluster_size": 3, "min_samples": 2}, seed=0)
        result = analyze(source, encoder="efficientnet-lite0", stages=stages)
    return data, source, stages, result


@pytest.fixture
def report(analysed, tmp_path, monkeypatch):
    data, source, stages, result = analysed
    monkeypatch.setenv("DEQ_DATA_DIR", str(data))
    monkeypatch.setenv("DEQ_FIGURES_DIR", str(tmp_path / "figures"))
    return DatasetReport(source, result, encoder="efficientnet-lite0", parameters=PARAMETERS)


def test_open_dataset_defaults_to_data_raw_and_passes_the_subsample(analysed, monkeypatch):
    data, source, _, _ = analysed
    assert source.root == data / "raw" / "kitti" and len(source) == N
    monkeypatch.setenv("DEQ_DATA_DIR", str(data))
    subset = open_dataset("kitti", split="trainval", max_images=7, seed=1)
    assert len(subset) == 7 and set(subset.sample_ids) <= set(source.sample_ids)
    assert subset.sample_ids == open_dataset("kitti", split="trainval", max_images=7, seed=1).sample_ids


def test_waymo_parquet_is_looked_for_in_data_raw_waymo_and_a_missing_dataset_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("DEQ_DATA_DIR", str(tmp_path))
    assert dataset_report.data_folder("waymo-parquet") == tmp_path / "raw" / "waymo"
    assert dataset_report.data_folder("KITTI") == tmp_path / "raw" / "kitti"
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "raw" / "waymo")):
        open_dataset("waymo-parquet", split="training")
    with pytest.raises(FileNotFoundError, match="bdd-data.berkeley.edu"):
        open_dataset("bdd100k", tmp_path / "elsewhere", split="train")
    make_bdd100k_tree(tmp_path / "raw" / "bdd100k", n_images=5)
    assert len(open_dataset("bdd100k", split="train")) == 5


def test_figures_are_named_for_the_dataset_and_carry_the_parameters(report, tmp_path):
    scatter = report.scatter_3d()
    assert len(scatter.data[0].x) + sum(len(trace.x) for trace in scatter.data[1:]) >= N
    written = report.likelihood_figures() + report.galleries()
    names = ["kitti_likelihood_per_cluster.png", "kitti_likelihood_histogram.png", "kitti_weight_distribution.png",
             "kitti_rarest_clusters.png", "kitti_common_clusters.png", "kitti_rarest_samples.png",
             "kitti_common_samples.png"]
    assert [p.name for p in written] == names
    assert report.written["tsne_clusters"] == tmp_path / "figures" / "kitti_tsne_clusters.png"
    for path in [report.written["tsne_clusters"], *written]:
        assert read_png_metadata(path)["parameters"] == PARAMETERS
    # the weights' histogram counts every sample (eta and gamma are the analysis')
    assert report.result.params["eta"] == 1.0 and report.result.params["gamma"] == 5.0


def test_banks_the_forks_pickle_only_where_a_fork_reads_the_dataset(report):
    written = report.write_banks()
    bank = read_bank(written["bank"])
    assert re.fullmatch(r"kitti_efficientnet-lite0_default_multi-granularity-lof_n21_[0-9a-f]{8}\.parquet",
                        written["bank"].name)  # the default signal's name
    assert written["bank"].name == (f"kitti_efficientnet-lite0_default_multi-granularity-lof_n21_"
                                    f"{report.result.run_id}.parquet")
    np.testing.assert_array_equal(bank.table.set_index("sample_id").loc[report.result.samples.sample_id, "likelihood"],
                                  report.result.samples.likelihood)
    assert written["official"].name == OFFICIAL_BANK_FILENAMES["kitti"]
    assert written["official"].parent == written["bank"].with_suffix("")  # the fork's name, in the run's folder
    official = import_official_pickle(written["official"])
    recovered = official.table.set_index("sample_id")
    np.testing.assert_allclose(recovered.cluster_size / recovered.largest_cluster_size,
                               bank.table.set_index("sample_id").likelihood.loc[recovered.index], atol=1e-6)
    elsewhere = DatasetReport(types.SimpleNamespace(name="bdd100k"), report.result, encoder="efficientnet-lite0")
    assert set(elsewhere.write_banks()) == {"bank"}


def test_run_summary_records_parameters_and_the_clusters(report):
    path = report.write_run_summary(label_column=None)
    assert path.name == "kitti_run_summary.json"
    record = read_run_summary(path)
    labels = report.result.samples.cluster_id
    assert record["parameters"] == PARAMETERS
    assert record["summary"]["n_samples"] == N
    assert record["summary"]["n_clusters"] == labels[labels >= 0].nunique()
    assert record["summary"]["noise_fraction"] == pytest.approx((labels < 0).mean())


def test_stability_over_two_seeds_writes_its_figures_and_the_consensus_bank(report, analysed):
    _, _, stages, _ = analysed
    assert report.stability(stages, get_encoder("efficientnet-lite0"), K=1) is None and report.written == {}
    stability = report.stability(stages, get_encoder("efficientnet-lite0"), K=2, progress=False)
    assert stability.params["seeds"] == [0, 1]
    per_sample = stability.per_sample.set_index("sample_id")
    assert len(per_sample) == N
    consensus = read_bank(report.written["consensus_bank"]).table.set_index("sample_id")
    assert report.written["consensus_bank"].parent.name == "consensus"
    assert report.written["consensus_bank"].name == \
        f"kitti_efficientnet-lite0_default_consensus-mean_n{N}_{stability.run_id}.parquet"
    np.testing.assert_allclose(consensus.loc[per_sample.index, "likelihood"], per_sample.likelihood_mean)
    for what in ("stability_mean_vs_spread", "stability_agreement"):
        assert read_png_metadata(report.written[what])["parameters"] == {**PARAMETERS, "stability_k": 2}
    summary = read_run_summary(report.write_run_summary(stability=stability))["summary"]
    assert summary["stability_K"] == 2
    assert summary["pair_spearman_mean"] == pytest.approx(stability.summary["pair_spearman_mean"])


def test_the_explorer_is_written_beside_the_figures(report, tmp_path):
    text = report.explorer(max_points=10, progress=False)
    assert report.written["explorer"] == tmp_path / "figures" / "kitti_explorer.html"
    assert report.written["explorer"].is_file() and text.startswith(f"{report.written['explorer']}: page ")


def test_runs_with_another_n_seed_or_parameter_never_overwrite_each_others_bank(report, analysed, monkeypatch):
    """Issue 19: a smaller run (a sweep of notebook 00 at N = 1,000 after the quickstart's 5,000)
    wrote the same data/processed file as the larger one and replaced its bank."""
    data, source, stages, result = analysed
    first = report.write_banks(official=False)["bank"]
    smaller = open_dataset("kitti", split="trainval", max_images=17, seed=0)
    runs = {"smaller": (smaller, stages),
            "seed": (source, build_stages(reducer_params={"perplexity": 5.0}, clusterer="hdbscan",
                                          clusterer_params={"min_cluster_size": 3, "min_samples": 2}, seed=1)),
            "eta": (source, build_stages(reducer_params={"perplexity": 5.0}, clusterer="hdbscan",
                                         clusterer_params={"min_cluster_size": 3, "min_samples": 2}, seed=0, eta=0.3))}
    paths = {"first": first}
    for name, (run_source, run_stages) in runs.items():
        run = analyze(run_source, encoder="efficientnet-lite0", stages=run_stages)
        paths[name] = DatasetReport(run_source, run, encoder="efficientnet-lite0").write_banks(official=False)["bank"]
    assert len(set(paths.values())) == 4, paths
    assert "_n17_" in paths["smaller"].name and "_n21_" in paths["seed"].name
    assert len(read_bank(first)) == N  # the first run's bank is still its own
    np.testing.assert_array_equal(read_bank(first).table.likelihood, result.bank.table.likelihood)
    assert len(read_bank(paths["smaller"])) == 17
    # The same run again: the same path (re-running replaces a bank only by itself).
    again = analyze(source, encoder="efficientnet-lite0", stages=stages)
    assert again.run_id == result.run_id and DatasetReport(source, again, encoder="efficientnet-lite0") \
        .write_banks(official=False)["bank"] == first


def test_deq_explore_on_the_reports_bank_rebuilds_the_reports_explorer(report, analysed, tmp_path, capsys):
    """The notebook's explorer can be regenerated from its bank: same points, ids, coordinates, clusters."""
    from deqlib.cli import main

    data, source, _, _ = analysed
    report.explorer(max_points=None, progress=False)
    bank = report.write_banks(official=False)["bank"]
    rebuilt = tmp_path / "rebuilt.html"
    code = main(["explore", str(bank), "--source", "kitti", "--root", str(source.root), "--split", "trainval",
                 "--output", str(rebuilt), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    (_, notebook_data), (_, cli_data) = (_page_data(p) for p in (report.written["explorer"], rebuilt))
    assert notebook_data["n"] == cli_data["n"] == N
    assert notebook_data["ids"] == cli_data["ids"]
    for key in ("xyz", "cluster"):
        assert notebook_data[key] == cli_data[key]  # base64 of the same float32 / int32 arrays
    for column in ("likelihood", "weight", "cluster_size"):
        assert notebook_data["columns"][column] == cli_data["columns"][column]
    # With a subset: the same --max-points and seed pick the same points.
    report.explorer(max_points=10, progress=False)
    assert main(["explore", str(bank), "--source", "kitti", "--root", str(source.root), "--split", "trainval",
                 "--output", str(rebuilt), "--no-progress", "--max-points", "10", "--seed", str(report.seed)]) == 0
    (_, notebook_data), (_, cli_data) = (_page_data(p) for p in (report.written["explorer"], rebuilt))
    assert notebook_data["ids"] == cli_data["ids"] and notebook_data["xyz"] == cli_data["xyz"]


def _page_data(path):
    import json

    text = path.read_text()
    match = re.search(r"const DATA = (\{.*?\});\n", text, flags=re.S)
    return text, json.loads(match.group(1))
