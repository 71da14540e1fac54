"""``deq rarity-check`` / deqlib.rarity_check end to end on a tiny folder of real Fashion-MNIST images."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from deqlib import paths
from deqlib.rarity_check import rarity_check
from deqlib.sources import FashionMNISTSource, open_source

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py
CPU = {"device": "cpu", "num_threads": 1, "num_workers": 0}


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """40 real Fashion-MNIST test images as PNG files (a user's plain folder)."""
    folder = tmp_path_factory.mktemp("my_images")
    source = FashionMNISTSource(split="test", max_images=40, seed=3)
    for i in range(len(source)):
        source.load(i).convert("RGB").save(folder / f"img_{i:03d}.png")
    return folder


def _tree_digest(folder) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_bad_requests_name_the_fix(image_folder, tmp_path):
    source = open_source("folder", root=image_folder)
    with pytest.raises(ValueError, match="plants 1 image.*raise n_samples to 67"):
        rarity_check(source, n_samples=30, prevalence=0.03, tiers=("cheap",), cache_dir=tmp_path)
    with pytest.raises(ValueError, match="only 40 images"):
        rarity_check(source, n_samples=400, tiers=("cheap",), cache_dir=tmp_path)
    with pytest.raises(ValueError, match="too few for a t-SNE"):
        rarity_check(source, n_samples=30, prevalence=0.1, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown condition"):
        rarity_check(source, n_samples=30, prevalence=0.1, conditions=["hail"], tiers=("cheap",), cache_dir=tmp_path)
    with pytest.raises(ValueError, match="data/raw"):
        rarity_check(source, n_samples=30, prevalence=0.1, tiers=("cheap",), cache_dir=paths.raw_dir() / "x")


@pytest.mark.slow
def test_rarity_check_scores_planted_conditions_caches_and_never_touches_the_images(image_folder, tmp_path):
    before = _tree_digest(image_folder)
    source = open_source("folder", root=image_folder)
    kwargs = dict(n_samples=30, prevalence=0.1, conditions=["fog", "night"], signals=["knn-density"],
                  tiers=("cheap",), seed=1, cache_dir=tmp_path / "cache", embed_options=CPU, progress=False)
    result = rarity_check(source, **kwargs)
    assert list(result.cells["task"]) == ["fog@10%", "night@10%"]
    assert set(result.cells["variant"]) == {"knn-density"}
    assert ((result.cells["roc_auc"] >= 0) & (result.cells["roc_auc"] <= 1)).all()
    assert (result.cells["prevalence"] == 0.1).all() and (result.cells["n_levels"] > 1).all()
    assert result.probes["probe_auc"].between(0, 1).all() and len(result.probes) == 2
    table = result.table()
    assert list(table.index) == ["ceiling: linear probe", "knn-density"]
    assert list(table.columns) == ["fog@10%", "night@10%"] and result.best() == "knn-density"
    # every (condition, signal) cell and probe is cached: a rerun reads the same numbers back
    cells = sorted((tmp_path / "cache" / "cells").rglob("*.json"))
    assert len(cells) == 4
    again = rarity_check(source, **kwargs)
    assert again.cells.equals(result.cells)
    # the images were only read
    assert _tree_digest(image_folder) == before
    written = result.write(tmp_path / "out")
    assert Image.open(written["figure"]).size[0] > 300
    params = json.loads(written["params"].read_text())
    assert params["n_rare"] == 3 and params["conditions"] == ["fog", "night"] and params["encoder"] == "efficientnet-lite0"
    # k-NN density is deterministic: the second fit (other seed, rows reordered) ranks the same
    assert result.cells["spearman_ab"].to_numpy() == pytest.approx([1.0, 1.0])


@pytest.mark.slow
def test_the_command_prints_the_table_and_writes_its_files(image_folder, tmp_path, capsys):
    from deqlib.cli import main

    code = main(["rarity-check", "--source", "folder", "--root", str(image_folder), "--n-samples", "30",
                 "--prevalence", "0.1", "--conditions", "snow", "--signals", "knn-density", "--tiers", "cheap",
                 "--threads", "1", "--device", "cpu", "--cache", str(tmp_path / "cache"),
                 "--output", str(tmp_path / "out"), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert "snow@10%" in out and "ceiling: linear probe" in out and "best signal here: knn-density" in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "rarity_check_auc.csv", "rarity_check_auc.png", "rarity_check_cells.csv", "rarity_check_params.json"]
    table = np.loadtxt(tmp_path / "out" / "rarity_check_auc.csv", delimiter=",", skiprows=1, usecols=1)
    assert table.shape == (2,) and ((table >= 0) & (table <= 1)).all()
