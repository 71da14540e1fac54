"""Sweeps: run summaries, grids, weight sweeps, and notebook runs gathered into one table."""

import json

import nbformat
import numpy as np
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from deqlib import notebooks
from deqlib.cli import main
from deqlib.plots.png import read_png_metadata
from deqlib.sweep import (column_names, notebook_parameters, parameter_grid, read_run_summary, run_name, run_sweep,
                          summarize_run, weight_sweep, write_run_summary)
from deqlib.weights import gfl_weight


def _samples():
    labels = np.array([0, 0, 0, 0, 1, 1, -1, -1])
    sizes = np.array([4, 4, 4, 4, 2, 2, 1, 1])
    likelihood = sizes / 4
    return pd.DataFrame({"cluster_id": labels, "cluster_size": sizes, "likelihood": likelihood,
                         "weight": gfl_weight(likelihood, 1.0, 5.0), "label": list("aaaabbab")})


def test_summarize_run_by_hand():
    summary = summarize_run(_samples(), label_column="label")
    assert summary["n_samples"] == 8 and summary["n_clusters"] == 2
    assert summary["noise_fraction"] == pytest.approx(0.25) and summary["largest_cluster_share"] == pytest.approx(0.5)
    assert summary["likelihood_min"] == 0.25 and summary["likelihood_max"] == 1.0
    assert summary["likelihood_counts"] == {"0.25": 2, "0.5": 2, "1.0": 4}
    assert summary["purity"] == pytest.approx(7 / 8)  # noise group {a, b}: one of its two is off
    assert 0 < summary["nmi"] <= 1


def test_grid_order_and_validation():
    assert parameter_grid(eps=[1, 2], min_samples=[5, 10]) == [
        {"eps": 1, "min_samples": 5}, {"eps": 1, "min_samples": 10}, {"eps": 2, "min_samples": 5},
        {"eps": 2, "min_samples": 10}]
    with pytest.raises(ValueError, match="eps"):
        parameter_grid(eps=[])


def test_weight_sweep_from_likelihood_counts():
    table = weight_sweep({"0.25": 2, "1.0": 6}, etas=[0.0, 1.0], gammas=[2.0]).set_index("eta")
    assert table.loc[1.0, "weight_max"] == pytest.approx((1 + 0.75 ** 2) / 2)
    assert table.loc[1.0, "weight_min"] == pytest.approx(0.5)
    assert table.loc[1.0, "weight_mean"] == pytest.approx((2 * (1 + 0.75 ** 2) / 2 + 6 * 0.5) / 8)
    assert table.loc[0.0, "weight_min"] == 0.0
    assert table.loc[0.0, "weight_ratio_max_min"] == float("inf")  # eta = 0 zeroes the largest cluster
    assert table.loc[1.0, "weight_ratio_max_min"] == pytest.approx((1 + 0.75 ** 2) / 2 / 0.5)


def _tiny_notebook(path):
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "deqlib", "display_name": "Python 3 (deqlib)", "language": "python"}
    # like 00_quickstart: a dict parameter for the clusterer, its keys recorded one by one; it declares
    # what 06 passes to the notebook it sweeps (an undeclared parameter is refused, issue 19)
    params = new_code_cell('clusterer_params = {"eps": 1.0, "min_samples": 5}\noutput_dir = None\n'
                           'noise_policy = "singleton"\nstability_k = 0')
    params.metadata["tags"] = ["parameters"]
    body = new_code_cell(
        "import numpy as np, pandas as pd\n"
        "from deqlib.sweep import write_run_summary\n"
        "eps, min_samples = clusterer_params['eps'], clusterer_params['min_samples']\n"
        "if eps > 5: raise ValueError('eps too large for this test')\n"
        "labels = (np.arange(20) // max(1, int(eps * 4))) % 3\n"
        "sizes = pd.Series(labels).map(pd.Series(labels).value_counts()).to_numpy()\n"
        "samples = pd.DataFrame({'cluster_id': labels, 'cluster_size': sizes, 'likelihood': sizes / sizes.max(),\n"
        "                        'label': labels})\n"
        "write_run_summary(samples, {'eps': eps, 'min_samples': min_samples}, f'{output_dir}/tiny_run_summary.json',\n"
        "                  label_column='label')")
    nb.cells = [params, body]
    nbformat.write(nb, path)
    return path


def test_a_dotted_axis_sets_one_key_of_a_dict_parameter():
    base = {"clusterer": "dbscan", "clusterer_params": {"min_samples": 5, "eps": 9.0}}
    point = {"clusterer_params.eps": 0.5, "max_images": 100}
    assert notebook_parameters(base, point) == {"clusterer": "dbscan", "max_images": 100,
                                                "clusterer_params": {"min_samples": 5, "eps": 0.5}}
    assert base["clusterer_params"] == {"min_samples": 5, "eps": 9.0}  # the base is not modified
    assert notebook_parameters({}, {"reducer_params.perplexity": 5.0}) == {"reducer_params": {"perplexity": 5.0}}
    assert run_name(point) == "eps-0.5_max_images-100"
    # two axes with the same last part keep their whole names
    assert column_names(["clusterer_params.random_state", "reducer_params.random_state", "eps"]) == {
        "clusterer_params.random_state": "clusterer_params.random_state",
        "reducer_params.random_state": "reducer_params.random_state", "eps": "eps"}
    with pytest.raises(ValueError, match="'clusterer_params'.*not a dict"):
        notebook_parameters({"clusterer_params": 3}, {"clusterer_params.eps": 1.0})


@pytest.mark.notebook
def test_run_sweep_gathers_fails_loudly_and_resumes(tmp_path):
    notebook = _tiny_notebook(tmp_path / "tiny.ipynb")
    grid = parameter_grid(**{"clusterer_params.eps": [0.5, 9.0]})
    base = {"clusterer_params": {"min_samples": 5}}
    table = run_sweep(str(notebook), grid, base, output_root=tmp_path / "runs", progress=False)
    assert table.status.tolist() == ["ok", "failed"]
    assert table.eps.tolist() == [0.5, 9.0] and table.run.tolist() == ["eps-0.5", "eps-9.0"]
    assert "eps too large" in table.error.iloc[1]
    assert table.n_samples.iloc[0] == 20 and table.nmi.iloc[0] == pytest.approx(1.0)
    assert (tmp_path / "runs" / "sweep_results.csv").is_file()
    again = run_sweep(str(notebook), grid, base, output_root=tmp_path / "runs", progress=False)
    assert again.status.tolist() == ["cached", "failed"]  # done runs are reused, failed ones retried
    # another base value inside the dict is another run, although the notebook records its keys one by one
    other = run_sweep(str(notebook), grid[:1], {"clusterer_params": {"min_samples": 7}},
                      output_root=tmp_path / "runs", progress=False)
    assert other.status.tolist() == ["ok"]
    assert read_run_summary(tmp_path / "runs" / "eps-0.5" / "tiny_run_summary.json")["parameters"] == {
        "eps": 0.5, "min_samples": 7}


@pytest.mark.notebook
def test_cli_sweep(tmp_path, capsys):
    notebook = _tiny_notebook(tmp_path / "tiny.ipynb")
    code = main(["sweep", str(notebook), "--grid", "clusterer_params.eps=0.5,1", "-p", "clusterer_params",
                 '{"min_samples": 3}', "--output-root", str(tmp_path / "runs")])
    assert code == 0
    out = capsys.readouterr().out
    assert "eps-0.5" in out and "eps-1" in out


@pytest.mark.notebook
def test_sweep_notebook_executes(tmp_path):
    notebook = _tiny_notebook(tmp_path / "tiny.ipynb")
    executed = notebooks.execute_notebook("06_parameter_sweeps", output_dir=tmp_path / "build", parameters={
        "notebook": str(notebook), "base_parameters": {}, "eps_values": [0.5, 1.0], "min_samples_values": [5],
        "noise_policies": ["singleton"], "output_root": str(tmp_path / "runs"), "output_dir": str(tmp_path / "figures")})
    assert executed.is_file()
    # the tiny notebook's labels: eps 0.5 gives clusters of 8, 6 and 6 of its 20 samples, eps 1.0 of 8, 8 and 4,
    # and the noise-policy runs' eps 2.0 (policy_parameters) 8, 8 and 4; the labels are the clusters (NMI 1)
    grid = pd.read_csv(tmp_path / "runs" / "eps_min_samples" / "sweep_results.csv")
    assert grid[["eps", "min_samples", "status", "n_samples", "n_clusters"]].values.tolist() == [
        [0.5, 5, "ok", 20, 3], [1.0, 5, "ok", 20, 3]]
    assert grid["likelihood_min"].tolist() == [0.75, 0.5] and grid["noise_fraction"].tolist() == [0.0, 0.0]
    assert grid["largest_cluster_share"].tolist() == [0.4, 0.4] and grid["nmi"].tolist() == pytest.approx([1.0, 1.0])
    policies = pd.read_csv(tmp_path / "runs" / "noise_policy" / "sweep_results.csv")
    assert policies[["noise_policy", "status", "likelihood_min"]].values.tolist() == [["singleton", "ok", 0.5]]
    # each figure records what it shows: the swept notebook, and the run whose weights it spreads over eta x gamma
    clusters = read_png_metadata(tmp_path / "figures" / "sweep_clusters_vs_eps.png")["parameters"]
    assert clusters == {"notebook": str(notebook)}
    weights = read_png_metadata(tmp_path / "figures" / "sweep_weight_spread.png")["parameters"]
    assert weights["etas"] == [0.0, 0.3, 1.0, 3.0] and weights["gammas"] == [2.0, 5.0]
    assert weights["run"] in grid["run"].tolist()
