"""Notebook polish: a t-SNE progress bar that changes nothing, stage messages on stdout, clean notebooks."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from deqlib.reduce import OpenTSNEReducer

ROOT = Path(__file__).resolve().parent.parent


def test_tsne_progress_bar_counts_every_iteration_and_changes_nothing(capsys):
    X = np.random.default_rng(0).normal(size=(200, 10)).astype(np.float32)
    reducer = OpenTSNEReducer(perplexity=10, early_exaggeration_iter=20, n_iter=30, pca_components=None, n_jobs=1)
    quiet = reducer.fit_transform(X)
    shown = reducer.fit_transform(X, progress=True)
    assert np.array_equal(quiet, shown)
    err = capsys.readouterr().err  # tqdm outside a notebook: a text bar on stderr
    assert "t-SNE (200 points)" in err and "50/50" in err and "KL " in err


@pytest.mark.slow
def test_stage_messages_go_to_stdout_when_logging_is_not_configured():
    # A fresh interpreter, like a notebook kernel: no logging handlers configured.
    code = ("import numpy as np, logging; from deqlib.pipeline import analyze, build_stages; "
            "from deqlib.reduce import OpenTSNEReducer; from deqlib.cluster import DBSCANClusterer; "
            "X = np.random.default_rng(0).normal(size=(120, 8)).astype('float32'); "
            "analyze(embeddings=X, sample_ids=[f's{i}' for i in range(120)], cache=False, progress=True, "
            "stages=build_stages(reducer=OpenTSNEReducer(perplexity=5, early_exaggeration_iter=10, n_iter=10, "
            "pca_components=None, n_jobs=1), clusterer=DBSCANClusterer(eps=1.0, min_samples=3)))")
    import os
    import sys

    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "[deq analyze] reduce: done in" in run.stdout and "[deq analyze] cluster:" in run.stdout
    assert "[deq analyze]" not in run.stderr


def test_one_progress_helper_prints_to_stdout_or_logs_when_logging_is_configured(capsys, caplog):
    import logging

    from deqlib.progress import stage_message

    bare = logging.getLogger("deqlib.test-progress-bare")
    bare.propagate = False  # no handlers anywhere above it: a fresh notebook kernel
    stage_message(bare, "deq test", True, "half way")
    stage_message(bare, "deq test", False, "quiet")
    captured = capsys.readouterr()
    assert captured.out == "[deq test] half way\n" and captured.err == ""
    with caplog.at_level(logging.INFO, logger="deqlib.test-progress-logged"):
        stage_message(logging.getLogger("deqlib.test-progress-logged"), "deq test", True, "logged")
    assert [r.getMessage() for r in caplog.records] == ["logged"] and capsys.readouterr().out == ""


def test_checkpoints_are_ignored():
    ignored = subprocess.run(["git", "check-ignore", "-q", "notebooks/.ipynb_checkpoints/00_quickstart-checkpoint.ipynb"],
                             cwd=ROOT)
    assert ignored.returncode == 0, ".ipynb_checkpoints/ must be in .gitignore"


def test_pre_commit_hook_refuses_notebooks_with_outputs(tmp_path):
    def git(*args, check=True):
        return subprocess.run(["git", *args], cwd=tmp_path, capture_output=True, text=True, check=check)

    git("init", "-q")
    git("config", "user.email", "t@example.org")
    git("config", "user.name", "t")
    git("config", "core.hooksPath", str(ROOT / ".githooks"))
    cell = {"cell_type": "code", "metadata": {}, "source": "1 + 1", "outputs": [], "execution_count": None}
    notebook = {"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "clean.ipynb").write_text(json.dumps(notebook))
    git("add", "clean.ipynb")
    assert git("commit", "-qm", "clean").returncode == 0
    cell.update(outputs=[{"output_type": "execute_result", "data": {"text/plain": "2"}, "metadata": {},
                          "execution_count": 1}], execution_count=1)  # what a JupyterLab run leaves
    (tmp_path / "clean.ipynb").write_text(json.dumps(notebook))
    git("add", "clean.ipynb")
    refused = git("commit", "-qm", "with outputs", check=False)
    assert refused.returncode == 1
    assert "jupyter nbconvert --clear-output --inplace 'clean.ipynb'" in refused.stderr
