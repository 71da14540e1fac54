"""``rarity_check``: which rarity signal finds a planted rare group in *your* images?

The rarity benchmark's question (``benchmarks/rarity``) asked on a user's own data: a seeded
sample of ``n_samples`` images of any registered source is embedded with the user's encoder;
for each condition of :mod:`deqlib.conditions` a seeded ``prevalence`` share of the sample is shown
with that condition (the rest stays clean), and every registered rarity signal
(:func:`deqlib.recovery.signal_variants`) scores the sample. The result says, per condition and
signal, how well ``1 - likelihood`` finds the planted images (ROC AUC, average precision,
precision at the prevalence, eq. 4 weight ratio, ...) next to the embedding's supervised ceiling
(a cross-validated linear probe): a table and a heat map.

Caches: the vectors go to the embedding cache (``data/interim/rarity-check/embeddings``; the
altered images' ids name condition, strength and seed, so they never mix with clean vectors), each
(condition, signal) result to one JSON under ``data/interim/rarity-check/cells/<key>/``, so a rerun
or an extension is cheap. Nothing is written next to the images: the source is only read
(``data/raw`` stays immutable).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from deqlib import paths
from deqlib._atomic import write_text_atomic
from deqlib.conditions import CONDITIONS, DRIVING_CONDITIONS, ConditionSource
from deqlib.embed import embed_source, get_encoder
from deqlib.progress import stage_message
from deqlib.recovery import Evaluator, evaluate_variant, probe_ceiling, signal_variants
from deqlib.sources import SubsetSource

__all__ = ["RarityCheckResult", "rarity_check", "DEFAULT_TIERS"]

logger = logging.getLogger(__name__)

#: What a check evaluates by default: the signals that need only embeddings, and those that need one analysis.
DEFAULT_TIERS = ("cheap", "analysis")


@dataclass
class RarityCheckResult:
    """What :func:`rarity_check` found.

    Attributes
    ----------
    cells : DataFrame
        One row per condition (``task``, e.g. ``fog@3%``) and signal (``variant``): the metrics of
        :func:`deqlib.recovery.recovery_metrics`, ``spearman_ab``, ``seconds``.
    probes : DataFrame
        ``task``, ``probe_auc``: the embedding's supervised ceiling per condition.
    params : dict
        Source, encoder, sample size, prevalence, conditions, seed, tiers, cache key.
    """

    cells: pd.DataFrame
    probes: pd.DataFrame
    params: dict = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """ROC AUC per signal (rows, best mean first) and condition (columns), the ceiling as the first row."""
        from deqlib.plots.rarity import auc_matrix

        return auc_matrix(self.cells, self.probes)

    def best(self) -> str:
        """The signal with the highest mean ROC AUC over the conditions."""
        return str(self.cells.groupby("variant")["roc_auc"].mean().idxmax())

    def figure(self, title: str | None = None):
        """The heat map of :func:`deqlib.plots.rarity.auc_heatmap` (a matplotlib figure)."""
        from deqlib.plots.rarity import auc_heatmap

        return auc_heatmap(self.cells, self.probes, title=title or
                           f"rarity check: {self.params.get('source')}, {self.params.get('encoder')}, "
                           f"{self.params.get('n_samples')} images, {self.params.get('prevalence', 0) * 100:g}% planted")

    def write(self, folder: str | Path) -> dict[str, Path]:
        """The table (CSV), every cell (CSV), the parameters (JSON) and the figure (PNG) into ``folder``."""
        from deqlib.plots.png import save_figure

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = {"table": folder / "rarity_check_auc.csv", "cells": folder / "rarity_check_cells.csv",
                   "params": folder / "rarity_check_params.json", "figure": folder / "rarity_check_auc.png"}
        write_text_atomic(written["table"], self.table().to_csv(float_format="%.4f"))
        write_text_atomic(written["cells"], self.cells.to_csv(index=False, float_format="%.6g"))
        write_text_atomic(written["params"], json.dumps(self.params, indent=1, default=str))
        save_figure(self.figure(), written["figure"], parameters={k: self.params[k] for k in (
            "source", "encoder", "n_samples", "prevalence", "seed") if k in self.params})
        return written


def _check(n_samples, prevalence, n_total: int) -> int:
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 20:
        raise ValueError(f"n_samples must be an integer >= 20, got {n_samples!r}")
    if n_samples > n_total:
        raise ValueError(f"n_samples={n_samples} but the source has only {n_total} images; pass n_samples <= {n_total}")
    if not isinstance(prevalence, (int, float)) or isinstance(prevalence, bool) or not 0 < prevalence <= 0.5:
        raise ValueError(f"prevalence must be a share in (0, 0.5], e.g. 0.03, got {prevalence!r}")
    n_rare = int(round(prevalence * n_samples))
    if n_rare < 2:
        raise ValueError(f"prevalence={prevalence} of n_samples={n_samples} plants {n_rare} image(s); at least 2 are "
                         f"needed: raise n_samples to {int(np.ceil(2 / prevalence))} or the prevalence")
    return n_rare


def _vectors(source, encoder, cache_dir: Path, progress: bool, embed_options: dict) -> np.ndarray:
    options = {"precision": "fp32", **embed_options}
    result = embed_source(source, encoder, cache_dir=cache_dir, progress=progress, **options)
    if len(result.sample_ids) != len(source):
        raise RuntimeError(f"{len(result.failures)} of {len(source)} images could not be read or embedded; "
                           f"see {result.cache_path / 'failures.csv'} (choose another seed or fix the files)")
    return np.asarray(result.vectors, dtype=np.float32)


def rarity_check(source, encoder="efficientnet-lite0", *, n_samples: int = 1000, prevalence: float = 0.03,
                 conditions=DRIVING_CONDITIONS, strength: float | None = None, signals=None,
                 tiers=DEFAULT_TIERS, reducers=("opentsne",), clusterers=("dbscan", "hdbscan"), K: int = 3,
                 seed: int = 0, cache_dir=None, embed_options: dict | None = None,
                 progress: bool = True) -> RarityCheckResult:
    """Plant each condition into a seeded sample of ``source`` and measure how well each signal finds it.

    Parameters
    ----------
    source : ImageSource
        Any registered source (``deqlib.sources.open_source``) or folder of images.
    encoder : str or Encoder, default='efficientnet-lite0'
        The encoder you analyse with (``deqlib.encoders.get_encoder`` names).
    n_samples : int, default=1000
        Images drawn (seeded) from the source; the signals score this sample.
    prevalence : float, default=0.03
        Share of the sample shown with a condition, per condition (at least 2 images).
    conditions : sequence of str, default=deqlib.conditions.DRIVING_CONDITIONS
        :data:`deqlib.conditions.CONDITIONS` names.
    strength : float, optional
        Every condition's strength in [0, 1]; None: each condition's default (the benchmark's).
    signals : sequence of str, optional
        Registered rarity signal names; None: every one (in ``tiers``).
    tiers : sequence of {'cheap', 'analysis', 'consensus'}, default=('cheap', 'analysis')
        Which signals run: those needing only embeddings, those needing one analysis (eq. 3 on
        each of ``reducers`` x ``clusterers``), those needing K runs.
    K : int, default=3
        Runs per consensus bank (tier ``'consensus'``).
    seed : int, default=0
        Seeds the sample, the planted images, the conditions and the analyses.
    cache_dir : path, optional
        Cache root; default ``data/interim/rarity-check``.
    embed_options : dict, optional
        Passed to :func:`deqlib.embed.embed_source` (``device``, ``batch_size``, ``num_threads``...;
        ``precision`` defaults to ``'fp32'`` so the vectors do not depend on the CPU's bf16 support).
    progress : bool, default=True
        Stage lines and the embedding progress bars.
    """
    unknown = [name for name in conditions if name not in CONDITIONS]
    if unknown or not conditions:
        raise ValueError(f"unknown condition(s) {unknown}; choose among {', '.join(CONDITIONS.names())}")
    bad_tiers = set(tiers) - {"cheap", "analysis", "consensus"}
    if bad_tiers or not tiers:
        raise ValueError(f"tiers must be a non-empty subset of cheap, analysis, consensus; got {list(tiers)}")
    n_rare = _check(n_samples, prevalence, len(source))
    if n_samples < 100 and set(tiers) & {"analysis", "consensus"}:
        raise ValueError(f"n_samples={n_samples} is too few for a t-SNE (perplexity 30 needs at least 91 samples); "
                         "pass n_samples >= 100, or tiers=('cheap',) for the signals that need only embeddings")
    encoder = get_encoder(encoder) if isinstance(encoder, str) else encoder
    root = Path(cache_dir) if cache_dir is not None else paths.interim_dir() / "rarity-check"
    raw = paths.raw_dir().resolve()
    if root.resolve() == raw or raw in root.resolve().parents:
        raise ValueError(f"cache_dir {root} lies in data/raw, which the workbook never writes; "
                         "leave it None (data/interim/rarity-check) or choose another folder")
    rng = np.random.default_rng(seed)
    positions = np.sort(rng.choice(len(source), n_samples, replace=False))
    sample = SubsetSource(source, positions)
    variants = [v for v in signal_variants(signals, list(reducers), list(clusterers)) if v.tier in tiers]
    if not variants:
        raise ValueError(f"no registered signal of the tiers {list(tiers)} matches signals={signals!r}")
    key_text = json.dumps({"source": source.fingerprint(), "encoder": encoder.cache_key(), "n": n_samples,
                           "prevalence": prevalence, "seed": seed, "strength": strength, "K": K}, sort_keys=True)
    key = hashlib.sha256(key_text.encode()).hexdigest()[:16]
    params = {"source": getattr(source, "name", type(source).__name__), "root": str(getattr(source, "root", "")),
              "encoder": encoder.name, "n_samples": n_samples, "prevalence": prevalence, "n_rare": n_rare,
              "conditions": list(conditions), "strength": strength, "seed": seed, "tiers": list(tiers), "K": K,
              "variants": [v.label for v in variants], "cache_key": key}

    def say(text: str) -> None:
        stage_message(logger, "rarity-check", progress, text)

    say(f"{n_samples} of {len(source):,} images of {params['source']}, {n_rare} planted per "
        f"condition ({len(conditions)} conditions), {len(variants)} signals, encoder {encoder.name}")
    embed_options = dict(embed_options or {})
    clean = _vectors(sample, encoder, root / "embeddings", progress, embed_options)
    cells, probes = [], []
    cell_root = root / "cells" / key
    for number, condition in enumerate(conditions, 1):
        task = f"{condition}@{prevalence * 100:g}%"
        picked = np.sort(np.random.default_rng([seed, number]).choice(n_samples, n_rare, replace=False))
        rare = np.zeros(n_samples, bool)
        rare[picked] = True
        altered_source = SubsetSource(ConditionSource(sample, rare, condition, strength=strength, seed=seed), picked)
        say(f"[{number}/{len(conditions)}] {task}: embedding {n_rare} altered images")
        X = clean.copy()
        X[picked] = _vectors(altered_source, encoder, root / "embeddings", progress, embed_options)
        probe_file = cell_root / task / "_probe.json"
        probe = _read(probe_file)
        if probe is None:
            probe = {"task": task, "probe_auc": probe_ceiling(X, rare, seed=seed)}
            write_text_atomic(probe_file, json.dumps(probe))
        probes.append(probe)
        evaluator = Evaluator(X, K=K)
        for variant in variants:
            path = cell_root / task / f"{variant.label}.json"
            record = _read(path)
            if record is None:
                record = {"task": task, **evaluate_variant(evaluator, variant, rare, seed)}
                write_text_atomic(path, json.dumps(record, default=float))
            cells.append(record)
            say(f"{task} {variant.label}: ROC AUC {record['roc_auc']:.3f} "
                f"(ceiling {probe['probe_auc']:.3f})")
    return RarityCheckResult(pd.DataFrame(cells), pd.DataFrame(probes), params)


def _read(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
