"""Step one of the method: a dataset's images -> one float32 vector per sample, cached on disk.

:func:`embed_source` runs any :class:`~deqlib.encoders.Encoder` over any image source
(``deqlib.sources.ImageSource``: ``sample_ids``, ``load(index, draft=None)``, ``metadata()``):

* **fast on a GPU, sane on a CPU**: a DataLoader whose worker processes decode and resize
  (they ship ``uint8`` tensors; normalisation happens on the device), pinned memory and
  non-blocking copies, ``torch.inference_mode``, autocast (bf16 where supported, else fp16)
  and channels_last on CUDA; float32 on every CPU by default, so the vectors (and the banks made
  from them) do not depend on the CPU type; bf16 autocast on a CPU only when asked for
  (``precision="bf16"``: faster on CPUs with native bf16, AMX / AVX512-BF16).
  Batch size, decode workers and CPU threads come from :data:`RUN_SETTINGS` (measured per
  device and model family, with :data:`CPU_FP32_SETTINGS` for float32 CPU runs; user
  arguments win). Measured throughput: ``benchmarks/embedding/README.md``.
* **never silently short**: an image that cannot be decoded is skipped, logged, listed in
  ``failures.csv`` and counted; ``len(result.sample_ids) + len(result.failures) == len(source)``.
* **resumable cache that never lies** (:mod:`deqlib.embed_cache`): vectors in atomic shards under
  ``cache_dir/<source>/<encoder key>/`` (:func:`cache_folder`), keyed by the encoder's
  :meth:`~deqlib.encoders.Encoder.cache_key` and the precision; an interrupted run keeps every
  complete shard, an image replaced in place is embedded again, a damaged shard is set aside and
  re-embedded, an unwritable cache degrades to memory with one warning. The cache stores raw
  (un-normalised) vectors, and ``normalize=True`` applies L2 normalisation on the way out, so
  both views share one cache.
* **torchrun**: when ``torch.distributed`` is initialised (or :func:`init_distributed` is
  called under ``torchrun``), each rank embeds a strided share of the missing samples and
  writes its own shards; rank 0 checks that every sample is embedded or failed exactly once,
  then writes the index; every rank returns the same merged result.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from deqlib import __version__
from deqlib.embed_cache import (  # re-exported: the cache's public names, as before the split
    DamagedCacheError,
    ShardStore,
    cache_folder,
    cache_key,
    printable_id,
    sample_stamps,
)
from deqlib.encoders import (  # re-exported: the architecture contract names them in deqlib.embed
    ENCODER_NAMES,
    ClipEncoder,
    EfficientNetLite0Encoder,
    Encoder,
    ResNet101Encoder,
    WeightsUnavailableError,
    get_encoder,
)

__all__ = [
    "Encoder",
    "EfficientNetLite0Encoder",
    "ResNet101Encoder",
    "ClipEncoder",
    "WeightsUnavailableError",
    "ENCODER_NAMES",
    "get_encoder",
    "EmbeddingResult",
    "RunSettings",
    "RUN_SETTINGS",
    "CPU_FP32_SETTINGS",
    "run_settings",
    "resolve_device",
    "resolve_precision",
    "cache_key",
    "embed_source",
    "init_distributed",
    "cache_folder",
    "sample_stamps",
    "DamagedCacheError",
]

logger = logging.getLogger(__name__)

DEFAULT_SHARD_SIZE = 1024  # samples per cache shard: the most work an interruption can lose
_GATHER_ATTEMPTS = 3  # a shard found damaged while reading vectors is quarantined and re-embedded
FAILURE_COLUMNS = ["sample_id", "location", "error"]
# What counts as "this image is bad" (skip, log, list) rather than "the run is broken" (raise).
# ImageLoadError from deqlib.sources is an OSError; PIL raises SyntaxError/ValueError for some
# corrupt PNGs and oversized images.
IMAGE_ERRORS = (OSError, SyntaxError, ValueError)


# ---------------------------------------------------------------------------------------------
# Run settings per device and model family
@dataclass(frozen=True)
class RunSettings:
    """How to feed one model on one kind of device.

    ``num_workers`` DataLoader processes decode and resize; ``torch_threads`` intra-op threads
    run the model in the main process (CPU only; None leaves torch's default).
    """

    batch_size: int
    num_workers: int
    torch_threads: int | None = None
    channels_last: bool = True


#: Measured defaults (benchmarks/embedding/README.md; 2-core AMD EPYC with AVX512-BF16,
#: 2026-11-25). The CPU rows were measured with bf16 autocast, which a CPU run now uses only when
#: asked for (``precision="bf16"``); the default on a CPU is float32 (:func:`resolve_precision`),
#: which takes :data:`CPU_FP32_SETTINGS` where a float32 entry was measured, else the same row.
#: EfficientNet-Lite0 is cheap enough that decoding matters: one decode worker per spare core,
#: the model on the remaining core, batch 4 (bf16: 196 img/s for the model alone on one
#: thread against 159 at batch 8; 93 img/s from 1242x375 PNGs, 174 from 1600x900 JPEGs).
#: ResNet101@384 is compute-bound: one decode worker, torch's default threads, batch 4 with
#: bf16. CLIP ViT-B/32 prefers batch 32 (22 img/s vs 15 at batch 1, ENVIRONMENT.md) and
#: float32 (bf16 autocast made it slower there: leave it at the float32 default). ``-1`` workers/threads are resolved from the
#: machine's core count by :func:`run_settings`; ``None`` threads leaves torch's default.
RUN_SETTINGS: dict[tuple[str, str], RunSettings] = {
    ("cpu", "efficientnet"): RunSettings(batch_size=4, num_workers=-1, torch_threads=-1, channels_last=True),
    ("cpu", "resnet"): RunSettings(batch_size=4, num_workers=1, torch_threads=None, channels_last=True),
    ("cpu", "vit"): RunSettings(batch_size=32, num_workers=1, torch_threads=None, channels_last=False),
    ("cpu", "convnet"): RunSettings(batch_size=4, num_workers=-1, torch_threads=-1, channels_last=True),
    # GPUs: large batches, as many decode workers as there are cores (up to 8): decoding is
    # the bottleneck there, not the model.
    ("cuda", "efficientnet"): RunSettings(batch_size=256, num_workers=-1, channels_last=True),
    ("cuda", "resnet"): RunSettings(batch_size=128, num_workers=-1, channels_last=True),
    ("cuda", "vit"): RunSettings(batch_size=256, num_workers=-1, channels_last=False),
    ("cuda", "convnet"): RunSettings(batch_size=128, num_workers=-1, channels_last=True),
}

#: CPU settings when the model runs in float32 (``precision="auto"`` or ``"fp32"``, the CPU
#: default), where they differ from the table above. ResNet101@384 in float32 is so compute-bound
#: that batching and a decode worker cost more than they give: batch 1 with decoding in the
#: main process measured 7.8 img/s against 6.6 at batch 4 with a worker (naive loop 7.0).
CPU_FP32_SETTINGS: dict[str, RunSettings] = {
    "resnet": RunSettings(batch_size=1, num_workers=0, torch_threads=None, channels_last=True),
}


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


def run_settings(device: torch.device | str, encoder: Encoder, batch_size: int | None = None,
                 num_workers: int | None = None, num_threads: int | None = None,
                 precision: str = "auto") -> RunSettings:
    """The table's settings for ``(device type, encoder family)``, with user overrides applied.

    ``precision`` is the requested compute precision: on a CPU where it resolves to float32 (the
    default), :data:`CPU_FP32_SETTINGS` replaces the (bf16-tuned) table entry for the family.
    """
    device = torch.device(device)
    kind = "cuda" if device.type == "cuda" else "cpu"
    table = RUN_SETTINGS.get((kind, encoder.family)) or RUN_SETTINGS[(kind, "convnet")]
    if kind == "cpu" and encoder.family in CPU_FP32_SETTINGS \
            and resolve_precision(device, precision) == "fp32":
        table = CPU_FP32_SETTINGS[encoder.family]
    cores = _cpu_count()
    workers = table.num_workers
    if workers < 0:  # CPU: one decoder per core but one (the model needs one); GPU: up to 8
        workers = max(1, cores - 1) if kind == "cpu" else min(8, cores)
    threads = table.torch_threads
    if threads is not None and threads < 0:
        threads = max(1, cores - (workers if num_workers is None else int(num_workers)))
    if batch_size is not None:
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        table = dataclasses.replace(table, batch_size=int(batch_size))
    if num_workers is not None:
        if int(num_workers) < 0:
            raise ValueError(f"num_workers must be >= 0 (0 decodes in the main process), got {num_workers}")
        workers = int(num_workers)
    if num_threads is not None:
        if int(num_threads) < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        threads = int(num_threads)
    return dataclasses.replace(table, num_workers=workers, torch_threads=threads)


def resolve_device(device: str | torch.device = "auto", local_rank: int | None = None) -> torch.device:
    """``"auto"``: this rank's CUDA device when CUDA is available, else the CPU."""
    if isinstance(device, torch.device):
        return device
    if device in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank if local_rank is not None else torch.cuda.current_device())
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"device={device!r} is not a torch device; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available here; use device='cpu' or 'auto'")
    return resolved


PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AMX or AVX512-BF16; Linux ``/proc/cpuinfo``).

    Only informative (benchmarks, ``precision="bf16"`` advice): ``precision="auto"`` is float32 on
    every CPU. oneDNN emulates bf16 on older CPUs, which is slower than float32 there.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " amx_bf16" in flags or " avx512_bf16" in flags


def resolve_precision(device: torch.device, precision: str = "auto") -> str:
    """The compute precision a run uses: ``"auto"`` is bf16 on CUDA when supported (else fp16) and
    float32 on every CPU, so the same code gives the same vectors, and banks, on any CPU type
    (before, "auto" autocast to bf16 on CPUs with native bf16 and stayed float32 elsewhere).

    ``"bf16"`` on a CPU is an explicit opt-in, recorded in the cache key and the bank: on a CPU with
    native bf16 it was faster (measured on a 2-core AVX512-BF16 CPU, end to end ResNet101@384 1.6x
    and EfficientNet-Lite0 1.2-2x faster than float32, cosine to the float32 vectors mean 0.997,
    minimum 0.985 on 3,000 Fashion-MNIST images and the same 1-NN accuracy within noise (0.802 vs
    0.807; benchmarks/embedding/results/fmnist-knn-*.json); CLIP ViT-B/32 slower); on a CPU
    without it oneDNN emulates bf16, slower than float32. ``"fp16"`` is for CUDA only. Outputs
    are float32 whatever the compute precision.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not one of {PRECISIONS}; 'fp32' computes exactly")
    if precision != "auto":
        if precision == "fp16" and device.type != "cuda":
            raise ValueError("precision='fp16' is for CUDA; on a CPU use 'bf16' or 'fp32'")
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


_AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


# ---------------------------------------------------------------------------------------------
# Distributed helpers
def _dist():
    """``(rank, world_size, local_rank)`` of an initialised process group, else ``(0, 1, None)``."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        local = os.environ.get("LOCAL_RANK")
        return torch.distributed.get_rank(), torch.distributed.get_world_size(), int(local) if local else None
    return 0, 1, None


def init_distributed() -> bool:
    """Initialise torch.distributed from torchrun's environment (``WORLD_SIZE`` > 1).

    NCCL when this machine has CUDA, gloo otherwise. Returns whether a process group is active.
    """
    if not torch.distributed.is_available():
        return False
    if torch.distributed.is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    torch.distributed.init_process_group(backend=backend)
    return True


def _all_gather(obj: Any, world_size: int) -> list:
    if world_size == 1:
        return [obj]
    gathered: list = [None] * world_size
    torch.distributed.all_gather_object(gathered, obj)
    return gathered


def _barrier(world_size: int) -> None:
    if world_size > 1:
        torch.distributed.barrier()


# ---------------------------------------------------------------------------------------------
# Loading: a Dataset that never raises for a bad image, and a collate that keeps the good ones
class _EncodedImages(torch.utils.data.Dataset):
    """``index -> (index, uint8 tensor or None, error or None)``; picklable for worker processes."""

    def __init__(self, source, encoder: Encoder, indices: Sequence[int]):
        self.source = source
        self.encoder = encoder
        self.indices = list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int):
        index = self.indices[position]
        try:
            image = self.source.load(index, draft=self.encoder.draft_size)
            return index, self.encoder.transform(image), None
        except IMAGE_ERRORS as exc:
            return index, None, f"{type(exc).__name__}: {exc}"


def _stop_quietly_on_sigterm(worker_id: int) -> None:
    """A worker ends quietly on SIGTERM (a scheduler's, sent to the group): torch's worker loop exits on
    KeyboardInterrupt, where a worker killed by the signal is reported from the parent as a traceback."""
    import signal
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def _collate_tolerant(items):
    """Stack the decoded images; keep failed ones aside as ``(index, error)``."""
    good = [(index, tensor) for index, tensor, error in items if error is None]
    failed = [(index, error) for index, _, error in items if error is not None]
    indices = [index for index, _ in good]
    images = torch.stack([tensor for _, tensor in good]) if good else None
    return indices, images, failed


# ---------------------------------------------------------------------------------------------
@dataclass
class EmbeddingResult:
    """Vectors of every sample that could be embedded, and the list of those that could not.

    Attributes
    ----------
    sample_ids : list of str
        Embedded samples, in the source's order.
    vectors : np.ndarray, float32, shape (len(sample_ids), dim)
    failures : pandas.DataFrame
        ``sample_id, location, error`` for every sample that could not be decoded.
        ``len(sample_ids) + len(failures) == len(source)``, always.
    stats : dict
        Counts (``n_samples``, ``n_embedded``, ``n_cached``, ``n_failed``), speed
        (``images_per_s`` over the samples embedded in this run, ``seconds``), run settings,
        device, encoder cache key and versions.
    cache_path : Path or None
        The cache folder (shards, ``index.parquet``, ``failures.csv``, ``manifest.json``).
    """

    sample_ids: list[str]
    vectors: np.ndarray
    failures: pd.DataFrame
    stats: dict = field(default_factory=dict)
    cache_path: Path | None = None

    def summary(self) -> str:
        s = self.stats
        return (
            f"{s['n_samples']} samples: {len(self.sample_ids)} embedded "
            f"({s['n_embedded']} now, {s['n_cached']} from cache), {len(self.failures)} failed; "
            f"{s['images_per_s']:.1f} images/s on {s['device']}"
            + (f"; cache {self.cache_path}" if self.cache_path else "")
        )


def _failure_frame(source, failed: dict[int, str], ids: Sequence[str]) -> pd.DataFrame:
    if not failed:
        return pd.DataFrame({c: pd.Series(dtype=str) for c in FAILURE_COLUMNS})
    order = sorted(failed)
    try:
        locations = source.metadata()["location"].astype(str).tolist()
        location = [locations[i] for i in order]
    except Exception:  # metadata is a convenience here; the ids and errors are what matter
        location = [""] * len(order)
    return pd.DataFrame({"sample_id": [ids[i] for i in order], "location": location,
                         "error": [failed[i] for i in order]})


def embed_source(source, encoder: Encoder | str, cache_dir: str | os.PathLike | None = None,
                 batch_size: int | None = None, num_workers: int | None = None,
                 device: str | torch.device = "auto", normalize: bool = False, progress: bool = True,
                 shard_size: int = DEFAULT_SHARD_SIZE, num_threads: int | None = None,
                 precision: str = "auto") -> EmbeddingResult:
    """Embed every image of ``source`` with ``encoder``, reusing and extending the cache.

    Parameters
    ----------
    source : ImageSource
        ``sample_ids``, ``__len__``, ``load(index, draft=None) -> RGB PIL image`` (raising an
        ``OSError`` such as ``ImageLoadError`` for a bad image), ``metadata()``; picklable.
    encoder : Encoder or str
        An encoder or a name for :func:`get_encoder` (e.g. ``"efficientnet-lite0"``).
    cache_dir : path, optional
        Cache root; vectors go to ``cache_folder(cache_dir, source, encoder)``. None keeps them in
        memory only (no resume). Required under torch.distributed.
    batch_size, num_workers, num_threads : int, optional
        Override :data:`RUN_SETTINGS` for this device and model family (``num_workers=0`` decodes
        in the main process; ``num_threads`` is torch's intra-op threads for a CPU run).
    device : str or torch.device, default "auto"
        ``"auto"`` picks this rank's CUDA device when available, else the CPU.
    normalize : bool, default False
        L2-normalise the returned vectors (the cache keeps raw vectors).
    progress : bool, default True
        Show a tqdm progress bar (rank 0 only).
    shard_size : int, default 1024
        Samples per cache shard: the most an interruption can lose.
    precision : {"auto", "fp32", "bf16", "fp16"}, default "auto"
        Compute precision (autocast); see :func:`resolve_precision`. Part of the cache key.

    Returns
    -------
    EmbeddingResult
    """
    if isinstance(encoder, str):
        encoder = get_encoder(encoder)
    if not isinstance(encoder, Encoder):
        raise TypeError(f"encoder must be a deqlib Encoder or a name for get_encoder, got {type(encoder).__name__}")
    if int(shard_size) < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    ids = [str(s) for s in source.sample_ids]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{getattr(source, 'name', source)!r} lists duplicate sample ids; ids must be unique")
    rank, world_size, local_rank = _dist()
    if world_size > 1 and cache_dir is None:
        raise ValueError("under torch.distributed, pass cache_dir: the ranks merge their vectors through it")
    device = resolve_device(device, local_rank)
    settings = run_settings(device, encoder, batch_size, num_workers, num_threads, precision)
    precision = resolve_precision(device, precision)
    encoder_key = cache_key(encoder, precision)
    folder = cache_folder(cache_dir, source, encoder, precision) if cache_dir is not None else None
    if folder is not None and rank == 0:
        ShardStore(folder, encoder_key)  # create folder and encoder.json once
    _barrier(world_size)
    store = ShardStore(folder, encoder_key)
    stamps = sample_stamps(source)
    store.stamps = dict(zip(ids, stamps))
    _warn_non_utf8(ids)

    started = time.perf_counter()
    n_cached = 0
    n_now = 0
    build_seconds = 0.0
    slowest = 0.0
    for attempt in range(_GATHER_ATTEMPTS):
        cached = store.snapshot().locate(ids, stamps)
        _barrier(world_size)  # every rank has listed the cache before any rank adds to it
        todo = [i for i, sample_id in enumerate(ids) if sample_id not in cached]
        my_todo = todo[rank::world_size]
        if attempt == 0:
            n_cached = len(ids) - len(todo)

        embedded_now: list[str] = []
        failed: dict[int, str] = {}
        embed_seconds = 0.0
        if my_todo:
            embedded_now, failed, build, embed_seconds = _embed_indices(
                source, encoder, ids, my_todo, store, device, settings, shard_size, rank,
                autocast_dtype=_AUTOCAST_DTYPES[precision], progress=progress and rank == 0)
            build_seconds += build

        # Merge: every sample cached before, embedded now by exactly one rank, or failed.
        per_rank = _all_gather((embedded_now, failed, embed_seconds), world_size)
        all_failed: dict[int, str] = {}
        counts: dict[str, int] = {}
        for rank_ids, rank_failed, _ in per_rank:
            for sample_id in rank_ids:
                counts[sample_id] = counts.get(sample_id, 0) + 1
            all_failed.update(rank_failed)
        duplicated = [s for s, c in counts.items() if c > 1]
        if duplicated:
            raise RuntimeError(f"{len(duplicated)} samples were embedded by more than one rank, e.g. {duplicated[:3]}")
        n_now += sum(len(r[0]) for r in per_rank)
        slowest += max((r[2] for r in per_rank), default=0.0)
        _barrier(world_size)
        # ONE listing for the lookup, the index and the vectors (see Snapshot).
        snapshot = store.snapshot()
        where = snapshot.locate(ids, stamps)
        missing = [ids[i] for i in range(len(ids)) if ids[i] not in where and i not in all_failed]
        if missing:
            raise RuntimeError(f"{len(missing)} samples are neither embedded nor failed, e.g. {missing[:3]}; "
                               f"another process may be deleting shards of {folder}")
        ok_ids = [s for i, s in enumerate(ids) if i not in all_failed]
        try:
            vectors = snapshot.gather(ok_ids, where, encoder.dim)
            break
        except DamagedCacheError as exc:
            if world_size > 1 or attempt == _GATHER_ATTEMPTS - 1:
                raise RuntimeError(f"{exc}; delete that file and run again (its samples are embedded again)") from exc
            if exc.path is not None and exc.path.exists():
                store.quarantine(exc.path, str(exc))
            else:
                logger.warning("%s; embedding its samples again", exc)

    failures = _failure_frame(source, all_failed, ids)
    if normalize:
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.maximum(norms, np.finfo(np.float32).tiny)
    stats = {
        "n_samples": len(ids),
        "n_embedded": n_now,
        "n_cached": n_cached,
        "n_failed": len(all_failed),
        "images_per_s": n_now / slowest if slowest > 0 else 0.0,
        "seconds": time.perf_counter() - started,
        "model_build_seconds": build_seconds,
        "device": str(device),
        "world_size": world_size,
        "batch_size": settings.batch_size,
        "num_workers": settings.num_workers,
        "torch_threads": settings.torch_threads if settings.torch_threads else torch.get_num_threads(),
        "channels_last": settings.channels_last,
        "normalize": bool(normalize),
        "precision": precision,
        "shard_size": int(shard_size),
        "encoder": encoder_key,
        "source": getattr(source, "name", type(source).__name__),
        "versions": {"deqlib": __version__, "torch": torch.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
    }
    if rank == 0 and folder is not None:
        # Rewrite only what changed: a fully cached run must work on a read-only or full disk.
        changed = store.write_index(snapshot, where, ok_ids, run_ids=ids)
        csv_text = failures.assign(sample_id=failures["sample_id"].map(printable_id)).to_csv(index=False)
        changed = store.write_if_changed("failures.csv", csv_text.encode("utf-8")) or changed
        if changed or n_now or not (folder / "manifest.json").is_file():
            manifest = dict(stats, created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                            sample_count=len(ok_ids), machine=platform.node())
            store.write_if_changed("manifest.json", json.dumps(manifest, indent=1, default=str).encode("utf-8"))
    stats["cache_write_errors"] = list(store.write_errors)
    if all_failed and rank == 0:
        logger.warning("%d of %d images could not be decoded; listed in %s", len(all_failed), len(ids),
                       folder / "failures.csv" if folder else "result.failures")
    _barrier(world_size)
    return EmbeddingResult(ok_ids, vectors, failures, stats, folder)


def _warn_non_utf8(ids: Sequence[str]) -> None:
    bad = [s for s in ids if printable_id(s) != s]
    if bad:
        logger.warning(
            "%d sample ids are not valid UTF-8 (file names in another encoding, e.g. %r): they are embedded, "
            "and written with \\xNN escapes in index.parquet and failures.csv; rename the files to UTF-8 "
            "(e.g. `convmv -f latin1 -t utf-8 -r --notest DIR`) so banks and pickles can hold their ids",
            len(bad), printable_id(bad[0]))


def _embed_indices(source, encoder: Encoder, ids: list[str], indices: list[int], store: ShardStore,
                   device: torch.device, settings: RunSettings, shard_size: int, rank: int,
                   autocast_dtype: torch.dtype | None, progress: bool):
    """Embed ``indices`` and write them to ``store`` in shards; returns ids, failures, timings."""
    from tqdm.auto import tqdm

    on_cuda = device.type == "cuda"
    previous_threads = torch.get_num_threads()
    if not on_cuda and settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    try:
        build_start = time.perf_counter()
        model = encoder.build(device, channels_last=settings.channels_last)
        build_seconds = time.perf_counter() - build_start
        loader = torch.utils.data.DataLoader(
            _EncodedImages(source, encoder, indices), batch_size=settings.batch_size, shuffle=False,
            num_workers=settings.num_workers, collate_fn=_collate_tolerant, pin_memory=on_cuda,
            prefetch_factor=4 if settings.num_workers else None, worker_init_fn=_stop_quietly_on_sigterm)

        embedded: list[str] = []
        failed: dict[int, str] = {}
        pending_ids: list[str] = []
        pending_vectors: list[np.ndarray] = []
        bar = tqdm(total=len(indices), desc=f"embed {encoder.name}", unit="img", disable=not progress)
        start = time.perf_counter()
        with torch.inference_mode():
            for batch_indices, images, batch_failed in loader:
                for index, error in batch_failed:
                    logger.warning("skipping %s: %s", ids[index], error)
                    failed[index] = error
                if images is not None:
                    images = images.to(device, non_blocking=on_cuda)
                    with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                        features = model(images)
                    pending_vectors.append(features.float().cpu().numpy())
                    pending_ids.extend(ids[i] for i in batch_indices)
                while len(pending_ids) >= shard_size:  # flush complete shards as soon as they exist
                    stacked = np.concatenate(pending_vectors)
                    store.write(pending_ids[:shard_size], stacked[:shard_size], rank)
                    embedded.extend(pending_ids[:shard_size])
                    pending_ids, pending_vectors = pending_ids[shard_size:], [stacked[shard_size:]]
                bar.update(len(batch_indices) + len(batch_failed))
        if pending_ids:
            store.write(pending_ids, np.concatenate(pending_vectors), rank)
            embedded.extend(pending_ids)
        embed_seconds = time.perf_counter() - start
        bar.close()
    finally:
        torch.set_num_threads(previous_threads)
    return embedded, failed, build_seconds, embed_seconds
