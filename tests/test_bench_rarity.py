"""benchmarks/rarity: the pools each seed draws (on a synthetic universe, known answers) and the --quick run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks" / "rarity"))
import universe as U  # noqa: E402


def synthetic_universe(per_class=60, candidates_per_class=10) -> U.Universe:
    spec = U.UniverseSpec(per_class=per_class, candidates_per_class=candidates_per_class)
    labels = np.repeat(np.arange(10), per_class)
    X = np.arange(len(labels), dtype=np.float32)[:, None] * np.ones((1, 4), np.float32)  # row i holds i
    candidates = np.concatenate([c * per_class + np.arange(candidates_per_class) for c in range(10)])
    altered = {"fog": -1.0 - np.arange(len(candidates), dtype=np.float32)[:, None] * np.ones((1, 4), np.float32)}
    return U.Universe(spec, "synthetic", X, labels, [str(i) for i in range(len(labels))], candidates, altered)


def test_universe_positions_are_per_class_and_candidates_lead_each_class():
    labels = np.repeat(np.arange(10), 50)
    spec = U.UniverseSpec(per_class=20, candidates_per_class=3)
    positions, candidates = U.universe_positions(spec, labels)
    assert len(positions) == 200 and len(set(positions)) == 200
    assert (labels[positions] == np.repeat(np.arange(10), 20)).all()
    assert candidates.tolist()[:4] == [0, 1, 2, 20]


def test_condition_pool_plants_the_prevalence_and_leaves_the_originals_out():
    universe = synthetic_universe()
    task = U.Task("condition", 0.03, "fog")
    pool = U.draw_pool(universe, task, seed=0, n=400)
    assert pool["X"].shape == (400, 4) and pool["n_rare"] == 12 and pool["rare"].sum() == 12
    altered = pool["X"][pool["rare"], 0]
    assert (altered < 0).all()  # the altered copies
    originals = universe.candidates[(-1 - altered).astype(int)]
    clean = pool["X"][~pool["rare"], 0].astype(int)
    assert not set(originals) & set(clean)  # never an image and its altered copy together
    assert len(set(clean)) == len(clean)
    counts = np.bincount(pool["labels"][~pool["rare"]], minlength=10)
    assert counts.max() - counts.min() <= 1  # the clean rest is balanced over the classes
    assert pool["rare"][:12].sum() < 12  # rows are shuffled, not rare-first
    again = U.draw_pool(universe, task, seed=0, n=400)
    other = U.draw_pool(universe, task, seed=1, n=400)
    assert np.array_equal(again["X"], pool["X"]) and not np.array_equal(other["X"], pool["X"])


def test_rare_class_pool_keeps_three_classes_at_the_prevalence():
    universe = synthetic_universe()
    pool = U.draw_pool(universe, U.Task("classes", 0.015), seed=4, n=400)
    rare_classes = pool["rare_classes"]
    assert len(rare_classes) == 3 and pool["n_rare"] == 6
    assert np.isin(pool["labels"], rare_classes).sum() == 6
    assert np.array_equal(pool["rare"], np.isin(pool["labels"], rare_classes))
    orders = {tuple(U.draw_pool(universe, U.Task("classes", 0.015), seed=s, n=400)["rare_classes"]) for s in range(6)}
    assert len(orders) > 1  # a random class order per seed


def test_all_tasks_cover_the_issue_grid():
    tasks = U.all_tasks()
    names = [t.name for t in tasks]
    assert names[:3] == ["rare-classes@0.5%", "rare-classes@1.5%", "rare-classes@3%"]
    assert len(tasks) == 3 + 2 * len(U.DRIVING_CONDITIONS) and "lens-dirt@1%" in names and "fog@3%" in names


@pytest.mark.slow
def test_quick_run_writes_cells_results_and_table(tmp_path):
    env = {**os.environ, "RARITY_BENCH_CACHE": str(tmp_path / "cache")}
    command = [sys.executable, str(ROOT / "benchmarks" / "rarity" / "bench_rarity.py"), "run", "--quick",
               "--encoders", "efficientnet-lite0", "--seeds", "2", "--signals", "knn-density",
               "--tasks", "fog", "--out", str(tmp_path / "results")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-2000:]
    results = sorted((tmp_path / "results").glob("rarity-quick-*.json"))
    assert len(results) == 1
    payload = json.loads(results[0].read_text())
    assert {c["task"] for c in payload["cells"]} == {"fog@1%", "fog@3%"} and len(payload["cells"]) == 4
    assert all(0 <= c["roc_auc"] <= 1 and c["n"] == 100 and c["cost_ratio"] > 0 for c in payload["cells"])
    assert payload["run"]["host"]["cores"] and payload["run"]["reference_seconds"]["efficientnet-lite0"] > 0
    table = results[0].with_suffix(".md").read_text()
    assert "| knn-density |" in table and "fog@1%" in table and "ceiling" in table
    cells = list((tmp_path / "cache" / "cells").rglob("knn-density.json"))
    assert len(cells) == 4
