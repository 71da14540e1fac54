"""The whole experiment: one (setting, seed) task trains every model x arm; :func:`run_experiment` runs
the tasks (in parallel processes with ``n_jobs``), saving the per-seed rows as each finishes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from deqlib import paths
from deqlib.experiment.arms import ARMS, Arm, arm_weights, realised_ratio
from deqlib.experiment.config import MODELS, SETTINGS, ExperimentConfig
from deqlib.experiment.data import Pool, build_pools, draw_setting
from deqlib.experiment.signals import SignalContext, oracle_likelihood, signal_likelihood, signal_ranking
from deqlib.experiment.training import model_inputs, train_model

__all__ = ["RUN_KEY", "run_task", "run_experiment"]


def _metrics(predicted: np.ndarray, test_y: np.ndarray, test_rare: np.ndarray) -> dict:
    from sklearn.metrics import balanced_accuracy_score

    correct = predicted == test_y
    return {"accuracy": float(correct.mean()), "balanced_accuracy": float(balanced_accuracy_score(test_y, predicted)),
            "accuracy_rare": float(correct[test_rare].mean()), "accuracy_common": float(correct[~test_rare].mean())}


def run_task(pools: dict[str, Pool], setting: str, seed: int, config: ExperimentConfig,
             arms: Sequence[Arm], models: Sequence[str]) -> dict:
    """One (setting, seed): draw the data, compute the signals, train every model x arm.

    Returns ``rows`` (one per model x arm), ``ranking`` (signal AUCs) and ``info``.
    """
    import torch

    from deqlib.threads import limit_threads

    started, cpu_started = time.perf_counter(), time.process_time()
    with limit_threads(config.threads):
        data = draw_setting(pools, setting, config, seed)
        train_X = pools["train"].X[data["train_idx"]]
        context = SignalContext(train_X, config, seed)
        needed = sorted({arm.signal for arm in arms if arm.signal not in (None, "oracle")})
        likelihoods = {name: np.asarray(signal_likelihood(name, context), dtype=float) for name in needed}
        ranking = signal_ranking(pd.DataFrame(likelihoods), data["train_rare"]) if likelihoods else pd.DataFrame()
        likelihoods["oracle"] = oracle_likelihood(data["train_rare"])
        signal_seconds = time.perf_counter() - started
        rows = []
        for model in models:
            X_train = model_inputs(model, pools["train"], data["train_idx"])
            X_test = model_inputs(model, pools["test"], data["test_idx"])
            for arm in (arm for arm in arms if model in arm.models):
                arm_started = time.perf_counter()
                weights = arm_weights(arm, likelihoods, data["train_y"], seed)
                net, epochs = train_model(model, X_train, data["train_y"], weights, config, seed)
                with torch.inference_mode():
                    predicted = net(X_test).argmax(1).numpy()
                rows.append({"setting": setting, "model": model, "arm": arm.name, "seed": seed,
                             **_metrics(predicted, data["test_y"], data["test_rare"]),
                             "weight_ratio": realised_ratio(weights, data["train_rare"]),
                             "epochs": epochs, "n_train": len(data["train_y"]),
                             "n_rare_train": int(data["train_rare"].sum()),
                             "seconds": round(time.perf_counter() - arm_started, 2)})
    if len(ranking):
        ranking.insert(0, "seed", seed)
        ranking.insert(0, "setting", setting)
    info = {"setting": setting, "seed": seed, "n_train": len(data["train_y"]), "n_test": len(data["test_y"]),
            "n_rare_train": int(data["train_rare"].sum()), "signal_seconds": round(signal_seconds, 1),
            "seconds": round(time.perf_counter() - started, 1),
            "cpu_seconds": round(time.process_time() - cpu_started, 1),  # load-independent: the idle-time estimate
            "class_order": data.get("class_order", ""), "condition": data.get("condition", "")}
    if "coords" in context.__dict__:
        labels = context.clustering.labels
        info.update(n_clusters=int(labels.max() + 1), noise_fraction=float((labels < 0).mean()))
    return {"rows": rows, "ranking": ranking, "info": info}


RUN_KEY = ["setting", "seed"]


_WORKER_POOLS: dict = {}


def _set_worker_pools(pools: dict) -> None:
    # Runs once per spawned worker: the pools are sent once, not with every task.
    _WORKER_POOLS.update(pools)


def _task_in_process(args):
    # Threads are limited inside run_task.
    return run_task(_WORKER_POOLS, *args)


def run_experiment(config: ExperimentConfig | None = None, settings: Sequence[str] = SETTINGS,
                   arms: Sequence[Arm | str] | None = None, models: Sequence[str] = MODELS, cache_dir=None,
                   progress: bool = False, n_jobs: int = 1, runs_path: str | Path | None = None,
                   resume: bool = False, log: Callable[[str], None] | None = None) -> dict:
    """Run every (setting, seed) task: all models x arms. Returns ``runs`` (one row per setting x model x
    arm x seed), ``ranking`` (signal AUCs per setting and seed), ``info`` (per task) and ``seconds``.

    ``cache_dir`` is the embedding cache; None uses the workbook's own (``deqlib.paths.interim_dir() /
    "embeddings"``, shared with ``00_quickstart`` and ``deq embed``). ``n_jobs`` runs tasks in that many
    spawned processes (each with ``config.threads`` threads). With ``runs_path``, the per-seed rows are
    rewritten (atomically) after every finished task, so a deadline keeps what finished; with
    ``resume=True`` the tasks already in ``runs_path`` are kept and not run again.
    """
    from deqlib._atomic import write_text_atomic

    config = config or ExperimentConfig()
    arm_list = [a if isinstance(a, Arm) else {arm.name: arm for arm in ARMS}[a] for a in (arms or ARMS)]
    if cache_dir is None:
        cache_dir = paths.interim_dir() / "embeddings"
    started = time.perf_counter()
    done_rows, done_ranking, done_info = [], [], []
    if resume and runs_path is not None and Path(runs_path).is_file():
        previous = pd.read_csv(runs_path)
        done_rows = previous.to_dict("records")
        for suffix, store in (("_ranking", done_ranking), ("_info", done_info)):
            side = Path(runs_path).with_name(Path(runs_path).stem + suffix + ".csv")
            if side.is_file():
                store.extend(pd.read_csv(side).to_dict("records"))
    # rows of a (model, arm) pair this run does not train are not kept (they would have fewer seeds)
    pairs = {(model, arm.name) for arm in arm_list for model in models if model in arm.models}
    done_rows = [r for r in done_rows if (r["model"], r["arm"]) in pairs]
    finished = {(r["setting"], int(r["seed"])) for r in done_rows}
    # seed-major order: a run cut short by a deadline has both settings for the seeds it finished
    tasks = [(s, seed) for seed in config.seeds for s in settings if (s, seed) not in finished]
    pools = build_pools(config, cache_dir=cache_dir, progress=progress) if tasks else None
    say = log or (lambda message: None)

    def record(result):
        done_rows.extend(result["rows"])
        done_ranking.extend(result["ranking"].to_dict("records"))
        done_info.append(result["info"])
        say(f"{result['info']['setting']} seed {result['info']['seed']} done "
            f"({len(done_info)} tasks, {time.perf_counter() - started:.0f} s)")
        if runs_path is not None:
            write_text_atomic(runs_path, pd.DataFrame(done_rows).to_csv(index=False))
            base = Path(runs_path).with_name(Path(runs_path).stem)
            write_text_atomic(f"{base}_ranking.csv", pd.DataFrame(done_ranking).to_csv(index=False))
            write_text_atomic(f"{base}_info.csv", pd.DataFrame(done_info).to_csv(index=False))

    arguments = [(s, seed, config, arm_list, list(models)) for s, seed in tasks]
    if n_jobs > 1 and len(tasks) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # spawn, not fork: a forked child of a process that has used OpenMP can hang in its first parallel region
        with ProcessPoolExecutor(max_workers=n_jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_set_worker_pools, initargs=(pools,)) as executor:
            for future in as_completed([executor.submit(_task_in_process, a) for a in arguments]):
                record(future.result())
    else:
        for a in arguments:
            record(run_task(pools, *a))
    order = {(s, seed): i for i, (s, seed) in enumerate((s, seed) for s in SETTINGS for seed in sorted(
        {int(r["seed"]) for r in done_rows} | set(config.seeds)))}
    runs = pd.DataFrame(done_rows)
    if len(runs):
        arm_rank = {arm.name: i for i, arm in enumerate(ARMS)}
        runs = runs.assign(_t=[order[(s, int(seed))] for s, seed in zip(runs.setting, runs.seed)],
                           _m=runs.model.map({m: i for i, m in enumerate(MODELS)}),
                           _a=runs.arm.map(lambda a: arm_rank.get(a, len(arm_rank))))
        runs = runs.sort_values(["_t", "_m", "_a"], kind="stable").drop(columns=["_t", "_m", "_a"])
        runs = runs.reset_index(drop=True)
    return {"runs": runs, "ranking": pd.DataFrame(done_ranking), "info": pd.DataFrame(done_info),
            "seconds": time.perf_counter() - started}
