"""The core count never changes a bank (issue 19: ``taskset -c 0`` against 2 cores moved 1,977 of
2,000 likelihoods).

Two processes run the same default analysis on the same vectors, one allowed a single core
(``os.sched_setaffinity``, as ``taskset -c 0`` does), one allowed two; their likelihoods must be
identical. Before the fix openTSNE's ``n_jobs`` followed the allowed cores and Annoy built its
neighbour trees with one seed per thread, and scikit-learn's t-SNE (reference mode) ran its OpenMP
gradient on every allowed core; both maps, and so the clusters, moved.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from deqlib.reduce import DEFAULT_TSNE_THREADS, OpenTSNEReducer, SklearnTSNEReducer

#: One analysis on unstructured Gaussian vectors (where approximate neighbours depend most on the
#: trees), in a process allowed ``cores`` cores. Short t-SNE schedules: any change of the affinities
#: moves the map within a few iterations.
_WORKER = textwrap.dedent("""
    import json, os, sys
    cores, mode, n = json.loads(sys.argv[1])
    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:cores]))
    import numpy as np
    from deqlib.pipeline import analyze
    from deqlib.stages import build_stages
    X = np.random.default_rng(0).normal(size=(n, 50)).astype(np.float32)
    if mode == "default":
        stages = build_stages(reducer_params={"early_exaggeration_iter": 50, "n_iter": 50}, clusterer_params={"eps": 1.0})
    else:
        stages = build_stages("reference", reducer_params={"max_iter": 300}, clusterer_params={"eps": 2.0})
    result = analyze(embeddings=X, stages=stages, cache=False)
    print(json.dumps({"likelihood": result.samples["likelihood"].tolist(), "x": result.samples["x"].tolist(),
                      "reduce": {k: v for k, v in result.params["reduce"].items() if "thread" in k or k == "n_jobs"},
                      "cores": len(os.sched_getaffinity(0))}))
""")


def _run_with_cores(cores: int, mode: str, n: int) -> dict:
    done = subprocess.run([sys.executable, "-c", _WORKER, json.dumps([cores, mode, n])], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs two allowed cores to compare 1 against 2")
@pytest.mark.parametrize("mode, n", [("default", 1500), ("reference", 800)])
def test_two_runs_allowed_different_cores_give_identical_likelihoods(mode, n):
    one_core, two_cores = _run_with_cores(1, mode, n), _run_with_cores(2, mode, n)
    assert (one_core["cores"], two_cores["cores"]) == (1, 2)
    assert one_core["x"] == two_cores["x"]  # the map itself, not only the clusters
    assert one_core["likelihood"] == two_cores["likelihood"]
    # the thread counts are recorded, and they are the constant default, not the cores
    assert one_core["reduce"] == two_cores["reduce"]
    threads = one_core["reduce"].get("n_jobs", one_core["reduce"].get("n_threads"))
    assert threads == DEFAULT_TSNE_THREADS == 1


def test_tsne_threads_default_to_a_constant_and_are_keyed():
    assert OpenTSNEReducer().n_jobs == 1 and SklearnTSNEReducer().n_threads == 1
    # the count is part of the cache key: a map made on 2 threads is never reused for 1
    assert OpenTSNEReducer().cache_key()["n_jobs"] == 1
    assert OpenTSNEReducer(n_jobs=2).cache_key() != OpenTSNEReducer().cache_key()
    assert SklearnTSNEReducer(n_threads=2).cache_key() != SklearnTSNEReducer().cache_key()
    with pytest.raises(ValueError, match="n_threads must be a positive number of threads or -1"):
        SklearnTSNEReducer(n_threads=0).cache_key()


def test_opentsne_neighbours_depend_on_its_thread_count():
    """Why the default is a constant: openTSNE's affinities on 1 and 2 threads differ (Annoy trees)."""
    import openTSNE

    X = np.random.default_rng(0).normal(size=(1200, 50))
    P = [openTSNE.affinity.PerplexityBasedNN(X, perplexity=30, method="annoy", n_jobs=t, random_state=33).P
         for t in (1, 2)]
    assert abs(P[0] - P[1]).max() > 0
