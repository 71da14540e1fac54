"""The analysis as one call: images (or embeddings) -> t-SNE -> clusters -> likelihoods -> weights.

:func:`analyze` chains the stages and caches each on disk under a key made of its inputs:

* embeddings: :func:`deqlib.embed.embed_source`'s own shard cache (by source and encoder);
* reduction: ``<cache>/reduce/<key>.npz`` with key = hash(embedding content, reducer params);
* clustering: ``<cache>/cluster/<key>.npz`` with key = hash(reduction key, clusterer params).

So changing eps reuses the t-SNE, and a different encoder (different vectors) recomputes
everything after it. Likelihoods and weights take milliseconds and are always recomputed.

The stages one analysis runs are a :class:`Stages` (reducer, clusterer, noise policy, rarity
signal), made by :func:`build_stages` from registered names (:data:`deqlib.reduce.REDUCERS`,
:data:`deqlib.cluster.CLUSTERERS`), parameter dicts, estimator instances and the mode's
defaults. :func:`analyze`, the CLI (``deq analyze``, ``deq stability``), the notebooks and
:mod:`deqlib.stability` all build them there, so the defaults are written once.

Two modes:

``mode="default"``
    openTSNE 3-D with the ``"fast"`` schedule and PCA-50, DBSCAN with a scale-aware eps
    (``eps_scale="official"``), noise policy ``"singleton"``.
``mode="reference"``
    The official analysis step for step: embeddings computed in float32 whatever the device
    (bf16 would move a quarter of the likelihoods), scikit-learn TSNE (``n_components=3, perplexity=30,
    max_iter=500, learning_rate='auto', init='pca'``, seed 33), DBSCAN with the raw eps, all
    noise counted as one cluster (``noise_policy="as_cluster"``).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from deqlib import __version__, paths
from deqlib._atomic import atomic_path
from deqlib.alignment import align, attribute_columns
from deqlib.bank import LikelihoodBank, bank_from_signal, export_official_pickle, write_bank
from deqlib.cluster import (CLUSTERERS, OFFICIAL_EPS_OUTPUTS, ClusterResult, DBSCANClusterer, as_clusterer,
                            preset_params, preset_setting)
from deqlib.likelihood import DEFAULT_NOISE_POLICY, NOISE_POLICIES, ClusterSignal, RarityContext
from deqlib.reduce import REDUCERS, SklearnTSNEReducer, as_reducer, check_embeddings, reducer_output
from deqlib.weights import DEFAULT_ETA, DEFAULT_GAMMA, gfl_weight

__all__ = ["MODES", "AnalysisResult", "DegenerateClusteringWarning", "Stages", "analyze", "build_stages",
           "default_bank_path"]

logger = logging.getLogger(__name__)
MODES = ("default", "reference")
#: The registered parts each mode uses when none is named. Without a preset DBSCAN keeps its own
#: defaults, eps 1.0 / min_samples 10 (nuScenes and Waymo's setting).
MODE_DEFAULTS = {"default": {"reducer": "opentsne", "clusterer": "dbscan"},
                 "reference": {"reducer": "sklearn", "clusterer": "dbscan"}}


class DegenerateClusteringWarning(UserWarning):
    """The clustering cannot rank samples by rarity (all noise, or one cluster holds all)."""


@dataclass
class AnalysisResult:
    """Everything one analysis produced.

    Attributes
    ----------
    samples : DataFrame
        One row per sample: ``sample_id, location, x, y, z, cluster_id`` (the bank's id: the
        clusterer's label, ``-1`` for noise, except under ``'nearest'``), ``raw_cluster_id`` (the
        clusterer's label), ``is_noise, cluster_size, largest_cluster_size, likelihood``,
        ``outlier_score`` (HDBSCAN), ``weight`` (eq. 4 with ``eta``, ``gamma``), then the
        source's metadata columns.
    clusters : DataFrame
        One row per cluster (and one ``-1`` row for noise): ``cluster_id, n_samples, fraction,
        likelihood`` (mean over members; all equal except for noise), ``weight``, centroid
        ``x, y, z``, ``is_noise``. Sorted by size, largest first.
    params : dict
        Every stage's parameters, versions, cache keys and whether each stage came from cache.
    bank : LikelihoodBank
        The bank a training run reads (write it with :meth:`write`).
    timings : dict
        Seconds per stage (``embed, reduce, cluster, likelihood``).
    alignment : DataFrame or None
        NMI/ARI/purity of the clusters with each metadata attribute (:func:`deqlib.alignment.align`).
    likelihood_by_value : dict
        Mean likelihood per attribute value, per attribute.
    """

    samples: pd.DataFrame
    clusters: pd.DataFrame
    params: dict
    bank: LikelihoodBank
    timings: dict = field(default_factory=dict)
    alignment: pd.DataFrame | None = None
    likelihood_by_value: dict = field(default_factory=dict)

    @property
    def degenerate(self) -> str | None:
        return self.params["cluster"].get("degenerate")

    def write(self, path: str | Path) -> Path:
        """Write the bank as Parquet (atomic)."""
        return write_bank(path, self.bank)

    def export_official(self, path: str | Path, missing: str = "error", expected_ids=None) -> Path:
        """Write the official forks' pickle (atomic); ``missing`` says what to do with samples whose
        images could not be embedded (see :func:`deqlib.bank.export_official_pickle`)."""
        return export_official_pickle(self.bank, path, missing=missing, expected_ids=expected_ids)

    def summary(self) -> str:
        """Clusters, noise, likelihood quantiles and time per stage, in a few lines."""
        c = self.params["cluster"]
        q = np.quantile(self.samples["likelihood"], [0.0, 0.1, 0.5, 0.9, 1.0])
        lines = [
            f"{len(self.samples)} samples, {c['n_clusters']} clusters, noise {c['noise_fraction']:.1%} "
            f"(policy {self.params['noise_policy']!r}), mode {self.params['mode']!r}",
            ("likelihood" if self.bank.metadata.get("signal", "cluster") == "cluster"
             else f"likelihood (rarity signal {self.bank.metadata['signal']!r})")
            + " quantiles 0/10/50/90/100%: " + " / ".join(f"{v:.4g}" for v in q),
            "time per stage: " + ", ".join(
                f"{k} {v:.1f}s" + (" (cached)" if self.params.get("cached", {}).get(k) else "")
                for k, v in self.timings.items()),
        ]
        if self.degenerate:
            lines.append(f"DEGENERATE RESULT: {self.degenerate}")
        faithful = self.params.get("faithfulness")
        if faithful and faithful.get("skipped"):
            lines.append(f"3-D map faithfulness: skipped ({faithful['skipped']})")
        elif faithful:
            lines.append(f"3-D map faithfulness ({faithful['sample_size']} samples): trustworthiness "
                         f"{faithful['trustworthiness']:.3f}, {faithful['k']}-NN recall {faithful['knn_recall']:.3f}; "
                         f"same clustering in PCA-{faithful['pca_components']}: {faithful['pca_n_clusters']} clusters, "
                         f"ARI {faithful['pca_ari']:.3f} with the map's")
        if self.alignment is not None and len(self.alignment):
            for row in self.alignment.itertuples(index=False):
                lines.append(f"alignment with {row.attribute!r}: NMI {row.nmi:.3f}, ARI {row.ari:.3f}, "
                             f"purity {row.purity:.3f}")
        return "\n".join(lines)


def default_bank_path(dataset: str, mode: str, encoder: str, noise_policy: str, signal: str = "cluster") -> Path:
    """``data/processed/<dataset>_<encoder>_<mode>_<noise policy>.parquet`` for eq. 3 (signal ``'cluster'``);
    another rarity signal replaces the noise policy by its name (``..._<mode>_knn-density.parquet``)."""
    last = noise_policy if signal == "cluster" else signal
    safe = "".join(ch if ch.isalnum() or ch in "-._" else "-" for ch in f"{dataset}_{encoder}_{mode}_{last}")
    return paths.processed_dir() / f"{safe}.parquet"


# ------------------------------------------------------------------------------------- caching
def _hash(*parts: Any) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        if isinstance(part, np.ndarray):
            digest.update(str((part.dtype.str, part.shape)).encode())
            digest.update(np.ascontiguousarray(part).tobytes())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
        digest.update(b"\x00")
    return digest.hexdigest()


def _load_npz(path: Path | None, keys: tuple[str, ...] = (), **expected_rows: int) -> dict | None:
    """A stage cache file's arrays, or None when absent or damaged (then the stage is recomputed).

    ``keys`` must all be present; ``expected_rows`` names arrays and their required length: a file that does not match (or
    cannot be read: truncated zip, short member, missing key, bad JSON) is reported with its
    path and ignored; the recomputed result replaces it atomically.
    """
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        absent = [k for k in (*keys, *expected_rows) if k not in arrays]
        if absent:
            raise KeyError(f"no {absent} in it")
        for name, rows in expected_rows.items():
            if arrays[name].shape[:1] != (rows,):
                raise ValueError(f"{name!r} has shape {arrays[name].shape}, expected {rows} rows")
        if "params" in arrays:
            json.loads(str(arrays["params"]))
    except Exception as exc:  # noqa: BLE001 - any unreadable cache file is recomputed, never trusted
        logger.warning("ignoring damaged cache file %s (%s: %s); recomputing it", path, type(exc).__name__, exc)
        return None
    return arrays


def _save_npz(path: Path | None, **arrays) -> None:
    """Write a stage cache file atomically; a cache that cannot be written is a warning, not an error."""
    if path is None:
        return
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)
    except OSError as exc:
        logger.warning("cannot write the analysis cache %s (%s); the result is not cached: free disk space "
                       "or make the folder writable, or pass another cache_dir", path, exc.strerror or exc)


# ------------------------------------------------------------------------------------- stages
@dataclass
class Stages:
    """What one analysis runs (made by :func:`build_stages`).

    Attributes
    ----------
    reducer : estimator
        A reducer (:data:`deqlib.reduce.REDUCERS` entry instance, or any estimator with
        ``fit_transform`` and ``cache_key``), not yet fitted.
    clusterer : estimator
        A clusterer (:data:`deqlib.cluster.CLUSTERERS` entry instance, or any estimator whose
        ``fit(X)`` returns itself with ``result_``, and ``cache_key``).
    noise_policy : {'singleton', 'as_cluster', 'nearest'}
        What eq. 3 makes of noise.
    rarity : object or None, default=None
        A rarity signal (``deqlib.likelihood.RARITY_SIGNALS`` entry instance, not yet fitted); None
        is eq. 3 on the clusters (``'cluster'``) with ``noise_policy``.
    preset : str or None, default=None
        The paper's dataset setting the clusterer was made from, recorded in the bank's metadata.
    """

    reducer: Any
    clusterer: Any
    noise_policy: str
    rarity: Any = None
    preset: str | None = None


def _parameter_names(factory) -> set[str] | None:
    """Keyword parameters ``factory`` accepts (None when it takes ``**kwargs``: anything goes)."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return None
    names = set()
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            return None
        if parameter.kind is not inspect.Parameter.VAR_POSITIONAL and parameter.name != "self":
            names.add(parameter.name)
    return names


def _construct(registry, name: str, params: dict | None, seed: int | None):
    """``registry``'s part ``name`` made with ``params`` (checked by name) and ``random_state=seed``
    when it takes one and ``params`` do not set it."""
    entry = registry.entry(name)
    if params is not None and not isinstance(params, dict):
        raise TypeError(f"{registry.kind}_params must be a dict of parameter names to values, got "
                        f"{type(params).__name__}")
    params = dict(params or {})
    valid = _parameter_names(entry.factory)
    if valid is not None:
        unknown = sorted(set(params) - valid)
        if unknown:
            raise ValueError(f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
                             f"for the {registry.kind} {entry.name!r}; valid: {', '.join(sorted(valid))}")
        if seed is not None and "random_state" in valid:
            params.setdefault("random_state", int(seed))
    try:
        return registry.create(entry.name, **params)
    except TypeError as exc:  # a factory taking **kwargs refused one of them
        raise ValueError(f"the {registry.kind} {entry.name!r} refused its parameters {sorted(params)}: {exc}") from None


def _instance(part, kind: str, params: dict | None, methods: tuple[str, ...]):
    """A passed-in estimator: checked and cloned (its own parameters, random_state included, kept); a plain
    scikit-learn estimator is adapted first (``as_reducer`` / ``as_clusterer``: its cache key from ``get_params()``)."""
    part = as_reducer(part) if kind == "reducer" else as_clusterer(part)
    if params:
        raise ValueError(f"{kind}_params apply to a {kind} given by name; set them on the {kind} instance "
                         f"({kind}.set_params(...)) or pass its registered name ({kind}=<name>)")
    missing = [m for m in methods if not hasattr(part, m)]
    if missing:
        raise TypeError(f"{kind} must be a registered name or a deqlib {kind} ({', '.join(methods)}); "
                        f"{type(part).__name__} lacks {', '.join(missing)}")
    return clone(part)


def build_stages(mode: str = "default", *, reducer=None, reducer_params: dict | None = None, clusterer=None,
                 clusterer_params: dict | None = None, noise_policy: str | None = None, preset: str | None = None,
                 rarity=None, rarity_params: dict | None = None, seed: int | None = None) -> Stages:
    """The stages of one analysis, from names, parameters, instances and the mode's defaults.

    Parameters
    ----------
    mode : {'default', 'reference'}, default='default'
        ``'default'``: openTSNE (``'fast'`` schedule, PCA-50), DBSCAN with eps in official units
        (nuScenes/Waymo's eps 1.0, min_samples 10 unless ``preset``), noise ``'singleton'``.
        ``'reference'``: the official analysis (scikit-learn TSNE, DBSCAN on the raw eps, noise
        ``'as_cluster'``); anything else is refused.
    reducer : str or estimator, optional
        A :data:`deqlib.reduce.REDUCERS` name (or alias), or an instance (cloned, its parameters
        kept). None: the mode's (``'opentsne'``, ``'sklearn'`` in reference mode).
    reducer_params : dict, optional
        Constructor parameters of a named reducer (an unknown one raises ValueError naming the valid ones).
    clusterer : str or estimator, optional
        A :data:`deqlib.cluster.CLUSTERERS` name, or an instance. None: ``'dbscan'``.
    clusterer_params : dict, optional
        Constructor parameters of a named clusterer; they override the preset's.
    noise_policy : {'singleton', 'as_cluster', 'nearest'}, optional
        None: ``'singleton'`` (``'as_cluster'`` in reference mode).
    preset : {'kitti', 'nuscenes', 'waymo', 'bdd100k'}, optional
        The paper's DBSCAN setting of a dataset, read by a named clusterer whose registry entry
        says how (``preset_params``: HDBSCAN takes ``min_cluster_size = min_samples``). A
        clusterer passed as an instance already has its setting: the preset is then only
        recorded by :func:`analyze` (``params['preset']``).
    rarity : str or object, optional
        A single-run ``deqlib.likelihood.RARITY_SIGNALS`` name (``'knn-density'``) or a signal
        instance (cloned). None or ``'cluster'``: eq. 3 on the clusters with ``noise_policy``
        (the only signal in reference mode). The consensus signals need K runs: refused here
        (``deqlib.stability``).
    rarity_params : dict, optional
        Constructor parameters of a named rarity signal (``{'k': 15}``); the cluster signal's noise
        policy is ``noise_policy``, not one of these.
    seed : int, optional
        The ``random_state`` of the parts this function constructs by name (unless their params
        set one). A passed-in instance keeps its own ``random_state``: set it there.

    Returns
    -------
    Stages

    Notes
    -----
    DBSCAN's ``eps_scale`` defaults to ``'official'`` after a t-SNE (a reducer whose registry
    entry says ``output='tsne'``), to ``'knn'`` after any other reducer (UMAP), and to ``'raw'``
    in reference mode; ``'official'`` after a non-t-SNE reducer is refused (its calibration is
    t-SNE's, :data:`deqlib.cluster.EPS_CALIBRATED_ON`).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if preset is not None:
        preset_setting(preset)  # a clear error for an unknown name
    reference = mode == "reference"
    defaults = MODE_DEFAULTS[mode]

    # reducer
    reducer = defaults["reducer"] if reducer is None else reducer
    if isinstance(reducer, str):
        reducer = _construct(REDUCERS, reducer, reducer_params, seed)
    else:
        reducer = _instance(reducer, "reducer", reducer_params, ("fit_transform", "cache_key"))
    if reference and not isinstance(reducer, SklearnTSNEReducer):
        raise ValueError("mode='reference' runs scikit-learn's TSNE as the official code does; leave reducer=None, "
                         "name 'sklearn' or pass a SklearnTSNEReducer (or use mode='default')")
    output = reducer_output(reducer)
    is_tsne = output in OFFICIAL_EPS_OUTPUTS

    # clusterer
    clusterer = defaults["clusterer"] if clusterer is None else clusterer
    if isinstance(clusterer, str):
        name = CLUSTERERS.resolve(clusterer)
        params = preset_params(name, preset) if preset is not None else {}
        if "eps_scale" in (_parameter_names(CLUSTERERS.entry(name).factory) or ()):
            params["eps_scale"] = "raw" if reference else ("official" if is_tsne else "knn")
        params.update(clusterer_params or {})
        clusterer = _construct(CLUSTERERS, name, params, seed)
    else:
        clusterer = _instance(clusterer, "clusterer", clusterer_params, ("fit", "cache_key"))
    if reference and not (isinstance(clusterer, DBSCANClusterer) and clusterer.eps_scale == "raw"):
        raise ValueError("mode='reference' clusters with DBSCAN on the raw eps; leave clusterer=None (or 'dbscan') "
                         "or pass DBSCANClusterer(..., eps_scale='raw')")
    if getattr(clusterer, "eps_scale", None) == "official" and not is_tsne:
        raise ValueError(
            f"eps_scale='official' is calibrated on scikit-learn t-SNE output, but the reducer "
            f"{type(reducer).__name__} gives {output or 'unknown'} coordinates; use eps_scale='knn' (eps in "
            "multiples of the k-NN distance) or 'raw' (the coordinates' own units)")

    # noise policy
    if reference:
        if noise_policy not in (None, "as_cluster"):
            raise ValueError(f"mode='reference' counts noise as one cluster as the official code does; "
                             f"noise_policy={noise_policy!r} contradicts it (use mode='default')")
        noise_policy = "as_cluster"
    noise_policy = DEFAULT_NOISE_POLICY if noise_policy is None else noise_policy
    if noise_policy not in NOISE_POLICIES:
        raise ValueError(f"noise_policy must be one of {NOISE_POLICIES}, got {noise_policy!r}")

    # rarity signal
    rarity = _rarity(rarity, rarity_params, seed, reference, noise_policy)

    # Parameter values are checked now (cache_key validates), not after a long reduction.
    reducer.cache_key()
    clusterer.cache_key()
    return Stages(reducer=reducer, clusterer=clusterer, noise_policy=noise_policy, rarity=rarity, preset=preset)


def _rarity(rarity, rarity_params, seed, reference, noise_policy):
    """The rarity signal (None: eq. 3 on the clusters with ``noise_policy``, made in :func:`analyze`)."""
    from deqlib.likelihood import RARITY_SIGNALS

    if isinstance(rarity, str):
        name = RARITY_SIGNALS.resolve(rarity)
        if name == "cluster":  # the stage's noise_policy is the one place to set it
            if "noise_policy" in (rarity_params or {}):
                raise ValueError("set the cluster signal's noise policy with noise_policy= (--noise-policy), "
                                 "not in rarity_params")
            if not rarity_params:
                return None  # the default: eq. 3 with noise_policy
            rarity_params = {**rarity_params, "noise_policy": noise_policy}
        if RARITY_SIGNALS.entry(name).extra.get("needs_runs"):
            raise ValueError(f"the rarity signal {name!r} needs K runs of the analysis, which one analysis does "
                             "not make: use `deq stability --signal ...` or deqlib.stability.stability_runs + "
                             "consensus_bank")
    elif rarity_params:
        raise ValueError("rarity_params apply to a rarity signal given by name; set them on the instance")
    if rarity is None:
        if rarity_params:
            raise ValueError("rarity_params apply to a rarity signal given by name (rarity=<name>)")
        return None
    if reference:
        raise ValueError("mode='reference' computes eq. 3 on the clusters as the official code does; "
                         "leave rarity=None or 'cluster' (or use mode='default')")
    if isinstance(rarity, str):
        return _construct(RARITY_SIGNALS, rarity, rarity_params, seed)
    if not callable(getattr(rarity, "fit", None)):
        raise TypeError(f"rarity must be a registered name ({', '.join(RARITY_SIGNALS.names())}) or a rarity "
                        f"signal with fit(context), got {type(rarity).__name__}")
    return clone(rarity)


def _embeddings_from_source(source, encoder, embed_options, progress, mode="default"):
    from deqlib.embed import embed_source, get_encoder

    if isinstance(source, str):
        from deqlib.sources import open_source

        source = open_source(source)
    encoder = get_encoder(encoder) if isinstance(encoder, str) else encoder
    options = dict(embed_options or {})
    options.setdefault("cache_dir", paths.interim_dir() / "embeddings")
    if mode == "reference":
        # bf16 moves a quarter of the likelihoods (ARI 0.76 against float32): the reference is float32.
        if options.get("precision", "auto") not in ("auto", "fp32"):
            raise ValueError(f"mode='reference' embeds in float32 as the official code does; "
                             f"precision={options['precision']!r} contradicts it (drop it or use mode='default')")
        options["precision"] = "fp32"
    result = embed_source(source, encoder, progress=progress, **options)
    metadata = source.metadata()
    info = {"dataset": getattr(source, "name", type(source).__name__), "encoder": encoder.name,
            "encoder_key": result.stats.get("encoder"), "precision": result.stats.get("precision"),
            "torch_threads": result.stats.get("torch_threads"),
            "n_failed": int(len(result.failures)),
            "failed_sample_ids": [str(s) for s in result.failures["sample_id"]] if len(result.failures) else [],
            "source_fingerprint": source.fingerprint() if hasattr(source, "fingerprint") else None}
    if len(result.failures):
        warnings.warn(f"{len(result.failures)} images could not be embedded and have no row in the bank "
                      f"(e.g. {result.failures['sample_id'].head(3).tolist()}); they are recorded in its metadata "
                      "('missing_sample_ids') and the official export asks what to do with them (missing=)",
                      stacklevel=3)
    return list(result.sample_ids), result.vectors, metadata, info


def _check_ids(sample_ids, n: int) -> list[str]:
    ids = [str(s) for s in sample_ids]
    if len(ids) != n:
        raise ValueError(f"got {len(ids)} sample ids for {n} embeddings: they must match one to one")
    if len(set(ids)) != len(ids):
        seen, dupes = set(), []
        for s in ids:
            if s in seen:
                dupes.append(s)
            seen.add(s)
        raise ValueError(f"sample ids must be unique; duplicated: {dupes[:5]}")
    return ids


def _say(progress: bool, message: str) -> None:
    # Stage messages go through logging; when nothing configured logging (a notebook, a script) they are
    # printed to stdout, so JupyterLab shows them as output, not as red stderr boxes.
    if not progress:
        logger.debug(message)
    elif logger.hasHandlers():
        logger.info(message)
    else:
        print(f"[deq analyze] {message}", file=sys.stdout, flush=True)


# ------------------------------------------------------------------------------------- analyze
def analyze(source=None, encoder="efficientnet-lite0", reducer=None, clusterer=None, noise_policy=None,
            eta: float = DEFAULT_ETA, gamma: float = DEFAULT_GAMMA, seed: int | None = 33, cache_dir=None,
            *, embeddings=None, sample_ids=None, metadata: pd.DataFrame | None = None, mode: str = "default",
            preset: str | None = None, dataset: str | None = None, attributes: list[str] | None = None,
            cache: bool = True, embed_options: dict | None = None, progress: bool = False,
            faithfulness: bool = False, stages: Stages | None = None, reducer_params: dict | None = None,
            clusterer_params: dict | None = None, rarity=None, rarity_params: dict | None = None) -> AnalysisResult:
    """Run the analysis (steps 1-4 of the method) and return samples, clusters, params and bank.

    Parameters
    ----------
    source : ImageSource or str, optional
        Images to embed (or a source kind for :func:`deqlib.sources.open_source`). Leave None
        and pass ``embeddings`` + ``sample_ids`` to start from vectors.
    encoder : str or Encoder, default='efficientnet-lite0'
        Used with ``source`` only.
    reducer : str or estimator, optional
        A registered reducer name or an instance (:func:`build_stages`); default by ``mode``.
    clusterer : str or estimator, optional
        A registered clusterer name or an instance; default by ``mode`` and ``preset``: DBSCAN
        eps 1.0 / min_samples 10 when no preset.
    noise_policy : {'singleton', 'as_cluster', 'nearest'}, optional
        Default ``'singleton'``; ``'as_cluster'`` (and only that) in reference mode.
    eta, gamma : float
        Weight parameters of eq. 4 for the ``weight`` column (default: KITTI's 1.0 / 5.0).
    seed : int or None, default=33
        The ``random_state`` of the parts built from names or defaults (:func:`build_stages`).
        A reducer passed as an instance keeps its own ``random_state``
        (``analyze(reducer=OpenTSNEReducer(random_state=7), seed=33)`` uses 7). Recorded in
        ``params['seed']``.
    cache_dir : path, optional
        Stage cache root; default ``deqlib.paths.interim_dir() / 'analysis'``.
    embeddings : array (N, D), optional
        Precomputed embeddings (rows must be finite).
    sample_ids : sequence of str, optional
        Ids of ``embeddings`` rows (default ``'0'..'N-1'``).
    metadata : DataFrame, optional
        Per-sample attributes with a ``sample_id`` column (merged by id). With a ``source`` its
        own ``metadata()`` is used unless this is given.
    mode : {'default', 'reference'}, default='default'
    preset : {'kitti', 'nuscenes', 'waymo', 'bdd100k'}, optional
        The paper's DBSCAN setting (raw eps in reference mode, scale-aware otherwise).
    dataset : str, optional
        Name recorded in the bank (default: the source's name, or ``'embeddings'``).
    attributes : list of str, optional
        Metadata columns to align the clusters with (default: every attribute-like column).
    cache : bool, default=True
        Read and write the reduce/cluster caches.
    embed_options : dict, optional
        Passed to :func:`deqlib.embed.embed_source` (``batch_size``, ``device``, ``cache_dir``, ...).
    progress : bool, default=False
        Print one line per stage to stderr.
    faithfulness : bool, default=False
        Also measure how faithful the 3-D map is to the embeddings (trustworthiness, 10-NN
        recall, the same clustering in PCA-50 space; :func:`deqlib.stability.faithfulness`, on
        a sample of 5,000): ``params['faithfulness']``, shown by :meth:`AnalysisResult.summary`.
    stages : Stages, optional
        The stages from :func:`build_stages`, instead of ``reducer``, ``clusterer``,
        ``noise_policy``, ``preset`` and the ``*_params`` (passing both is an error). They are
        checked against ``mode`` and cloned, not changed.
    reducer_params, clusterer_params, rarity, rarity_params
        As for :func:`build_stages`.

    Returns
    -------
    AnalysisResult
    """
    if stages is not None:
        given = [name for name, value in (("reducer", reducer), ("clusterer", clusterer), ("noise_policy", noise_policy),
                                          ("preset", preset), ("reducer_params", reducer_params),
                                          ("clusterer_params", clusterer_params), ("rarity", rarity),
                                          ("rarity_params", rarity_params)) if value is not None]
        if given:
            raise ValueError(f"pass stages= or the stage keywords, not both; got stages and {', '.join(given)} "
                             "(give them to build_stages)")
        preset = stages.preset  # recorded in the bank, as when the keywords are given
        stages = build_stages(mode, reducer=stages.reducer, clusterer=stages.clusterer,
                              noise_policy=stages.noise_policy, rarity=stages.rarity, preset=preset)
    else:
        stages = build_stages(mode, reducer=reducer, reducer_params=reducer_params, clusterer=clusterer,
                              clusterer_params=clusterer_params, noise_policy=noise_policy, preset=preset,
                              rarity=rarity, rarity_params=rarity_params, seed=seed)
    reducer, clusterer, noise_policy = stages.reducer, stages.clusterer, stages.noise_policy
    timings: dict[str, float] = {}
    cached: dict[str, bool] = {}
    cache_root = Path(cache_dir) if cache_dir is not None else paths.interim_dir() / "analysis"

    # 1. embeddings
    started = time.perf_counter()
    if (source is None) == (embeddings is None):
        raise ValueError("pass either source (images to embed) or embeddings (precomputed vectors), not both")
    if source is not None:
        _say(progress, "embedding images")
        ids, vectors, source_meta, embed_info = _embeddings_from_source(source, encoder, embed_options, progress,
                                                                        mode)
        metadata = source_meta if metadata is None else metadata
    else:
        vectors = embeddings
        ids = None
        embed_info = {"dataset": "embeddings", "encoder": "precomputed", "n_failed": 0}
    vectors = check_embeddings(vectors, name="embeddings")
    ids = _check_ids(ids if ids is not None else (sample_ids if sample_ids is not None
                                                  else [str(i) for i in range(len(vectors))]), len(vectors))
    embedding_key = _hash("embeddings", ids, vectors)
    timings["embed"] = time.perf_counter() - started
    dataset = dataset or embed_info["dataset"]

    # 2. reduction
    started = time.perf_counter()
    reduce_key = _hash(embedding_key, reducer.cache_key())
    reduce_path = cache_root / "reduce" / f"{reduce_key}.npz" if cache else None
    stored = _load_npz(reduce_path, ("params",), coords=len(ids))
    if stored is not None:
        coords, reduce_params = stored["coords"], json.loads(str(stored["params"]))
        cached["reduce"] = True
        _say(progress, f"reduce: {len(ids)} points from cache {reduce_path}")
    else:
        _say(progress, f"reduce: {type(reducer).__name__} on {len(ids)} x {vectors.shape[1]} ...")
        if progress and "progress" in inspect.signature(reducer.fit_transform).parameters:
            coords = reducer.fit_transform(vectors, progress=True)  # a t-SNE progress bar
        else:
            coords = reducer.fit_transform(vectors)
        reduce_params = getattr(reducer, "params_", reducer.cache_key())
        _save_npz(reduce_path, coords=coords, params=np.array(json.dumps(reduce_params, default=str)))
        cached["reduce"] = False
    timings["reduce"] = time.perf_counter() - started
    _say(progress, f"reduce: done in {timings['reduce']:.1f}s")

    # 3. clustering
    started = time.perf_counter()
    cluster_key = _hash(reduce_key, clusterer.cache_key())
    cluster_path = cache_root / "cluster" / f"{cluster_key}.npz" if cache else None
    stored = _load_npz(cluster_path, ("params", "outlier_scores"), labels=len(ids))
    if stored is not None:
        scores = stored["outlier_scores"] if stored["outlier_scores"].size else None
        clustering = ClusterResult(stored["labels"].astype(np.int64), scores, json.loads(str(stored["params"])))
        cached["cluster"] = True
    else:
        _say(progress, f"cluster: {type(clusterer).__name__} ...")
        clustering = clusterer.fit(coords).result_
        scores = clustering.outlier_scores
        _save_npz(cluster_path, labels=clustering.labels,
                  outlier_scores=scores if scores is not None else np.empty(0),
                  params=np.array(json.dumps(clustering.params, default=str)))
        cached["cluster"] = False
    timings["cluster"] = time.perf_counter() - started
    _say(progress, f"cluster: {clustering.summary()} in {timings['cluster']:.1f}s")
    if clustering.degenerate:
        warnings.warn(f"degenerate clustering: {clustering.degenerate}", DegenerateClusteringWarning, stacklevel=2)

    # 4. likelihoods (the rarity stage), weights, bank
    started = time.perf_counter()
    context = RarityContext(embeddings=vectors, coords=coords, labels=clustering.labels,
                            outlier_scores=clustering.outlier_scores)
    partition = ClusterSignal(noise_policy=noise_policy).fit(context)  # eq. 3: the default signal
    signal = partition if stages.rarity is None else clone(stages.rarity).fit(context)
    failed_ids = embed_info.pop("failed_sample_ids", [])
    params = {
        "mode": mode, "dataset": dataset, "noise_policy": noise_policy, "eta": float(eta), "gamma": float(gamma),
        "seed": seed, "preset": preset, "embedding": {**embed_info, "n_samples": len(ids),
                                                      "dim": int(vectors.shape[1]), "key": embedding_key,
                                                      # the row order moves t-SNE results (docs/analysis.md)
                                                      "row_order": _hash("row order", ids)},
        "reduce": {**reduce_params, "key": reduce_key}, "cluster": {**clustering.params, "key": cluster_key},
        "deqlib": __version__, "missing_sample_ids": list(failed_ids),
    }
    extra = {"outlier_score": clustering.outlier_scores} if clustering.outlier_scores is not None else {}
    if not signal.cluster_based:  # the clusterer's labels travel beside the likelihood (explorer colours)
        extra = {"raw_cluster_id": clustering.labels, **extra}
    bank = bank_from_signal(ids, signal, coords=coords, metadata=params, extra_columns=extra)
    samples = bank.table.copy()
    if not bank.has_clusters:  # the per-sample table keeps the analysis' clusters (plots, cluster table)
        samples = samples.drop(columns="raw_cluster_id")
        for offset, (column, values) in enumerate((("cluster_id", partition.cluster_id_),
                                                   ("cluster_size", partition.cluster_size_),
                                                   ("largest_cluster_size", partition.largest_cluster_size_))):
            samples.insert(1 + offset, column, values)
    samples.insert(samples.columns.get_loc("cluster_id") + 1, "raw_cluster_id", clustering.labels)
    samples.insert(samples.columns.get_loc("raw_cluster_id") + 1, "is_noise", clustering.labels == -1)
    samples["weight"] = gfl_weight(samples["likelihood"].to_numpy(), eta=eta, gamma=gamma)
    samples = _merge_metadata(samples, metadata)
    clusters = _cluster_table(samples)
    alignment, by_value = None, {}
    if metadata is not None:
        if attributes is None:  # only the dataset's own columns, never the analysis' results
            attributes = [c for c in attribute_columns(samples[[c for c in samples.columns if c in set(metadata.columns)
                                                                 or c.startswith("meta_")]])]
        if attributes:
            alignment, by_value = align(samples, attributes)
    timings["likelihood"] = time.perf_counter() - started
    if faithfulness:
        from deqlib.stability import faithfulness as measure_faithfulness

        started = time.perf_counter()
        params["faithfulness"] = measure_faithfulness(vectors, coords, clustering.labels, clusterer,
                                                      random_state=seed if seed is not None else 0)
        timings["faithfulness"] = time.perf_counter() - started
    params["cached"] = cached
    return AnalysisResult(samples=samples, clusters=clusters, params=params, bank=bank, timings=timings,
                          alignment=alignment, likelihood_by_value=by_value)


def _merge_metadata(samples: pd.DataFrame, metadata: pd.DataFrame | None) -> pd.DataFrame:
    if metadata is None:
        if "location" not in samples.columns:
            samples.insert(1, "location", samples["sample_id"])
        return samples
    if "sample_id" not in metadata.columns:
        raise ValueError(f"metadata needs a 'sample_id' column to merge on; it has {list(metadata.columns)}")
    meta = metadata.copy()
    meta["sample_id"] = meta["sample_id"].astype(str)
    if meta["sample_id"].duplicated().any():
        raise ValueError("metadata lists some sample_id more than once")
    clashes = [c for c in meta.columns if c != "sample_id" and c in samples.columns]
    meta = meta.rename(columns={c: f"meta_{c}" for c in clashes})
    merged = samples.merge(meta, on="sample_id", how="left", validate="one_to_one")
    if "location" not in merged.columns:
        merged["location"] = merged["sample_id"]
    front = ["sample_id", "location"]
    return merged[front + [c for c in merged.columns if c not in front]]


def _cluster_table(samples: pd.DataFrame) -> pd.DataFrame:
    columns = {"n_samples": ("sample_id", "size"), "likelihood": ("likelihood", "mean"), "weight": ("weight", "mean")}
    for axis in ("x", "y", "z"):
        if axis in samples.columns:
            columns[axis] = (axis, "mean")
    if "outlier_score" in samples.columns:
        columns["mean_outlier_score"] = ("outlier_score", "mean")
    table = samples.groupby("raw_cluster_id").agg(**columns).reset_index().rename(columns={"raw_cluster_id": "cluster_id"})
    table.insert(2, "fraction", table["n_samples"] / len(samples))
    table["is_noise"] = table["cluster_id"] == -1
    return table.sort_values(["n_samples", "cluster_id"], ascending=[False, True]).reset_index(drop=True)
