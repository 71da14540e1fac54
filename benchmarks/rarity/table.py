"""The rarity benchmark's Markdown table: machine, versions, ceiling, AUC per task x signal, summary per signal."""

from __future__ import annotations

import numpy as np
import pandas as pd

from deqlib.recovery import benchmark_summary



def _fmt(value, digits: int = 2) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"


def task_order(tasks) -> list[str]:
    return sorted(set(tasks), key=lambda t: (not t.startswith("rare-classes"), t.split("@")[0],
                                             float(t.split("@")[1].rstrip("%"))))


def markdown_table(cells: pd.DataFrame, probes: pd.DataFrame, run: dict) -> str:
    host = run.get("host", {})
    lines = ["# Rarity benchmark", "",
             f"- date: {host.get('date')}; machine: {host.get('cpu')}, {host.get('cores')} cores, "
             f"load average at the start {host.get('load_average')} (shared machine: times are noisy; the cost is a "
             "ratio to one analysis measured in the same run)",
             f"- versions: python {host.get('python')}, numpy {host.get('numpy')}, scikit-learn "
             f"{host.get('scikit-learn')}, torch {host.get('torch')}, openTSNE {host.get('openTSNE')}, hdbscan "
             f"{host.get('hdbscan')}, deqlib commit {host.get('git_commit')}",
             f"- pool N = {run.get('n', cells['n'].iloc[0] if len(cells) else '?')}; " + (
                 f"seeds {run.get('seeds')}; analysis and consensus tiers on seeds {run.get('heavy_seeds')} of "
                 f"{run.get('heavy_encoders')} (tasks: {run.get('heavy_tasks')}); K = {run.get('K')} runs per consensus bank"
                 if "seeds" in run else "tabulated from the cached cells of several runs: the seeds of each signal "
                 "are in its cells (`(n)` below), the runs in benchmarks/rarity/README.md"),
             "- each cell: mean over the seeds cached for it; `(n)` is the number of seeds when fewer than the most",
             ""]
    for encoder, part in cells.groupby("encoder", sort=False):
        encoder_probes = probes[probes.encoder == encoder] if len(probes) else probes
        tasks = task_order(part["task"])
        lines += [f"## {encoder}", "", "### Summary per signal", ""]
        summary = benchmark_summary(part, encoder_probes)
        header = list(summary.columns)
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for _, row in summary.iterrows():
            lines.append("| " + " | ".join(_fmt(v) if isinstance(v, float) else str(v) for v in row.values) + " |")
        lines += ["", "### ROC AUC of 1 - likelihood per task (0.5 chance, below 0.5 inverted)", ""]
        lines += ["| signal | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
        ceiling = encoder_probes.groupby("task")["probe_auc"].agg(["mean", "count"]) if len(encoder_probes) else None
        if ceiling is not None:
            lines.append("| **ceiling: linear probe (5-fold)** | " + " | ".join(
                _fmt(ceiling["mean"].get(t, np.nan)) for t in tasks) + " |")
        most = part.groupby(["variant", "task"]).size().max()
        for variant, rows in part.groupby("variant", sort=False):
            stats = rows.groupby("task")["roc_auc"].agg(["mean", "count"])
            cells_text = []
            for t in tasks:
                if t not in stats.index:
                    cells_text.append("")
                    continue
                count = int(stats.loc[t, "count"])
                cells_text.append(_fmt(stats.loc[t, "mean"]) + (f" ({count})" if count < most else ""))
            lines.append(f"| {variant} | " + " | ".join(cells_text) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"
