"""The analysis as one call: images (or embeddings) -> t-SNE -> clusters -> likelihoods -> weights.

:func:`analyze` chains the stages and caches each on disk under a key made of its inputs:

* embeddings: :func:`deqlib.embed.embed_source`'s own shard cache (by source and encoder);
* reduction: ``<cache>/reduce/<key>.npz`` with key = hash(embedding content, reducer params);
* clustering: ``<cache>/cluster/<key>.npz`` with key = hash(reduction key, clusterer params).

So changing eps reuses the t-SNE, and a different encoder (different vectors) recomputes
everything after it. Likelihoods and weights take milliseconds and are always recomputed.

What runs is a :class:`deqlib.stages.Stages` (reducer, clusterer, noise policy, rarity signal,
mode, seed, eta and gamma) made by :func:`deqlib.stages.build_stages`, the one place that knows
the parts and the modes' defaults; :func:`analyze` takes it as ``stages=`` beside the data and a
few run options (cache, progress, faithfulness). ``Stages``, ``build_stages`` and ``MODES`` are
re-exported here for convenience. In ``mode="reference"`` the embeddings are computed in float32
whatever the device (bf16 would move a quarter of the likelihoods).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
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
from deqlib._validation import check_embeddings, duplicate_groups
from deqlib.alignment import align, attribute_columns
from deqlib.bank import LikelihoodBank, bank_from_signal, export_official_pickle, write_bank
from deqlib.cluster import ClusterResult
from deqlib.faithfulness import faithfulness as measure_faithfulness
from deqlib.likelihood import ClusterSignal, RarityContext
from deqlib.progress import stage_message
from deqlib.reduce import check_not_all_identical
from deqlib.samples_csv import read_samples_csv, write_samples_csv
from deqlib.stages import MODES, Stages, build_stages, checked_stages
from deqlib.weights import gfl_weight, weight_scheme_record

__all__ = ["MODES", "AnalysisResult", "DegenerateClusteringWarning", "DuplicateEmbeddingsWarning", "Stages", "analyze",
           "build_stages", "default_bank_path", "duplicate_groups", "embeddings_from_source", "read_samples_csv",
           "run_digest", "write_samples_csv"]

logger = logging.getLogger(__name__)


class DuplicateEmbeddingsWarning(UserWarning):
    """Many samples have exactly the same vector (copies of one image, or an encoder that saturates)."""


#: A group of identical vectors this large, or duplicates making up this share of the samples, is
#: reported with a warning (smaller ones in the log and in ``params['embedding']['duplicates']``).
DUPLICATE_GROUP_WARNING = 10
DUPLICATE_SHARE_WARNING = 0.01


def _report_duplicates(ids: list[str], first: np.ndarray, counts: np.ndarray) -> dict:
    """What the duplicates were (for the bank's metadata), with a warning when they are many."""
    n_copies = int((counts - 1).sum())
    largest = int(counts.max()) if counts.size else 0
    record = {"n_distinct": int(counts.size), "n_groups": int((counts > 1).sum()), "n_copies": n_copies,
              "largest_group": largest}
    if n_copies == 0:
        return record
    example = ids[int(first[int(np.argmax(counts))])]
    message = (f"{n_copies + int((counts > 1).sum())} of {len(ids)} samples are identical vectors in "
               f"{record['n_groups']} groups (largest: {largest} copies of sample {example!r}); each group gets one "
               "position in the map and one likelihood, counted once per sample. If they are duplicate images, "
               "drop the copies from the dataset (or pass the embeddings without them) so that they do not make "
               "their cluster look common")
    if largest >= DUPLICATE_GROUP_WARNING or n_copies >= DUPLICATE_SHARE_WARNING * len(ids):
        warnings.warn(message, DuplicateEmbeddingsWarning, stacklevel=3)
    else:
        logger.info(message)
    return record


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

    @property
    def run_id(self) -> str:
        """8 hex digits naming this run: a digest of its clustering's cache key (which hashes the
        embedding vectors and ids, the reducer's and the clusterer's parameters, seeds included),
        the mode, noise policy, rarity signal and its parameters, eta and gamma. Another
        subsample, seed or parameter gives another id; the same run again the same id."""
        meta = self.bank.metadata
        return run_digest(self.params["cluster"].get("key"), self.params["mode"], self.params["noise_policy"],
                          meta.get("signal", "cluster"), meta.get("signal_params"), self.params["eta"],
                          self.params["gamma"])

    def default_path(self, encoder: str | None = None) -> Path:
        """This run's own bank path (:func:`default_bank_path` with its N and :attr:`run_id`);
        ``encoder``: the name for the file (default: the one the embeddings were made with)."""
        encoder = encoder or self.params["embedding"].get("encoder") or "precomputed"
        return default_bank_path(self.params["dataset"], self.params["mode"], encoder, self.params["noise_policy"],
                                 signal=self.bank.metadata.get("signal", "cluster"), n_samples=len(self.bank),
                                 run_id=self.run_id)

    def write(self, path: str | Path) -> Path:
        """Write the bank as Parquet (atomic)."""
        return write_bank(path, self.bank)

    def export_official(self, path: str | Path, missing: str = "error", expected_ids=None) -> Path:
        """Write the official forks' pickle (atomic); ``missing`` says what to do with samples whose
        images could not be embedded (see :func:`deqlib.bank.export_official_pickle`)."""
        return export_official_pickle(self.bank, path, missing=missing, expected_ids=expected_ids)

    def write_samples_csv(self, path: str | Path) -> Path:
        """Write :attr:`samples` as CSV (atomic), every text field quoted (:func:`write_samples_csv`)."""
        return write_samples_csv(self.samples, path)

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


def default_bank_path(dataset: str, mode: str, encoder: str, noise_policy: str, signal: str = "cluster",
                      n_samples: int | None = None, run_id: str | None = None) -> Path:
    """Where a run's bank goes by default: ``data/processed/<name>.parquet``, one file per run.

    ``<name>`` is ``<dataset>_<encoder>_<mode>_<noise policy>_n<N>_<run id>`` for eq. 3 (signal
    ``'cluster'``); another rarity signal replaces the noise policy by its name
    (``..._<mode>_knn-density_n<N>_<run id>``). ``n_samples`` (``_n<N>``) and ``run_id`` (a digest
    of everything that makes the bank, :attr:`AnalysisResult.run_id`) keep runs with another
    subsample size, another seed or other parameters from overwriting each other's bank (a sweep
    of notebook 00 at N = 1,000 never replaces the quickstart's 5,000-sample bank); the same run
    again writes the same path. Characters other than letters, digits and ``-._`` become ``-``.
    """
    last = noise_policy if signal == "cluster" else signal
    name = f"{dataset}_{encoder}_{mode}_{last}"
    if n_samples is not None:
        name += f"_n{int(n_samples)}"
    if run_id:
        name += f"_{run_id}"
    safe = "".join(ch if ch.isalnum() or ch in "-._" else "-" for ch in name)
    return paths.processed_dir() / f"{safe}.parquet"


def run_digest(*parts: Any) -> str:
    """A short digest (8 hex digits) of ``parts`` (JSON-able values or arrays): a run id for file names."""
    return _hash("run", *parts)[:8]


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


def _cache_root(cache) -> Path | None:
    """The stage cache folder ``cache`` names (True: the workbook's, False: none, else the path)."""
    if cache is True:
        return paths.interim_dir() / "analysis"
    if cache is False:
        return None
    if isinstance(cache, (str, os.PathLike)):
        return Path(cache)
    raise TypeError(f"cache must be True (the workbook's cache folder), False (no cache) or a folder path, "
                    f"got {cache!r}")


def _load_npz(path: Path | None, keys: tuple[str, ...] = (), finite: tuple[str, ...] = (),
              **expected_rows: int) -> dict | None:
    """A stage cache file's arrays, or None when absent or damaged (then the stage is recomputed).

    ``keys`` must all be present; ``expected_rows`` names arrays and their required length;
    ``finite`` names arrays whose every value must be a finite number (coordinates: a NaN would
    reach the bank as a NaN likelihood or a wrong cluster). A file that does not match (or
    cannot be read: truncated zip, short member, missing key, bad JSON, a non-finite value) is
    reported with its path and ignored; the recomputed result replaces it atomically.
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
        for name in finite:
            values = np.asarray(arrays[name])
            if values.dtype.kind not in "fiu":
                raise ValueError(f"{name!r} holds {values.dtype}, not numbers")
            bad_rows = np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)).all(axis=1))
            if bad_rows.size:
                raise ValueError(f"{name!r} has non-finite values (NaN or inf) in {bad_rows.size} rows, "
                                 f"first {bad_rows[:5].tolist()}")
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
                       "or make the folder writable, or pass another cache= folder", path, exc.strerror or exc)


# ------------------------------------------------------------------------------------- inputs
def embeddings_from_source(source, encoder, embed_options: dict | None = None, progress: bool = False,
                           mode: str = "default"):
    """A source's embeddings as an analysis uses them (:func:`deqlib.embed.embed_source`, cached).

    Parameters
    ----------
    source : ImageSource or str
        The images (or a source kind for :func:`deqlib.sources.open_source`).
    encoder : str or Encoder
    embed_options : dict, optional
        Passed to :func:`deqlib.embed.embed_source`; ``cache_dir`` defaults to
        ``deqlib.paths.interim_dir() / 'embeddings'``.
    progress : bool, default=False
    mode : {'default', 'reference'}, default='default'
        ``'reference'`` embeds in float32, as the official code does (another precision is refused).

    Returns
    -------
    tuple
        ``(sample_ids, vectors, metadata, info)``: the embedded samples' ids, their vectors, the
        source's metadata table and what the embedding recorded (``dataset``, ``encoder``,
        ``precision``, ``n_failed``, ``failed_sample_ids``, ``source_fingerprint``, ...).
    """
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
    stage_message(logger, "deq analyze", progress, message)


# ------------------------------------------------------------------------------------- analyze
def analyze(source=None, encoder="efficientnet-lite0", stages: Stages | None = None, *, embeddings=None,
            sample_ids=None, metadata: pd.DataFrame | None = None, dataset: str | None = None,
            attributes: list[str] | None = None, cache: bool | str | os.PathLike = True,
            embed_options: dict | None = None, progress: bool = False, faithfulness: bool = False) -> AnalysisResult:
    """Run the analysis (steps 1-4 of the method) and return samples, clusters, params and bank.

    What runs is ``stages`` (:func:`deqlib.stages.build_stages`: reducer, clusterer, noise
    policy, rarity signal, mode, seed, eta and gamma); everything else here is the data and how
    to run it. ``analyze(embeddings=X)`` runs ``build_stages()``, the default analysis;
    ``analyze(source, stages=build_stages("reference", preset="kitti"))`` the official one.

    Parameters
    ----------
    source : ImageSource or str, optional
        Images to embed (or a source kind for :func:`deqlib.sources.open_source`). Leave None
        and pass ``embeddings`` + ``sample_ids`` to start from vectors.
    encoder : str or Encoder, default='efficientnet-lite0'
        Used with ``source`` only.
    stages : Stages, optional
        From :func:`deqlib.stages.build_stages`; None: ``build_stages()`` (openTSNE, DBSCAN eps
        1.0 / min_samples 10 in official units, noise ``'singleton'``, seed 33, eta 1, gamma 5).
        They are checked against their mode and cloned, not changed. A reducer passed to
        ``build_stages`` as an instance keeps its own ``random_state``.
    embeddings : array (N, D), optional
        Precomputed embeddings (rows must be finite).
    sample_ids : sequence of str, optional
        Ids of ``embeddings`` rows (default ``'0'..'N-1'``).
    metadata : DataFrame, optional
        Per-sample attributes with a ``sample_id`` column (merged by id). With a ``source`` its
        own ``metadata()`` is used unless this is given.
    dataset : str, optional
        Name recorded in the bank (default: the source's name, or ``'embeddings'``).
    attributes : list of str, optional
        Metadata columns to align the clusters with (default: every attribute-like column).
    cache : bool or path, default=True
        The reduce/cluster stage caches: True reads and writes them under
        ``deqlib.paths.interim_dir() / 'analysis'``, a path under that folder instead, False recomputes
        every stage and writes nothing.
    embed_options : dict, optional
        Passed to :func:`deqlib.embed.embed_source` (``batch_size``, ``device``, ``cache_dir``, ...).
    progress : bool, default=False
        One line per stage on stdout (:func:`deqlib.progress.stage_message`) and the t-SNE's
        progress bar.
    faithfulness : bool, default=False
        Also measure how faithful the 3-D map is to the embeddings (trustworthiness, 10-NN
        recall, the same clustering in PCA-50 space; :func:`deqlib.faithfulness.faithfulness`, on
        a sample of 5,000): ``params['faithfulness']``, shown by :meth:`AnalysisResult.summary`.

    Returns
    -------
    AnalysisResult
    """
    stages = checked_stages(stages)
    reducer, clusterer, noise_policy = stages.reducer, stages.clusterer, stages.noise_policy
    mode, preset, seed, eta, gamma = stages.mode, stages.preset, stages.seed, stages.eta, stages.gamma
    cache_root = _cache_root(cache)
    timings: dict[str, float] = {}
    cached: dict[str, bool] = {}

    # 1. embeddings
    started = time.perf_counter()
    if (source is None) == (embeddings is None):
        raise ValueError("pass either source (images to embed) or embeddings (precomputed vectors), not both")
    if source is not None:
        _say(progress, "embedding images")
        ids, vectors, source_meta, embed_info = embeddings_from_source(source, encoder, embed_options, progress,
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

    # Identical vectors get one position in the map: a t-SNE spreads copies of one vector apart, and
    # the clusterer then split them (2 vectors x 100 copies: 145 samples at p = 0.043, the rest up to 1).
    distinct, inverse, counts = duplicate_groups(vectors)
    duplicates = _report_duplicates(ids, distinct, counts)
    has_duplicates = duplicates["n_copies"] > 0

    # 2. reduction
    started = time.perf_counter()
    reduce_key = _hash(embedding_key, reducer.cache_key(), *(("distinct rows",) if has_duplicates else ()))
    reduce_path = cache_root / "reduce" / f"{reduce_key}.npz" if cache_root is not None else None
    stored = _load_npz(reduce_path, ("params",), finite=("coords",), coords=len(ids))
    if stored is not None:
        coords, reduce_params = stored["coords"], json.loads(str(stored["params"]))
        cached["reduce"] = True
        _say(progress, f"reduce: {len(ids)} points from cache {reduce_path}")
    else:
        _say(progress, f"reduce: {type(reducer).__name__} on {len(ids)} x {vectors.shape[1]} ...")
        fitted = vectors[distinct] if has_duplicates else vectors
        if len(distinct) == 1 and len(ids) > 1:
            check_not_all_identical(vectors)  # "all N embeddings are the same vector ... drop the duplicates"
        try:
            if progress and "progress" in inspect.signature(reducer.fit_transform).parameters:
                coords = reducer.fit_transform(fitted, progress=True)  # a t-SNE progress bar
            else:
                coords = reducer.fit_transform(fitted)
        except ValueError as exc:
            if not has_duplicates:
                raise
            raise ValueError(f"only {len(distinct)} distinct vectors among {len(ids)} samples "
                             f"({duplicates['n_copies']} are copies), and the map is made of the distinct ones: "
                             f"drop the duplicates or add samples ({exc})") from None
        if has_duplicates:
            coords = np.asarray(coords)[inverse]
        reduce_params = getattr(reducer, "params_", reducer.cache_key())
        _save_npz(reduce_path, coords=coords, params=np.array(json.dumps(reduce_params, default=str)))
        cached["reduce"] = False
    timings["reduce"] = time.perf_counter() - started
    _say(progress, f"reduce: done in {timings['reduce']:.1f}s")

    # 3. clustering
    started = time.perf_counter()
    cluster_key = _hash(reduce_key, clusterer.cache_key())
    cluster_path = cache_root / "cluster" / f"{cluster_key}.npz" if cache_root is not None else None
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
        "weight_scheme": weight_scheme_record("eq4", eta=float(eta), gamma=float(gamma)),
        "seed": seed, "preset": preset, "embedding": {**embed_info, "n_samples": len(ids), "duplicates": duplicates,
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
