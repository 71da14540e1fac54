"""Threads for the experiment's small steps: 1 vs 2 torch/BLAS threads, measured side by side.

`PYTHONPATH=. python benchmarks/training/bench_threads.py` -> results/threads.json. The steps are the
experiment's own (deqlib.experiment.train_model for both models, the 3-D openTSNE reduction) on arrays of the
experiment's sizes; 1- and 2-thread runs alternate so that both see the same machine load. On a shared, loaded
machine the absolute times are not idle-machine times; the ratio is the result.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _host import cpu_model  # noqa: E402

from deqlib import __version__  # noqa: E402
from deqlib import experiment as ex  # noqa: E402
from deqlib._atomic import write_text_atomic  # noqa: E402
from deqlib.reduce import OpenTSNEReducer  # noqa: E402
from deqlib.threads import limit_threads  # noqa: E402


def main(repeats: int = 1) -> None:
    rng = np.random.default_rng(0)
    n = 1000
    y = rng.integers(0, 10, n)
    pixels = torch.as_tensor(rng.normal(size=(n, 3, 28, 28)), dtype=torch.float32)
    embeddings = rng.normal(size=(n, 1280)).astype(np.float32)
    config = ex.ExperimentConfig(max_epochs={"frozen_head": 5, "small_cnn": 2}, patience=100)
    steps = {
        "small_cnn_2_epochs": lambda: ex.train_model("small_cnn", pixels, y, np.ones(n), config, 0),
        "frozen_head_5_epochs": lambda: ex.train_model("frozen_head", torch.as_tensor(embeddings), y, np.ones(n),
                                                       config, 0),
        "tsne_3d_1000_points": lambda threads: OpenTSNEReducer(random_state=0, n_jobs=threads).fit_transform(embeddings),
    }
    load_before = os.getloadavg()
    times = {name: {1: [], 2: []} for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            for threads in (1, 2):
                with limit_threads(threads):
                    started = time.perf_counter()
                    step(threads) if name.startswith("tsne") else step()
                    times[name][threads].append(time.perf_counter() - started)
    results = {name: {"seconds_1_thread": [round(t, 2) for t in value[1]],
                      "seconds_2_threads": [round(t, 2) for t in value[2]],
                      "ratio_2_over_1_median": round(float(np.median(value[2]) / np.median(value[1])), 3)}
               for name, value in times.items()}
    record = {"what": "1 vs 2 torch/BLAS/OpenMP threads (deqlib.threads.limit_threads) for the experiment's small steps",
              "results": results,
              "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
                          "torch": torch.__version__},
              "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "load_average_before": load_before, "load_average_after": os.getloadavg(),
              "note": "shared, loaded machine (other jobs running): absolute times are not idle-machine times",
              "deqlib": __version__}
    out = Path(__file__).resolve().parent / "results" / "threads.json"
    write_text_atomic(out, json.dumps(record, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
