"""How well the rarity signals recover a planted rare group: the metrics and a registry-driven evaluation.

Shared by the rarity benchmark (``benchmarks/rarity``) and ``deq rarity-check``. Nothing here
names a signal: :func:`signal_variants` reads :data:`deqlib.likelihood.RARITY_SIGNALS` (and, for
eq. 3, every registered reducer x clusterer), so a signal registered later is evaluated too.

Tiers, by what a signal's ``needs`` say:

* ``cheap``: needs nothing but ``embeddings`` (k-NN density, ...): seconds at N = 5,000.
* ``analysis``: needs ``labels``, ``coords`` or ``outlier_scores``: one analysis (a 3-D t-SNE and a
  clustering) per fit. The ``cluster`` signal (eq. 3) is one variant per reducer x clusterer; any
  other such signal runs on the default analysis, or on HDBSCAN where it needs ``outlier_scores``.
* ``consensus``: needs ``runs``: K analyses (:func:`deqlib.stability.stability_runs`) per fit.

Each variant is fitted twice (:func:`evaluate_variant`): with seeds A and B (disjoint seed sets for
consensus) and, for B, the rows in a seeded random order. Their Spearman is the stability figure;
for a deterministic signal it measures the effect of the row order alone.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from deqlib.likelihood import RARITY_SIGNALS, RarityContext, get_rarity_signal
from deqlib.weights import gfl_weight

__all__ = ["EQ4_SETTINGS", "precision_at_prevalence", "recovery_metrics", "spearman", "probe_ceiling",
           "SignalVariant", "signal_variants", "Evaluator", "evaluate_variant", "CEILING_FOR_TARGET",
           "STABILITY_TOLERANCE", "benchmark_summary", "benchmark_row", "signal_stability"]

#: (eta, gamma) pairs of eq. 4 at which the weight ratio rare vs rest is reported
EQ4_SETTINGS = ((1.0, 5.0), (0.3, 5.0))
CHEAP_NEEDS = {"embeddings"}
ANALYSIS_NEEDS = {"embeddings", "coords", "labels", "outlier_scores"}


# ---------------------------------------------------------------------------------------- metrics
def _check_pair(rare, values, what: str) -> tuple[np.ndarray, np.ndarray]:
    rare = np.asarray(rare)
    values = np.asarray(values, dtype=np.float64)
    if rare.dtype != bool:
        raise ValueError(f"rare must be a boolean array (True for the planted samples), got dtype {rare.dtype}")
    if rare.ndim != 1 or values.shape != rare.shape:
        raise ValueError(f"rare and {what} must be 1-D arrays of one length, got {rare.shape} and {values.shape}")
    if not rare.any() or rare.all():
        raise ValueError("rare must flag some samples and not all of them")
    if not np.isfinite(values).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    return rare, values


def precision_at_prevalence(rare, score) -> float:
    """Share of rare samples among the ``k = rare.sum()`` highest ``score`` values, ties at the
    cut counted at their expected share (as if broken at random), so a constant score gets the prevalence."""
    rare, score = _check_pair(rare, score, "score")
    k = int(rare.sum())
    cut = np.sort(score)[::-1][k - 1]
    above, at = score > cut, score == cut
    expected = rare[above].sum() + (k - above.sum()) * rare[at].mean()
    return float(expected / k)


def spearman(a, b) -> float:
    """Spearman rank correlation (average ranks for ties); 1.0 when both are constant and equal, NaN when one is."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 1.0 if np.array_equal(a, b) else float("nan")
    return float(spearmanr(a, b).statistic)


def recovery_metrics(rare, likelihood, eq4=EQ4_SETTINGS) -> dict:
    """How well ``1 - likelihood`` singles out the ``rare`` samples.

    Returns
    -------
    dict
        ``prevalence``, ``roc_auc`` (0.5 chance, below 0.5 inverted), ``average_precision``,
        ``ap_over_prevalence``, ``precision_at_prevalence`` (:func:`precision_at_prevalence`),
        ``weight_ratio_<eta>_<gamma>`` (mean eq. 4 weight of the rare over that of the rest) for
        each ``eq4`` pair, and ``n_levels`` (distinct likelihood values).
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    rare, likelihood = _check_pair(rare, likelihood, "likelihood")
    score = 1.0 - likelihood
    prevalence = float(rare.mean())
    metrics = {"prevalence": prevalence, "roc_auc": float(roc_auc_score(rare, score)),
               "average_precision": float(average_precision_score(rare, score))}
    metrics["ap_over_prevalence"] = metrics["average_precision"] / prevalence
    metrics["precision_at_prevalence"] = precision_at_prevalence(rare, score)
    clipped = np.clip(likelihood, 0.0, 1.0)
    for eta, gamma in eq4:
        weight = gfl_weight(clipped, eta=eta, gamma=gamma)
        metrics[f"weight_ratio_{eta:g}_{gamma:g}"] = float(weight[rare].mean() / weight[~rare].mean())
    metrics["n_levels"] = int(np.unique(likelihood).size)
    return metrics


def probe_ceiling(X, rare, folds: int = 5, seed: int = 0) -> float:
    """The embedding's supervised ceiling: ROC AUC of a cross-validated logistic-regression probe.

    Standardised features, ``LogisticRegression(C=0.1)``, out-of-fold decision values from a
    stratified ``folds``-fold split (fewer folds when there are fewer rare samples; NaN with
    fewer than two rare or two common samples).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = np.asarray(X, dtype=np.float64)
    rare = np.asarray(rare, dtype=bool)
    n_splits = int(min(folds, rare.sum(), (~rare).sum()))
    if n_splits < 2:
        return float("nan")  # one rare sample cannot be cross-validated: no ceiling, said as NaN
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=500))
    split = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings: the AUC is what is reported
        decision = cross_val_predict(model, X, rare, cv=split, method="decision_function")
    return float(roc_auc_score(rare, decision))


# ---------------------------------------------------------------------------------------- variants
@dataclass(frozen=True)
class SignalVariant:
    """One thing to evaluate: a registered signal, and for eq. 3 the reducer x clusterer it runs on."""

    signal: str
    tier: str
    reducer: str | None = None
    clusterer: str | None = None
    params: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def label(self) -> str:
        if self.reducer is None:
            return self.signal
        return f"{self.signal}[{self.reducer}+{self.clusterer}]"


def _needs(name: str) -> set[str]:
    entry = RARITY_SIGNALS.entry(name)
    return set(entry.extra.get("needs", getattr(entry.factory, "needs", ())))


def signal_variants(signals=None, reducers=None, clusterers=None) -> list[SignalVariant]:
    """Every registered signal (or those named), as variants in tiers (module docstring).

    ``reducers`` and ``clusterers`` default to every available registered one (for eq. 3);
    signals with needs outside the context's attributes are left out.
    """
    from deqlib.cluster import CLUSTERERS
    from deqlib.reduce import REDUCERS

    reducers = list(reducers or REDUCERS.names(available_only=True))
    clusterers = list(clusterers or CLUSTERERS.names(available_only=True))
    variants = []
    for name in signals or RARITY_SIGNALS.names(available_only=True):
        name = RARITY_SIGNALS.resolve(name)
        needs = _needs(name)
        if "runs" in needs:
            variants.append(SignalVariant(name, "consensus"))
        elif needs <= CHEAP_NEEDS:
            variants.append(SignalVariant(name, "cheap"))
        elif needs <= ANALYSIS_NEEDS:
            if name == "cluster":
                variants += [SignalVariant(name, "analysis", r, c) for r in reducers for c in clusterers]
            else:
                variants.append(SignalVariant(name, "analysis", reducers[0],
                                              "hdbscan" if "outlier_scores" in needs else clusterers[0]))
    return variants


# ---------------------------------------------------------------------------------------- fitting
class Evaluator:
    """Fits variants on one pool ``X``, keeping each reduction, each analysis and each set of K runs
    for the variants that share them (keyed by reducer, clusterer, seed and row order).

    Parameters
    ----------
    X : ndarray (N, D)
    K : int, default=5
        Runs per consensus bank.
    n_jobs : int or None, default=1
        Threads of every reducer that takes ``n_jobs``; None keeps each reducer's default.
    """

    def __init__(self, X, K: int = 5, n_jobs: int | None = 1):
        self.X = np.ascontiguousarray(X, dtype=np.float32)
        self.K = K
        self.n_jobs = n_jobs
        self._reductions: dict = {}
        self._analyses: dict = {}
        self._runs: dict = {}

    def _reducer_params(self, reducer: str) -> dict:
        """``n_jobs`` of the reducer, where it has one: one thread by default (results that do not
        depend on the core count, and no OpenMP threads spinning on a shared machine)."""
        from deqlib.reduce import REDUCERS

        factory = REDUCERS.entry(reducer).factory
        try:
            accepts = "n_jobs" in factory().get_params()
        except Exception:  # a reducer that cannot be built without arguments keeps its own threads
            accepts = False
        return {"n_jobs": self.n_jobs} if accepts and self.n_jobs is not None else {}

    def _rows(self, order):
        return self.X if order is None else self.X[order]

    def reduction(self, reducer: str, seed: int, order=None) -> tuple[np.ndarray, float]:
        """``(coords, seconds)`` of one reduction (computed once, shared by every clusterer)."""
        from deqlib.stages import build_stages

        key = (reducer, seed, None if order is None else order.tobytes())
        if key not in self._reductions:
            started = time.perf_counter()
            stages = build_stages(reducer=reducer, reducer_params=self._reducer_params(reducer), seed=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                coords = np.asarray(stages.reducer.fit_transform(self._rows(order)), dtype=np.float64)
            self._reductions[key] = (coords, time.perf_counter() - started)
        return self._reductions[key]

    def analysis(self, reducer: str, clusterer: str, seed: int, order=None) -> tuple[dict, float]:
        """``({coords, labels, outlier_scores}, seconds)`` of one analysis: the reduction (shared) and
        the clustering, as :func:`deqlib.pipeline.analyze` runs them; seconds are both together,
        what the analysis costs on its own."""
        from deqlib.stages import build_stages

        key = (reducer, clusterer, seed, None if order is None else order.tobytes())
        if key not in self._analyses:
            coords, reduce_seconds = self.reduction(reducer, seed, order)
            started = time.perf_counter()
            stages = build_stages(reducer=reducer, clusterer=clusterer, seed=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                clustering = stages.clusterer.fit(coords).result_
            found = {"coords": coords, "labels": np.asarray(clustering.labels),
                     "outlier_scores": clustering.outlier_scores}
            self._analyses[key] = (found, reduce_seconds + time.perf_counter() - started)
        return self._analyses[key]

    def runs(self, seeds: tuple[int, ...], order=None):
        """``(StabilityResult, seconds)`` of K default analyses with ``seeds`` (computed once)."""
        from deqlib.stability import stability_runs
        from deqlib.stages import build_stages

        key = (tuple(seeds), None if order is None else order.tobytes())
        if key not in self._runs:
            started = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                stages = build_stages(reducer_params=self._reducer_params("opentsne"), seed=seeds[0])
                result = stability_runs(self._rows(order), stages=stages, K=len(seeds), seeds=list(seeds))
            self._runs[key] = (result, time.perf_counter() - started)
        return self._runs[key]

    def fit(self, variant: SignalVariant, seed: int, order=None) -> tuple[np.ndarray, dict]:
        """Likelihood in the pool's row order, and ``{seconds, upstream_seconds, fit_seconds}``."""
        signal = get_rarity_signal(variant.signal, **variant.params)
        if "random_state" in signal.get_params():
            signal.set_params(random_state=seed)
        upstream = 0.0
        context = {"embeddings": self._rows(order)}
        if variant.tier == "analysis":
            found, upstream = self.analysis(variant.reducer, variant.clusterer, seed, order)
            context.update(found)
        elif variant.tier == "consensus":
            seeds = tuple(range(seed, seed + self.K))
            result, upstream = self.runs(seeds, order)
            context["runs"] = result
        started = time.perf_counter()
        likelihood = np.asarray(signal.fit(RarityContext(**context)).likelihood_, dtype=np.float64)
        fit_seconds = time.perf_counter() - started
        if order is not None:
            restored = np.empty_like(likelihood)
            restored[order] = likelihood
            likelihood = restored
        return likelihood, {"seconds": upstream + fit_seconds, "upstream_seconds": upstream,
                            "fit_seconds": fit_seconds}


def evaluate_variant(evaluator: Evaluator, variant: SignalVariant, rare, seed: int) -> dict:
    """Fit ``variant`` with seed set A (rows as given) and B (disjoint seeds, rows shuffled);
    the metrics of fit A, the Spearman between A and B, and the seconds of fit A."""
    K = evaluator.K
    seed_a, seed_b = 1000 * seed + 1, 1000 * seed + 1 + max(K, 1) + 100  # disjoint even for K runs each
    order = np.random.default_rng([seed, 7]).permutation(len(evaluator.X))
    likelihood_a, time_a = evaluator.fit(variant, seed_a, None)
    likelihood_b, _ = evaluator.fit(variant, seed_b, order)
    metrics = recovery_metrics(rare, likelihood_a)
    return {"signal": variant.signal, "variant": variant.label, "tier": variant.tier, "reducer": variant.reducer,
            "clusterer": variant.clusterer, "seeds": [seed_a, seed_b], "K": K if variant.tier == "consensus" else 1,
            **metrics, "spearman_ab": spearman(likelihood_a, likelihood_b), **time_a}


# ---------------------------------------------------------------------------------------- the benchmark's rows
#: The rarity benchmark's targets count the tasks whose supervised ceiling (a linear probe) is at least this.
CEILING_FOR_TARGET = 0.9
#: A signal's ranking may move by less than this (1 - Spearman) under rounding noise, threads or row order.
STABILITY_TOLERANCE = 0.05


def benchmark_summary(cells, probes):
    """One row per signal variant of the rarity benchmark, its metrics averaged over tasks and seeds.

    Parameters
    ----------
    cells : DataFrame
        One row per (encoder, task, seed, variant): :func:`evaluate_variant`'s record plus ``task``.
    probes : DataFrame
        ``task`` and ``probe_auc`` (the supervised ceiling) per task and seed.

    Returns
    -------
    DataFrame
        ``signal, tier``, the mean AUC over the tasks whose ceiling is >= :data:`CEILING_FOR_TARGET`
        (and their number), the lowest task's mean AUC, AP over prevalence, precision at the
        prevalence, eq. 4's weight ratios, the A-B Spearman, the median number of levels and cost
        ratio, and the number of cells.
    """
    import pandas as pd

    ceiling = probes.groupby("task")["probe_auc"].mean() if len(probes) else pd.Series(dtype=float)
    visible = set(ceiling[ceiling >= CEILING_FOR_TARGET].index)
    rows = []
    for variant, part in cells.groupby("variant", sort=False):
        per_task = part.groupby("task")["roc_auc"].mean()
        seen = per_task[per_task.index.isin(visible)]
        rows.append({"signal": variant, "tier": part["tier"].iloc[0],
                     "mean AUC (ceiling >= 0.9)": seen.mean() if len(seen) else np.nan,
                     "tasks >= 0.9": len(seen), "min task AUC": per_task.min(),
                     "AP / prevalence": part["ap_over_prevalence"].mean(),
                     "precision at prevalence": part["precision_at_prevalence"].mean(),
                     "W ratio (1,5)": part["weight_ratio_1_5"].mean(),
                     "W ratio (0.3,5)": part["weight_ratio_0.3_5"].mean(),
                     "Spearman A-B": part["spearman_ab"].mean(), "levels (median)": part["n_levels"].median(),
                     "cost x analysis (median)": part["cost_ratio"].median(), "cells": len(part)})
    return pd.DataFrame(rows)


def benchmark_row(signal: str, encoder: str = "efficientnet-lite0", results_dir=None) -> dict | None:
    """The rarity benchmark's summary row of ``signal`` from its newest committed full run.

    Reads the newest ``rarity-full-*.json`` of ``results_dir`` (default: the workbook's
    ``benchmarks/rarity/results``) that holds ``signal`` for ``encoder``; returns
    :func:`benchmark_summary`'s row as a dict plus ``date``, ``machine``, ``n`` and ``file``, or
    None when no run holds it (a signal registered after the last run).
    """
    import json
    from pathlib import Path

    import pandas as pd

    from deqlib import paths

    folder = Path(results_dir) if results_dir is not None else paths.project_root() / "benchmarks" / "rarity" / "results"
    for path in sorted(folder.glob("rarity-full-*.json"), reverse=True):
        payload = json.loads(path.read_text())
        cells = pd.DataFrame(payload["cells"])
        if not len(cells) or signal not in set(cells["variant"]):
            continue
        cells = cells[cells.encoder == encoder]
        probes = pd.DataFrame(payload["probes"])
        probes = probes[probes.encoder == encoder] if len(probes) else probes
        summary = benchmark_summary(cells, probes)
        if signal not in set(summary["signal"]):
            continue
        row = summary[summary.signal == signal].iloc[0].to_dict()
        host = payload["run"].get("host", {})
        return {**row, "encoder": encoder, "date": host.get("date"), "machine": f"{host.get('cpu')}, "
                f"{host.get('cores')} cores", "n": payload["run"].get("n"), "file": path.name}
    return None


def signal_stability(embeddings, signal=None, seed: int = 0) -> dict:
    """How far ``signal``'s ranking moves when nothing that should matter changes.

    The signal (a registered name, None for the default, or an instance) is fitted on
    ``embeddings`` and again on the same vectors changed in one way each:

    * ``row_order``: the rows in a seeded random order;
    * ``rounding_fp32``: each value moved by one float32 rounding step at random (what another
      CPU's arithmetic gives);
    * ``rounding_fp16``: each value rounded to float16 (what a GPU's half-precision embedding
      gives; about 1e-3 relative);
    * ``threads``: one BLAS/OpenMP thread against two.

    Returns
    -------
    dict
        Each name -> Spearman between the likelihoods (1.0: the ranking did not move); the
        target is ``>= 1 - STABILITY_TOLERANCE``. Plus ``signal`` and ``n``.
    """
    from threadpoolctl import threadpool_limits

    from deqlib._validation import check_embeddings

    X = np.asarray(check_embeddings(embeddings, "embeddings", min_samples=3), dtype=np.float32)
    made = get_rarity_signal(signal)

    def fit(vectors, threads: int = 1):
        from sklearn.base import clone

        with threadpool_limits(limits=threads):
            return np.asarray(clone(made).fit(RarityContext(embeddings=vectors)).likelihood_, dtype=np.float64)

    rng = np.random.default_rng(seed)
    base = fit(X)
    order = rng.permutation(len(X))
    reordered = np.empty_like(base)
    reordered[order] = fit(X[order])
    nudged = np.where(rng.random(X.shape) < 0.5, np.nextafter(X, np.float32(np.inf)),
                      np.nextafter(X, np.float32(-np.inf))).astype(np.float32)
    return {"signal": made.name if hasattr(made, "name") else type(made).__name__, "n": len(X),
            "row_order": spearman(base, reordered),
            "rounding_fp32": spearman(base, fit(nudged)),
            "rounding_fp16": spearman(base, fit(X.astype(np.float16).astype(np.float32))),
            "threads": spearman(base, fit(X, threads=2))}
