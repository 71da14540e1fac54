"""Parameter sweeps: execute a notebook over a grid with papermill and gather one row per run.

Every analysis notebook ends with :func:`write_run_summary`, which writes
``<output_dir>/<dataset>_run_summary.json`` (clusters, noise fraction, likelihood and weight
spread, alignment with labels). :func:`run_sweep` executes the notebook once per grid point,
each into its own folder, reads the summaries back and returns a table. Runs already done with
the same parameters are not executed again; failed runs are rows with ``status='failed'``.

A grid axis may set one key of a dict parameter with a dotted name: ``clusterer_params.eps``
sets ``eps`` inside the notebook's ``clusterer_params`` (the other keys of that dict come from
the base parameters, else it starts empty). Tables and run folders use the short name (``eps``).

Weight sweeps (eta x gamma) need no re-run: :func:`weight_sweep` recomputes eq. 4 from the
likelihoods of one run. The figure of a sweep table is :func:`deqlib.plots.sweep.plot_sweep`.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from deqlib import __version__, paths
from deqlib._atomic import write_text_atomic
from deqlib.alignment import alignment_scores
from deqlib.weights import gfl_weight

__all__ = ["summarize_run", "write_run_summary", "read_run_summary", "parameter_grid", "column_names",
           "notebook_parameters", "run_name", "run_sweep", "weight_sweep"]

SUMMARY_SUFFIX = "_run_summary.json"
_QUANTILES = {"min": 0.0, "q10": 0.1, "median": 0.5, "q90": 0.9, "max": 1.0}


def summarize_run(samples: pd.DataFrame, label_column: str | None = None,
                  faithfulness: Mapping[str, Any] | None = None, stability: Mapping[str, Any] | None = None) -> dict:
    """Numbers that describe one analysis run (``samples``: AnalysisResult.samples).

    ``*_spread`` is the q90 - q10 range. With ``label_column``, NMI/ARI/purity of the clusters
    against it (noise counted as one group, as :func:`deqlib.alignment.alignment_scores` does).
    With ``faithfulness`` (``AnalysisResult.params['faithfulness']``, from ``analyze(...,
    faithfulness=True)``): ``trustworthiness``, ``knn_recall`` and ``pca_ari``, so a sweep can
    be ranked by how faithful its maps are, not only by cluster count. With ``stability``
    (``StabilityResult.summary``): ``stability_K``, ``pair_spearman_mean``, ``pair_ari_mean`` and
    ``weight_moved_share`` (how stable its likelihoods are).
    """
    labels = samples["cluster_id"].to_numpy()
    summary: dict[str, Any] = {
        "n_samples": int(len(samples)),
        "n_clusters": int(np.unique(labels[labels >= 0]).size),
        "noise_fraction": float((labels < 0).mean()),
        "largest_cluster_share": float(samples["cluster_size"].max() / len(samples)),
    }
    for column in ("likelihood", "weight"):
        if column in samples:
            values = samples[column].to_numpy(dtype=float)
            for name, q in _QUANTILES.items():
                summary[f"{column}_{name}"] = float(np.quantile(values, q))
            summary[f"{column}_spread"] = summary[f"{column}_q90"] - summary[f"{column}_q10"]
            summary[f"{column}_std"] = float(values.std())
    # Likelihoods are per cluster, so their distribution is a short value -> count table;
    # weight sweeps recompute eq. 4 from it without the samples.
    counts = samples["likelihood"].round(12).value_counts().sort_index()
    summary["likelihood_counts"] = {repr(float(v)): int(c) for v, c in counts.items()}
    for key in ("trustworthiness", "knn_recall", "pca_ari"):
        if faithfulness and key in faithfulness:
            summary[key] = float(faithfulness[key])
    if stability:
        summary["stability_K"] = int(stability["K"])
        for key in ("pair_spearman_mean", "pair_ari_mean", "weight_moved_share"):
            if key in stability:
                summary[key] = float(stability[key])
    if label_column:
        scores = alignment_scores(labels, samples[label_column].to_numpy())
        summary.update({"label_column": label_column, "nmi": scores["nmi"], "ari": scores["ari"],
                        "purity": scores["purity"]})
    return summary


def write_run_summary(samples: pd.DataFrame, parameters: Mapping[str, Any], path: str | Path,
                      label_column: str | None = None, faithfulness: Mapping[str, Any] | None = None,
                      stability: Mapping[str, Any] | None = None) -> Path:
    """Write ``{'parameters', 'summary', 'deqlib_version'}`` as JSON, atomically."""
    record = {"parameters": dict(parameters), "summary": summarize_run(samples, label_column, faithfulness, stability),
              "deqlib_version": __version__}
    return write_text_atomic(path, json.dumps(record, indent=1, sort_keys=True, default=str))


def read_run_summary(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def parameter_grid(**axes: Sequence) -> list[dict]:
    """Cartesian product of the axes, in the given order (last axis varies fastest)."""
    for name, values in axes.items():
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__") or len(values) == 0:
            raise ValueError(f"axis {name!r} must be a non-empty list of values, got {values!r}")
    names = list(axes)
    return [dict(zip(names, combo)) for combo in itertools.product(*(axes[n] for n in names))]


def column_names(names: Sequence[str]) -> dict[str, str]:
    """Grid axis -> its name in tables and folder names: the part after the last dot
    (``clusterer_params.eps`` -> ``eps``), or the whole name where two axes would share it."""
    short = {name: name.rsplit(".", 1)[-1] for name in names}
    taken = list(short.values())
    return {name: s if taken.count(s) == 1 else name for name, s in short.items()}


def notebook_parameters(base_parameters: Mapping[str, Any] | None, point: Mapping[str, Any]) -> dict:
    """The parameters a grid point runs with: ``base_parameters`` updated by ``point``, where a
    dotted name ``outer.key`` sets ``key`` inside the dict parameter ``outer`` (a copy)."""
    parameters = dict(base_parameters or {})
    for name, value in point.items():
        if "." not in name:
            parameters[name] = value
            continue
        outer, key = name.split(".", 1)
        nested = parameters.get(outer) or {}
        if not isinstance(nested, Mapping):
            raise ValueError(f"grid axis {name!r} sets a key of parameter {outer!r}, but its base value is "
                             f"{nested!r}, not a dict")
        parameters[outer] = {**nested, key: value}
    return parameters


def run_name(point: Mapping[str, Any]) -> str:
    """A readable, file-safe folder name for a grid point, e.g. ``eps-0.5_min_samples-10``."""
    columns = column_names(list(point))
    text = "_".join(f"{columns[k]}-{v}" for k, v in point.items()) or "base"
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)


def run_sweep(notebook: str, grid: Sequence[Mapping[str, Any]], base_parameters: Mapping[str, Any] | None = None,
              output_root: str | Path | None = None, kernel_name: str | None = None, force: bool = False,
              progress: bool = True) -> pd.DataFrame:
    """Execute ``notebook`` once per grid point and gather the runs' summaries into a table.

    Each run writes into ``output_root/<run name>/`` (figures, summary, executed notebook). The
    table (``sweep_results.csv``) is written to ``output_root`` too. A run whose summary exists
    with the same parameters is reused unless ``force``. A dotted axis name sets one key of a
    dict parameter (:func:`notebook_parameters`); the table names it by :func:`column_names`.
    A parameter the notebook does not declare (in ``base_parameters`` or an axis) is refused before
    anything runs (:class:`deqlib.notebooks.UnknownNotebookParameterError`, listing the valid ones).
    """
    from deqlib.notebooks import check_notebook_parameters, execute_notebook

    output_root = Path(output_root) if output_root else paths.build_dir() / "sweeps" / Path(notebook).stem
    # every point's names checked before the first run: an unknown one is refused, not a table of failed rows
    names = {"output_dir"}.union(*(notebook_parameters(base_parameters, point) for point in grid))
    check_notebook_parameters(notebook, names)
    rows = []
    for i, point in enumerate(grid):
        parameters = notebook_parameters(base_parameters, point)
        folder = output_root / run_name(point)
        columns = column_names(list(point))
        row: dict[str, Any] = {**{columns[k]: v for k, v in point.items()}, "run": folder.name}
        existing = sorted(folder.glob(f"*{SUMMARY_SUFFIX}"))
        if existing and not force and _same_parameters(read_run_summary(existing[0])["parameters"], parameters):
            row.update(status="cached", **read_run_summary(existing[0])["summary"])
            rows.append(row)
            continue
        started = time.perf_counter()
        if progress:
            print(f"[{i + 1}/{len(grid)}] {notebook} {point}", flush=True)
        try:
            executed = execute_notebook(notebook, parameters={**parameters, "output_dir": str(folder)},
                                        output_dir=folder, kernel_name=kernel_name)
            summaries = sorted(folder.glob(f"*{SUMMARY_SUFFIX}"))
            if not summaries:
                raise RuntimeError(f"the notebook wrote no *{SUMMARY_SUFFIX} into {folder}")
            row.update(status="ok", executed=str(executed), **read_run_summary(summaries[0])["summary"])
        except Exception as exc:  # a failed run is a row, never a silent gap in the table
            row.update(status="failed", error=f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
        row["seconds"] = round(time.perf_counter() - started, 1)
        rows.append(row)
    table = pd.DataFrame(rows)
    write_text_atomic(output_root / "sweep_results.csv", table.to_csv(index=False))
    return table


def _same_parameters(recorded: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    # A notebook may record a dict parameter's keys one by one (00 records clusterer_params' eps,
    # min_samples, min_cluster_size in its captions): compare those keys then.
    flat = dict(wanted)
    for name, value in wanted.items():
        if name not in recorded and isinstance(value, Mapping):
            flat.update({key: inner for key, inner in value.items() if key not in flat})
    return all(json.dumps(recorded.get(k), default=str) == json.dumps(v, default=str)
               for k, v in flat.items() if k in recorded)


def weight_sweep(likelihood_counts: Mapping[str, int] | pd.Series, etas: Sequence[float],
                 gammas: Sequence[float]) -> pd.DataFrame:
    """Spread of the eq. 4 weights over an eta x gamma grid, from one run's likelihood distribution.

    ``likelihood_counts``: the ``likelihood_counts`` of a run summary (likelihood -> samples), or a
    Series of per-sample likelihoods.
    """
    if isinstance(likelihood_counts, pd.Series):
        likelihood_counts = likelihood_counts.value_counts().to_dict()
    values = np.array([float(v) for v in likelihood_counts])
    counts = np.array(list(likelihood_counts.values()), dtype=float)
    rows = []
    for eta, gamma in itertools.product(etas, gammas):
        weights = gfl_weight(values, eta, gamma)
        mean = float((weights * counts).sum() / counts.sum())
        # eta = 0 gives the largest cluster weight 0: the ratio is then infinite, on purpose
        ratio = float(weights.max() / weights.min()) if weights.min() > 0 else float("inf")
        rows.append({"eta": eta, "gamma": gamma, "weight_min": weights.min(), "weight_mean": mean,
                     "weight_max": weights.max(), "weight_ratio_max_min": ratio,
                     "weight_std": float(np.sqrt((counts * (weights - mean) ** 2).sum() / counts.sum()))})
    return pd.DataFrame(rows)
