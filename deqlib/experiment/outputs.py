"""Outputs, shared by notebook 07 and ``deq train-demo``: the tables and the figure (stable names), and
:func:`reproduce`, what both run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import pandas as pd

from deqlib import paths
from deqlib.experiment.config import ExperimentConfig
from deqlib.experiment.runs import run_experiment
from deqlib.experiment.statistics import auc_sweep, cost_table, summarize, summarize_ranking
from deqlib.plots.training import plot_auc_sweep, plot_results

__all__ = ["RUNS_FILE", "write_outputs", "read_outputs", "output_folder", "reproduce", "markdown_table"]


RUNS_FILE = "training_gfl_runs.csv"


def write_outputs(runs: pd.DataFrame, ranking: pd.DataFrame, folder: str | Path | None = None,
                  info: pd.DataFrame | None = None) -> dict[str, Path]:
    """Write the per-seed rows, the summary, the signal ranking, the AUC sweep, the cost table and the figures.

    ``training_gfl_runs.csv`` (one row per setting x model x arm x seed), ``training_gfl_results.csv``
    (:func:`summarize`: three endpoints, Holm-corrected), ``training_gfl_signal_ranking.csv``
    (:func:`summarize_ranking`), ``training_gfl_auc_sweep.csv`` (:func:`auc_sweep`),
    ``training_gfl_cost.csv`` (:func:`cost_table`, CPU seconds per cell), ``training_gfl_results.png`` and
    ``training_gfl_auc_sweep.png``. Everything is computed from ``runs``, ``ranking`` (and ``info`` for
    the signals' cost), so re-writing from the saved CSVs gives the same files.
    """
    from deqlib._atomic import write_text_atomic

    folder = Path(folder) if folder is not None else paths.figures_dir()
    written = {"runs": folder / RUNS_FILE, "results": folder / "training_gfl_results.csv",
               "ranking": folder / "training_gfl_signal_ranking.csv", "sweep": folder / "training_gfl_auc_sweep.csv",
               "cost": folder / "training_gfl_cost.csv", "figure": folder / "training_gfl_results.png"}
    write_text_atomic(written["runs"], runs.to_csv(index=False))
    write_text_atomic(folder / (Path(RUNS_FILE).stem + "_ranking.csv"), ranking.to_csv(index=False))
    if info is not None:
        written["info"] = folder / "training_gfl_runs_info.csv"
        write_text_atomic(written["info"], info.to_csv(index=False))
    summary = summarize(runs)
    write_text_atomic(written["results"], summary.to_csv(index=False, float_format="%.5f"))
    write_text_atomic(written["ranking"], summarize_ranking(ranking).to_csv(index=False, float_format="%.5f")
                      if len(ranking) else "")
    sweep = auc_sweep(summary)
    write_text_atomic(written["sweep"], sweep.to_csv(index=False, float_format="%.5f"))
    write_text_atomic(written["cost"], cost_table(runs, info).to_csv(index=False, float_format="%.3f"))
    seeds = runs.groupby(["setting", "model", "arm"]).seed.nunique()
    plot_results(summary[~summary.arm.str.startswith("sweep AUC ")], written["figure"],
                 {"seeds": f"{seeds.min()}-{seeds.max()}" if seeds.min() != seeds.max() else int(seeds.min()),
                  "runs": len(runs)})
    if len(sweep):
        written["sweep_figure"] = folder / "training_gfl_auc_sweep.png"
        plot_auc_sweep(sweep, written["sweep_figure"], {"runs": len(runs)})
    return written


def read_outputs(folder: str | Path | None = None) -> dict | None:
    """The saved per-seed rows and signal AUCs (``runs``, ``ranking``), or None if no run was saved."""
    folder = Path(folder) if folder is not None else paths.figures_dir()
    runs_path = folder / RUNS_FILE
    ranking_path = runs_path.with_name(runs_path.stem + "_ranking.csv")
    info_path = runs_path.with_name(runs_path.stem + "_info.csv")
    if not runs_path.is_file() or not ranking_path.is_file():
        return None
    return {"runs": pd.read_csv(runs_path), "ranking": pd.read_csv(ranking_path),
            "info": pd.read_csv(info_path) if info_path.is_file() else None}


def output_folder(quick: bool = False) -> Path:
    """Where notebook 07 and ``deq train-demo`` write by default.

    The full run writes the workbook's figures folder (:func:`deqlib.paths.figures_dir`); a quick
    run (:func:`experiment_config` with ``quick=True``) writes ``build/train-demo-quick/``, so
    checking the mechanics never overwrites the committed results.
    """
    return paths.build_dir() / "train-demo-quick" if quick else paths.figures_dir()


def reproduce(config: ExperimentConfig | None = None, folder: str | Path | None = None, rerun: bool = False,
              n_jobs: int = 1, resume: bool = False, progress: bool = False,
              log: Callable[[str], None] | None = None) -> dict:
    """What notebook 07 and ``deq train-demo`` both do: get the per-seed rows, then :func:`write_outputs`.

    Without ``rerun``, the saved rows of the last full run are used (from ``folder``, else the
    workbook's committed ``figures/``), so the figure and tables are rewritten in seconds; with
    ``rerun`` (or when nothing is saved) the experiment runs with ``config`` and its rows are written
    to ``folder`` as each task finishes. Returns ``runs``, ``ranking``, ``summary``, ``written``,
    ``source`` (``'saved'`` or ``'run'``) and ``seconds``.
    """
    folder = Path(folder) if folder is not None else paths.figures_dir()
    started = time.perf_counter()
    saved = None if rerun else (read_outputs(folder) or read_outputs(paths.project_root() / "figures"))
    if saved is not None:
        runs, ranking, info, source = saved["runs"], saved["ranking"], saved["info"], "saved"
    else:
        out = run_experiment(config, n_jobs=n_jobs, runs_path=folder / RUNS_FILE, resume=resume,
                             progress=progress, log=log)
        runs, ranking, info, source = out["runs"], out["ranking"], out["info"], "run"
    written = write_outputs(runs, ranking, folder, info=info)
    return {"runs": runs, "ranking": ranking, "info": info, "summary": pd.read_csv(written["results"]),
            "written": written, "source": source, "seconds": time.perf_counter() - started}


def markdown_table(summary: pd.DataFrame, metric: str = "accuracy_rare") -> str:
    """The README table: one row per arm, one column per setting x model; each cell is the paired difference
    to CE in points with its Holm interval, a ``*`` where Holm rejects, and the realised weight ratio
    (CE's row: its mean accuracy)."""
    part = summary[summary.metric == metric]
    columns = list(dict.fromkeys(zip(part.setting, part.model)))
    names = {"long_tail": "rare classes", "frozen_head": "frozen head", "small_cnn": "small CNN"}
    lines = ["| arm | " + " | ".join(f"{names.get(s, s)}, {names.get(m, m)}" for s, m in columns) + " |",
             "| --- |" + " --- |" * len(columns)]
    for arm in dict.fromkeys(part.arm):
        cells = []
        for setting, model in columns:
            row = part[(part.setting == setting) & (part.model == model) & (part.arm == arm)]
            if not len(row):
                cells.append("")
                continue
            row = row.iloc[0]
            if arm == "CE":
                cells.append(f"{100 * row['mean']:.1f}% (n={row.n_seeds})")
            else:
                star = "*" if bool(row.get("holm_significant", False)) else ""
                cells.append(f"{100 * row.diff_vs_ce:+.1f}{star} [{100 * row.holm_low:+.1f}, {100 * row.holm_high:+.1f}]"
                             f" x{row.weight_ratio:.2f}")
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
