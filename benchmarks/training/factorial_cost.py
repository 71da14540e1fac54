"""CPU seconds of one full-size training of each model under the factorial experiment's stopping rule, and the
full run's estimate (deqlib.experiment.estimate_cpu_seconds). The CNN reads pixels only, so no embedding is
needed: it trains on the real full-size draws (long_tail and blurred, CE and oracle-rare x cb(17)). The frozen
head's cost per epoch is measured on full-size random vectors (epochs come from the runs' rows).

    python benchmarks/training/factorial_cost.py [--runs N] [--out results/factorial_cost.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _host import cpu_model  # noqa: E402

from deqlib.experiment import arms as A, config as C, data as D, signals as S, training as T  # noqa: E402
from deqlib.experiment.conditions import ConditionSource  # noqa: E402
from deqlib.sources import FashionMNISTSource, SubsetSource  # noqa: E402
from deqlib.threads import limit_threads  # noqa: E402


def pixel_pools(config):
    pools = {}
    for split, per_class, rare in (("train", config.pool_per_class, config.pool_rare_per_class),
                                   ("test", config.test_pool_per_class, config.test_pool_per_class)):
        source = FashionMNISTSource(split=split)
        chosen = D.per_class_pool(source.labels, per_class, config.pool_seed)
        plain, modified = np.sort(np.concatenate(chosen)), np.sort(np.concatenate([c[:rare] for c in chosen]))
        parts = [(SubsetSource(source, plain), plain, "")] + [
            (ConditionSource(SubsetSource(source, modified), np.ones(len(modified), bool), c), modified, c)
            for c in config.conditions]
        pixels = np.concatenate([D.source_pixels(s) for s, _, _ in parts])
        pools[split] = D.Pool(X=np.zeros((len(pixels), 1)), pixels=pixels,
                              labels=np.concatenate([source.labels[w] for _, w, _ in parts]),
                              condition=np.concatenate([np.full(len(w), c, object) for _, w, c in parts]),
                              base=np.concatenate([w for _, w, _ in parts]))
    return pools


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=4, help="CNN trainings to time (default 4)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "factorial_cost.json")
    args = parser.parse_args()
    config = C.ExperimentConfig(conditions=("blurred",))
    pools = pixel_pools(config)
    arms = {a.name: a for a in A.design(config)}
    cnn = []
    plan = [(s, seed, arm) for s in ("long_tail", "blurred") for seed in (0, 1) for arm in ("CE", "oracle-rare x cb(17)")]
    with limit_threads(1):
        for setting, seed, name in plan[:args.runs]:
            data = D.draw_setting(pools, setting, config, seed)
            likelihoods = {"oracle-rare": S.oracle_likelihood(data["train_rare"])}
            X = T.model_inputs("small_cnn", pools["train"], data["train_idx"])
            weights = A.arm_weights(arms[name], likelihoods, data["train_y"], config, seed)
            cpu, wall = time.process_time(), time.perf_counter()
            _, epochs, capped = T.train_model("small_cnn", X, data["train_y"], weights, config, seed)
            cnn.append({"setting": setting, "seed": seed, "arm": name, "n_train": len(weights), "epochs": epochs,
                        "hit_cap": capped, "cpu_seconds": round(time.process_time() - cpu, 1),
                        "wall_seconds": round(time.perf_counter() - wall, 1)})
            print(cnn[-1], flush=True)
        import torch
        frozen = {}
        for n in (1985, 3000):
            X = torch.as_tensor(np.random.default_rng(0).normal(size=(n, 1280)), dtype=torch.float32)
            timing = C.ExperimentConfig(max_epochs={"frozen_head": 30, "small_cnn": 1}, patience=1000)
            cpu = time.process_time()
            T.train_model("frozen_head", X, np.arange(n) % 10, np.ones(n), timing, 0)
            frozen[n] = round((time.process_time() - cpu) / 30, 4)
    result = {"machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "load_average": os.getloadavg()},
              "date": dt.date.today().isoformat(), "cnn_runs": cnn, "frozen_head_cpu_seconds_per_epoch": frozen}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
