"""Each dataset notebook executed by papermill on a tiny tree in that dataset's real layout."""

import re

import nbformat
import pytest

from deqlib import notebooks
from deqlib.bank import import_official_pickle, read_bank
from deqlib.sweep import read_run_summary
from layouts import make_bdd100k_tree, make_kitti_tree, make_nuscenes_tree, make_waymo_folder_tree

pytestmark = pytest.mark.notebook

CASES = {
    "02_kitti": (lambda root: make_kitti_tree(root, n_images=30), {"split": "trainval"}, "kitti"),
    "03_nuscenes": (lambda root: make_nuscenes_tree(root, scenes=("scene-0061", "scene-0103"), samples_per_scene=15),
                    {"split": None, "source_options": {"version": "v1.0-mini"}}, "nuscenes"),
    "04_waymo": (lambda root: make_waymo_folder_tree(root, n_images=30), {}, "waymo"),
    "05_bdd100k": (lambda root: make_bdd100k_tree(root, n_images=30), {}, "bdd100k"),
}
OFFICIAL = {"02_kitti": "kitti_training_cluster_info.pkl", "03_nuscenes": "nuscenes_training_cluster_info.pkl"}
FIGURES = ("tsne_clusters.png", "likelihood_per_cluster.png", "weight_distribution.png", "rarest_clusters.png",
           "common_clusters.png", "explorer.html", "stability_mean_vs_spread.png", "stability_agreement.png",
           "run_summary.json")


@pytest.mark.parametrize("name", list(CASES))
def test_dataset_notebook_runs_on_its_real_layout(name, tmp_path, monkeypatch):
    build, extra, source_name = CASES[name]
    root = build(tmp_path / "raw")
    monkeypatch.setenv("DEQ_DATA_DIR", str(tmp_path / "data"))
    parameters = {"data_root": str(root), "encoder": "efficientnet-lite0", "reducer_params": {"perplexity": 5.0},
                  "clusterer": "hdbscan", "clusterer_params": {"min_cluster_size": 3, "min_samples": 2},
                  "stability_k": 2, "output_dir": str(tmp_path / "figures"), "explorer_points": 30, **extra}
    executed = notebooks.execute_notebook(name, parameters=parameters, output_dir=tmp_path / "build")
    for suffix in FIGURES:
        assert (tmp_path / "figures" / f"{source_name}_{suffix}").is_file(), suffix
    bank_files = list((tmp_path / "data" / "processed").glob("*.parquet"))
    assert len(bank_files) == 1
    bank = read_bank(bank_files[0])
    assert len(bank) == 30 and bank.metadata["noise_policy"] == "singleton"
    if name in OFFICIAL:
        # the fork's file name, in a folder named like the run's bank (runs never overwrite each other's)
        official = import_official_pickle(bank_files[0].with_suffix("") / OFFICIAL[name])
        assert sorted(official.sample_ids) == sorted(bank.sample_ids)
    else:  # no fork reads this dataset: no pickle
        assert not list((tmp_path / "data" / "processed").rglob("*.pkl"))
    (consensus,) = (tmp_path / "data" / "processed" / "consensus").glob("*.parquet")
    assert sorted(read_bank(consensus).sample_ids) == sorted(bank.sample_ids)
    summary = read_run_summary(tmp_path / "figures" / f"{source_name}_run_summary.json")
    assert summary["parameters"]["clusterer_params"] == {"min_cluster_size": 3, "min_samples": 2}
    assert summary["summary"]["n_samples"] == 30 and summary["summary"]["stability_K"] == 2
    nb = nbformat.read(executed, as_version=4)
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "30 samples" in text
    html = "\n".join(o.get("data", {}).get("text/html", "") for c in nb.cells if c.cell_type == "code"
                     for o in c.outputs)
    if name == "02_kitti":  # Table 1 recomputed from the tree's labels, next to the paper's numbers
        assert "28742" in html and "this copy" in html
    if name == "05_bdd100k":  # time of day and weather: the likelihood per weather value (the tree has rainy images)
        assert "<th>weather</th>" in html and "<td>rainy</td>" in html and "<th>timeofday</th>" in html


def test_kitti_notebook_in_reference_mode_runs_the_official_stages(tmp_path, monkeypatch):
    """mode='reference' with the defaults (reducer, clusterer, noise_policy None): scikit-learn's t-SNE, DBSCAN on
    the KITTI preset's raw eps, noise as one cluster; the stability runs use the same stages."""
    root = make_kitti_tree(tmp_path / "raw", n_images=30)
    monkeypatch.setenv("DEQ_DATA_DIR", str(tmp_path / "data"))
    notebooks.execute_notebook("02_kitti", output_dir=tmp_path / "build", parameters={
        "data_root": str(root), "split": "trainval", "encoder": "efficientnet-lite0", "mode": "reference",
        "reducer_params": {"perplexity": 5.0}, "stability_k": 2, "output_dir": str(tmp_path / "figures"),
        "explorer_points": 30})
    (bank_file,) = (tmp_path / "data" / "processed").glob("*.parquet")
    bank = read_bank(bank_file)
    assert re.fullmatch(r"kitti_efficientnet-lite0_reference_as_cluster_n30_[0-9a-f]{8}\.parquet", bank_file.name)
    assert bank.metadata["noise_policy"] == "as_cluster" and bank.metadata["mode"] == "reference"
    assert bank.metadata["cluster"]["eps_scale"] == "raw" and bank.metadata["cluster"]["eps"] == 2.0
    summary = read_run_summary(tmp_path / "figures" / "kitti_run_summary.json")["summary"]
    assert summary["n_samples"] == 30 and summary["stability_K"] == 2


def test_missing_dataset_says_how_to_get_it(tmp_path):
    with pytest.raises(notebooks.NotebookExecutionError, match="bdd-data.berkeley.edu"):
        notebooks.execute_notebook("05_bdd100k", parameters={"data_root": str(tmp_path / "nothing")},
                                   output_dir=tmp_path / "build")
