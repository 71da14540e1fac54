"""Degenerate input (issue 19, deliverable 2): huge values, 1-d embeddings, tiny N.

Before: embeddings of 1e30 ran a whole t-SNE into NaN and then said "try a smaller
learning_rate" (float64) or "Eigenvalues did not converge" (float32); the notebooks' default
``stability_k=5`` at N = 12 died in scikit-learn with "n_neighbors = 12". Now each is one line
naming the fix, or works.
"""

from __future__ import annotations

import numpy as np
import pytest

from deqlib.cli import main as deq
from deqlib.consensus import knn_graph
from deqlib.stability import stability_runs
from deqlib.stages import build_stages


def _embeddings_file(tmp_path, vectors) -> str:
    path = tmp_path / "vectors.npz"
    np.savez(path, vectors=vectors, sample_ids=np.array([f"s{i:03d}" for i in range(len(vectors))]))
    return str(path)


def _analyze(tmp_path, vectors, capsys) -> tuple[int, str]:
    code = deq(["analyze", "--embeddings", _embeddings_file(tmp_path, vectors), "--output",
                str(tmp_path / "bank.parquet"), "--no-cache"])
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_huge_values_are_refused_before_the_tsne_naming_the_fix(tmp_path, capsys, dtype):
    vectors = (np.random.default_rng(0).normal(size=(200, 16)) * 1e30).astype(dtype)
    vectors[7, 3] = 5e30  # the largest, where the message must point
    code, err = _analyze(tmp_path, vectors, capsys)
    last = err.splitlines()[-1]
    assert code == 2 and "Traceback" not in err
    assert last.startswith("deq analyze: error: embeddings reach 5e+30 in absolute value (row 7, column 3)"), last
    assert "Scale the vectors first" in last and "StandardScaler" in last
    assert "learning_rate" not in err and "Eigenvalues" not in err and "t-SNE (" not in err  # no t-SNE ran
    assert not (tmp_path / "bank.parquet").exists()


def test_values_up_to_the_limit_pass_the_check():
    from deqlib.reduce import check_embeddings

    vectors = np.random.default_rng(1).normal(size=(20, 4))
    vectors[0, 0] = -1e15  # the limit itself: accepted
    assert check_embeddings(vectors).shape == (20, 4)
    vectors[0, 0] = -1.01e15
    with pytest.raises(ValueError, match=r"reach 1\.01e\+15 in absolute value \(row 0, column 0\)"):
        check_embeddings(vectors)


@pytest.mark.parametrize("vectors, says", [
    (np.arange(200.0), "must be a non-empty 2-D array (samples x features), got shape (200,); a single sample is "
                       "embeddings.reshape(1, -1), a single feature embeddings.reshape(-1, 1)"),
    (np.ones((1, 16)), "has 1 sample(s)"),
    (np.random.default_rng(2).normal(size=(3, 16)), "lower perplexity below 1.0 or add samples"),
], ids=["1-d", "one-sample", "three-samples"])
def test_one_d_and_tiny_inputs_are_one_line_naming_the_fix(tmp_path, capsys, vectors, says):
    code, err = _analyze(tmp_path, vectors, capsys)
    assert code == 2 and "Traceback" not in err and says in err.splitlines()[-1], err


def test_stability_with_five_runs_at_twelve_samples_completes():
    """The notebooks' default stability_k=5 at N = 12 (a small test run): scikit-learn refused
    "n_neighbors = 12" in the consensus neighbour graph."""
    X = np.random.default_rng(3).normal(size=(12, 16)).astype(np.float32)
    result = stability_runs(X, stages=build_stages("default", reducer_params={"perplexity": 3}), K=5)
    assert len(result.per_sample) == 12 and result.summary["K"] == 5
    assert result.per_sample["consensus_cluster_id"].notna().all()


@pytest.mark.parametrize("n, width", [(2, 1), (12, 11), (16, 15), (17, 16), (60, 16)])
def test_knn_graph_has_at_most_n_minus_1_neighbours_and_never_the_row_itself(n, width):
    X = np.random.default_rng(n).normal(size=(n, 8))
    graph = knn_graph(X)
    assert graph.shape == (n, width)  # k + 1 = 16 where there are enough rows: unchanged
    assert not (graph == np.arange(n)[:, None]).any()


def test_knn_graph_of_one_sample_names_the_fix():
    with pytest.raises(ValueError, match="at least 2 samples, got 1; add samples"):
        knn_graph(np.ones((1, 4)))
