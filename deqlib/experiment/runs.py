"""The whole experiment: one (setting, seed) task computes the signals once and trains every model x arm of
the design; every (cell, seed) row is cached as soon as it is trained, so an interrupted run resumes where it
stopped (:func:`run_experiment` with ``resume=True``)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from deqlib import paths
from deqlib.experiment.arms import PLACEBO, Arm, arm_weights, arms_for, design, realised_ratio
from deqlib.experiment.config import MODELS, ExperimentConfig
from deqlib.experiment.data import Pool, build_pools, draw_setting
from deqlib.experiment.signals import (ORACLE_CLASS, ORACLE_RARE, SignalContext, class_oracle_likelihood,
                                       noisy_oracle_likelihood, oracle_likelihood, signal_likelihood, signal_quality,
                                       signal_ranking)
from deqlib.experiment.training import model_inputs, train_model

__all__ = ["RUN_KEY", "ROWS_FOLDER", "run_task", "run_experiment", "read_row_cache", "count_runs",
           "estimate_cpu_seconds"]

#: What identifies one row: the cell (setting, model, arm) and the seed.
RUN_KEY = ["setting", "model", "arm", "seed"]
#: The per-(cell, seed) row cache, beside the runs file.
ROWS_FOLDER = "training_gfl_rows"


def _metrics(predicted: np.ndarray, test_y: np.ndarray, test_rare: np.ndarray) -> dict:
    from sklearn.metrics import balanced_accuracy_score

    correct = predicted == test_y
    return {"accuracy": float(correct.mean()), "balanced_accuracy": float(balanced_accuracy_score(test_y, predicted)),
            "accuracy_rare": float(correct[test_rare].mean()), "accuracy_common": float(correct[~test_rare].mean())}


def _task_stem(setting: str, seed: int) -> str:
    return f"{setting}__{seed}"


def _likelihoods(needed: set, data: dict, context: SignalContext, config: ExperimentConfig, seed: int) -> dict:
    likelihoods = {}
    for name in sorted(needed):
        if name == ORACLE_RARE:
            likelihoods[name] = oracle_likelihood(data["train_rare"])
        elif name == ORACLE_CLASS:
            likelihoods[name] = class_oracle_likelihood(data["train_y"])
        elif name.startswith("sweep:"):
            likelihoods[name] = noisy_oracle_likelihood(data["train_rare"], float(name.split(":", 1)[1]), seed)
        else:
            likelihoods[name] = signal_likelihood(name, context, config)
    return likelihoods


def run_task(pools: dict[str, Pool], setting: str, seed: int, config: ExperimentConfig,
             arms: Sequence[Arm], models: Sequence[str], done: frozenset = frozenset(),
             rows_folder: str | Path | None = None) -> dict:
    """One (setting, seed): draw the data, compute the signals the remaining arms need, train every model x arm
    not in ``done`` (a set of ``(model, arm name)``); a model trains only on its seeds (``config.seeds_of``).

    With ``rows_folder``, the task's rows are rewritten there (atomically) after every arm. Returns ``rows``
    (one per model x arm trained now), ``ranking`` (each signal's AUC and AP on the training pool) and ``info``.
    """
    import torch

    from deqlib._atomic import write_text_atomic
    from deqlib.threads import limit_threads

    started, cpu_started = time.perf_counter(), time.process_time()
    cache_file = Path(rows_folder) / f"{_task_stem(setting, seed)}.csv" if rows_folder is not None else None
    previous = pd.read_csv(cache_file).to_dict("records") if cache_file is not None and cache_file.is_file() else []
    plan = [(model, arm) for model in models if seed in config.seeds_of(model, setting)
            for arm in arms_for(arms, setting, model) if (model, arm.name) not in done]
    rows, ranking = [], pd.DataFrame()
    with limit_threads(config.threads):
        data = draw_setting(pools, setting, config, seed)
        context = SignalContext(pools["train"].X[data["train_idx"]], config, seed)
        needed = {ORACLE_RARE if arm.kind == PLACEBO else arm.signal for _, arm in plan if arm.kind != "baseline"}
        likelihoods = _likelihoods(needed, data, context, config, seed)
        if PLACEBO in {arm.kind for _, arm in plan}:  # the permutation arm_weights applies, for its AUC and AP
            likelihoods[PLACEBO] = np.random.default_rng([seed, 7]).permutation(likelihoods[ORACLE_RARE])
        quality = {name: signal_quality(value, data["train_rare"]) for name, value in likelihoods.items()}
        if likelihoods:
            ranking = signal_ranking(pd.DataFrame(likelihoods), data["train_rare"])
            ranking.insert(0, "seed", seed)
            ranking.insert(0, "setting", setting)
        signal_cpu = time.process_time() - cpu_started
        counts = np.bincount(data["train_y"], minlength=10).clip(min=1)
        prior_offset = config.logit_adjustment_tau * np.log(counts / counts.sum())
        inputs = {}
        for model, arm in plan:
            if model not in inputs:
                inputs[model] = (model_inputs(model, pools["train"], data["train_idx"]),
                                 model_inputs(model, pools["test"], data["test_idx"]))
            X_train, X_test = inputs[model]
            arm_started, arm_cpu = time.perf_counter(), time.process_time()
            weights = arm_weights(arm, likelihoods, data["train_y"], config, seed)
            offset = prior_offset if arm.name == "logit-adjusted" else None
            net, epochs, hit_cap = train_model(model, X_train, data["train_y"], weights, config, seed, offset)
            with torch.inference_mode():
                predicted = net(X_test).argmax(1).numpy()
            source = PLACEBO if arm.kind == PLACEBO else arm.signal
            rows.append({"setting": setting, "model": model, "arm": arm.name, "seed": seed, "kind": arm.kind,
                         "signal": source or "", "weight": arm.weight or "",
                         **_metrics(predicted, data["test_y"], data["test_rare"]),
                         "weight_ratio": realised_ratio(weights, data["train_rare"]),
                         "max_over_min": float(weights.max() / weights.min()),
                         "signal_auc": quality[source]["signal_auc"] if source else np.nan,
                         "signal_ap": quality[source]["signal_ap"] if source else np.nan,
                         "epochs": epochs, "hit_cap": bool(hit_cap), "n_train": len(data["train_y"]),
                         "n_rare_train": int(data["train_rare"].sum()),
                         "seconds": round(time.perf_counter() - arm_started, 2),
                         "cpu_seconds": round(time.process_time() - arm_cpu, 2)})
            if cache_file is not None:
                write_text_atomic(cache_file, pd.DataFrame(previous + rows).to_csv(index=False))
    info = {"setting": setting, "seed": seed, "n_train": len(data["train_y"]), "n_test": len(data["test_y"]),
            "n_rare_train": int(data["train_rare"].sum()), "signals": " ".join(sorted(likelihoods)),
            "signal_cpu_seconds": round(signal_cpu, 2),
            "seconds": round(time.perf_counter() - started, 1),
            "cpu_seconds": round(time.process_time() - cpu_started, 1),  # load-independent: the idle-time estimate
            "class_order": data.get("class_order", ""), "condition": data.get("condition", "")}
    if "coords" in context.__dict__:
        labels = context.clustering.labels
        info.update(n_clusters=int(labels.max() + 1), noise_fraction=float((labels < 0).mean()))
    if rows_folder is not None:
        stem = Path(rows_folder) / _task_stem(setting, seed)
        if len(ranking):
            old = Path(f"{stem}_ranking.csv")
            if old.is_file():  # a resumed task: keep the signals computed before, replace the recomputed ones
                kept = pd.read_csv(old)
                ranking = pd.concat([kept[~kept.signal.isin(ranking.signal)], ranking], ignore_index=True)
            write_text_atomic(f"{stem}_ranking.csv", ranking.to_csv(index=False))
        write_text_atomic(f"{stem}_info.json", json.dumps(info, default=float))
    return {"rows": rows, "ranking": ranking, "info": info}


def read_row_cache(rows_folder: str | Path) -> dict:
    """Every cached row, signal ranking and task info under ``rows_folder`` (empty frames if none)."""
    folder = Path(rows_folder)
    rows = [pd.read_csv(p) for p in sorted(folder.glob("*__*.csv")) if not p.stem.endswith("_ranking")]
    ranking = [pd.read_csv(p) for p in sorted(folder.glob("*__*_ranking.csv"))]
    info = [json.loads(p.read_text()) for p in sorted(folder.glob("*__*_info.json"))]
    return {"runs": pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(),
            "ranking": pd.concat(ranking, ignore_index=True) if ranking else pd.DataFrame(),
            "info": pd.DataFrame(info)}


_WORKER_POOLS: dict = {}


def _set_worker_pools(pools: dict) -> None:
    # Runs once per spawned worker: the pools are sent once, not with every task.
    _WORKER_POOLS.update(pools)


def _task_in_process(args):
    # Threads are limited inside run_task.
    return run_task(_WORKER_POOLS, *args)


def _sorted_runs(runs: pd.DataFrame, config: ExperimentConfig, arms: Sequence[Arm]) -> pd.DataFrame:
    if not len(runs):
        return runs
    settings = {s: i for i, s in enumerate(config.settings)}
    arm_rank = {arm.name: i for i, arm in enumerate(arms)}
    runs = runs.assign(_s=runs.setting.map(lambda s: settings.get(s, len(settings))),
                       _m=runs.model.map({m: i for i, m in enumerate(MODELS)}),
                       _a=runs.arm.map(lambda a: arm_rank.get(a, len(arm_rank))))
    runs = runs.sort_values(["_s", "seed", "_m", "_a"], kind="stable").drop(columns=["_s", "_m", "_a"])
    return runs.reset_index(drop=True)


def run_experiment(config: ExperimentConfig | None = None, settings: Sequence[str] | None = None,
                   arms: Sequence[Arm | str] | None = None, models: Sequence[str] = MODELS, cache_dir=None,
                   progress: bool = False, n_jobs: int = 1, runs_path: str | Path | None = None,
                   resume: bool = False, log: Callable[[str], None] | None = None) -> dict:
    """Run every (setting, seed) task of the design. Returns ``runs`` (one row per setting x model x arm x seed),
    ``ranking`` (signal AUC and AP per setting and seed), ``info`` (per task) and ``seconds``.

    ``cache_dir`` is the embedding cache; None uses the workbook's own (``deqlib.paths.interim_dir() /
    "embeddings"``). ``n_jobs`` runs tasks in that many spawned processes (each with ``config.threads``
    threads). With ``runs_path``, every (cell, seed) row is cached in ``ROWS_FOLDER`` beside it as soon as
    it is trained, and the runs file is rewritten after every task; with ``resume=True`` the cached rows are
    kept and only the missing (cell, seed) rows are trained. Without ``resume`` the row cache is cleared first.
    """
    from deqlib._atomic import write_text_atomic

    config = config or ExperimentConfig()
    settings = tuple(settings or config.settings)
    all_arms = design(config)
    by_name = {arm.name: arm for arm in all_arms}
    arm_list = [a if isinstance(a, Arm) else by_name[a] for a in (arms or all_arms)]
    if cache_dir is None:
        cache_dir = paths.interim_dir() / "embeddings"
    started = time.perf_counter()
    rows_folder = Path(runs_path).parent / ROWS_FOLDER if runs_path is not None else None
    if rows_folder is not None:
        if not resume and rows_folder.exists():
            shutil.rmtree(rows_folder)
        rows_folder.mkdir(parents=True, exist_ok=True)
    cached = read_row_cache(rows_folder) if rows_folder is not None else read_row_cache(Path("/nonexistent"))
    wanted = {(s, model, arm.name, seed) for s in settings for model in models for seed in config.seeds_of(model, s)
              for arm in arms_for(arm_list, s, model)}
    done_rows = [r for r in cached["runs"].to_dict("records")
                 if (r["setting"], r["model"], r["arm"], int(r["seed"])) in wanted]
    done = {(r["setting"], r["model"], r["arm"], int(r["seed"])) for r in done_rows}
    missing = wanted - done
    seeds = sorted({key[3] for key in missing})
    # seed-major order: a run cut short has every setting for the seeds it finished
    tasks = [(s, seed) for seed in seeds for s in settings if any(k[0] == s and k[3] == seed for k in missing)]
    pools = build_pools(config, cache_dir=cache_dir, progress=progress) if tasks else None
    say = log or (lambda message: None)
    ranking, info = [cached["ranking"]], [cached["info"]]

    def record(result):
        done_rows.extend(result["rows"])
        ranking.append(result["ranking"])
        info.append(pd.DataFrame([result["info"]]))
        say(f"{result['info']['setting']} seed {result['info']['seed']} done: {len(result['rows'])} rows "
            f"({len(done_rows)} of {len(wanted)}, {time.perf_counter() - started:.0f} s)")
        if runs_path is not None:
            write_text_atomic(runs_path, _sorted_runs(pd.DataFrame(done_rows), config, all_arms).to_csv(index=False))

    arguments = [(s, seed, config, arm_list, list(models),
                  frozenset((k[1], k[2]) for k in done if k[0] == s and k[3] == seed), rows_folder)
                 for s, seed in tasks]
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
    ranking = pd.concat([r for r in ranking if len(r)], ignore_index=True) if any(len(r) for r in ranking) \
        else pd.DataFrame()
    if len(ranking):
        ranking = ranking.drop_duplicates(["setting", "seed", "signal"], keep="last").reset_index(drop=True)
    info = pd.concat([i for i in info if len(i)], ignore_index=True) if any(len(i) for i in info) else pd.DataFrame()
    if len(info):
        info = info.drop_duplicates(["setting", "seed"], keep="last").reset_index(drop=True)
    return {"runs": _sorted_runs(pd.DataFrame(done_rows), config, all_arms), "ranking": ranking, "info": info,
            "seconds": time.perf_counter() - started}


def count_runs(config: ExperimentConfig, models: Sequence[str] = MODELS) -> pd.DataFrame:
    """How many trainings and (setting, seed) tasks the design of ``config`` has, per setting and model."""
    arms = design(config)
    rows = [{"setting": s, "model": m, "arms": len(arms_for(arms, s, m)), "seeds": len(config.seeds_of(m, s)),
             "runs": len(arms_for(arms, s, m)) * len(config.seeds_of(m, s))} for s in config.settings for m in models]
    return pd.DataFrame(rows)


def estimate_cpu_seconds(config: ExperimentConfig, cpu_per_run: dict, cpu_signals_per_task: float) -> dict:
    """The full run's CPU seconds from measured costs: ``cpu_per_run`` (model -> CPU seconds of one training)
    times the design's runs, plus ``cpu_signals_per_task`` for every (setting, seed) task. Divide by the
    number of idle cores for the wall time (CPU seconds do not depend on the load)."""
    counts = count_runs(config)
    training = float(sum(cpu_per_run[m] * n for m, n in zip(counts.model, counts.runs)))
    tasks = sum(len(set(config.seeds_of("frozen_head", s)) | set(config.seeds_of("small_cnn", s)))
                for s in config.settings)
    return {"runs": int(counts.runs.sum()), "tasks": tasks, "training_cpu_seconds": training,
            "signal_cpu_seconds": tasks * cpu_signals_per_task,
            "cpu_seconds": training + tasks * cpu_signals_per_task}
