"""The embedding cache: vectors in atomic shards under ``cache_dir/<source>/<encoder key>/``.

:func:`deqlib.embed.embed_source` keeps its vectors here:

* **resumable**: vectors are written in shards (``.npz`` with ``sample_ids``, ``vectors`` and
  ``stamps``, each written atomically) under :func:`cache_folder`. The folder name hashes the
  encoder's :meth:`~deqlib.encoders.Encoder.cache_key` (model, weights identity, preprocessing)
  and the compute precision (:func:`cache_key`), so a changed model never reuses stale vectors.
  An interrupted run keeps every complete shard; added images embed only the new ones.
* **never lies**: each cached vector carries its image file's ``size:mtime_ns``
  (:func:`sample_stamps`), so an image replaced in place is embedded again; one listing of the
  shards (:class:`Snapshot`) serves the lookup, the index and the vectors, so runs writing the
  same cache at the same time never hand one image's vector to another; a damaged shard is
  reported, set aside (``*.damaged``) and re-embedded (:meth:`ShardStore.quarantine`); an
  unchanged file is never rewritten (:meth:`ShardStore.write_if_changed`: a fully cached run works
  on a read-only disk), and a cache that cannot be written (read-only, disk full) keeps the
  vectors in memory with one warning (:attr:`ShardStore.write_errors`).
  ``docs/robustness.md`` lists the cases and their tests.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from deqlib._atomic import atomic_path, write_bytes_atomic, write_text_atomic
from deqlib.encoders import Encoder

__all__ = ["cache_key", "cache_folder", "sample_stamps", "printable_id", "DamagedCacheError", "Shard", "Snapshot",
           "ShardStore"]

logger = logging.getLogger(__name__)


def _short_hash(text: str, length: int = 16) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def _source_identity(source) -> str:
    """Folder name for a source: its name plus a hash of its root (ids are unique within one root).

    Not the source's fingerprint: adding images to a dataset must keep the cache of the others.
    """
    name = str(getattr(source, "name", type(source).__name__))
    root = getattr(source, "root", None)
    root_text = str(Path(root).expanduser().resolve()) if root is not None else "<default>"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return f"{safe}-{_short_hash(root_text, 8)}"


def cache_key(encoder: Encoder, precision: str) -> dict:
    """The encoder's key plus the compute precision (bf16 vectors differ from float32 ones)."""
    return dict(encoder.cache_key(), precision=precision)


def cache_folder(cache_dir: str | os.PathLike, source, encoder: Encoder, precision: str = "fp32") -> Path:
    """Where :func:`embed_source` keeps ``source``'s vectors for ``encoder`` at ``precision``
    (a resolved precision: ``"fp32"``, ``"bf16"`` or ``"fp16"``)."""
    key = json.dumps(cache_key(encoder, precision), sort_keys=True)
    slug = encoder.name.replace(":", "-").replace("/", "-")
    return Path(cache_dir) / _source_identity(source) / f"{slug}-{_short_hash(key)}"


class DamagedCacheError(RuntimeError):
    """A cache file that cannot be read back (truncated, corrupted, wrong shape)."""

    def __init__(self, path, reason: str):
        self.path = Path(path) if path is not None else None
        super().__init__(f"damaged cache file {path}: {reason}")


# What reading a damaged .npz raises: a truncated zip (BadZipFile), a short member (EOFError),
# a bad header (ValueError), a missing member (KeyError), an unreadable file (OSError).
_READ_ERRORS = (zipfile.BadZipFile, EOFError, ValueError, KeyError, OSError)


def _encode_id(sample_id: str) -> bytes:
    # surrogatepass: ids made from non-UTF-8 file names (os.fsdecode surrogates) still hash.
    return sample_id.encode("utf-8", "surrogatepass")


def printable_id(sample_id: str) -> str:
    """The id as UTF-8-safe text: non-UTF-8 file-name bytes become ``\\xNN`` (Parquet needs UTF-8)."""
    try:
        sample_id.encode("utf-8")
        return sample_id
    except UnicodeEncodeError:
        return sample_id.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _file_stamp(location: str) -> str:
    """``"size:mtime_ns"`` of the file a sample comes from, or ``""`` when it is not a file.

    ``location`` is a path, or ``path#key`` for samples inside a container file (Parquet row
    groups): then the container's stamp (rewriting it re-embeds its samples).
    """
    for candidate in (location, location.rpartition("#")[0]):
        if not candidate:
            continue
        try:
            info = os.stat(candidate)
        except (OSError, ValueError):
            continue
        if stat.S_ISREG(info.st_mode):
            return f"{info.st_size}:{info.st_mtime_ns}"
    return ""


def sample_stamps(source) -> list[str]:
    """Per-sample ``"size:mtime_ns"`` of each sample's file (``""`` where there is none).

    Stored next to each cached vector and compared on every run: an image replaced in place
    (same name, new size or modification time) is re-embedded instead of keeping its old vector.
    """
    n = len(source.sample_ids)
    files = getattr(source, "sample_files", None)  # the OS's own names (metadata escapes non-UTF-8 bytes)
    if files is not None and len(files) == n:
        return [_file_stamp(str(path)) for path in files]
    try:
        locations = source.metadata()["location"].astype(str).tolist()
    except Exception as exc:  # a source without usable locations: vectors cannot be validated
        logger.debug("no per-sample locations for %s (%s); cached vectors keyed by id only", source, exc)
        return [""] * n
    if len(locations) != n:
        return [""] * n
    return [_file_stamp(location) for location in locations]


def _npy_header(handle) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of an ``.npy`` stream, reading only its header."""
    version = np.lib.format.read_magic(handle)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read(handle)
    return shape, dtype


@dataclass
class Shard:
    """One shard as listed: its file (or None in memory), ids, per-sample stamps, vectors if in memory."""

    path: Path | None
    ids: list[str]
    stamps: list[str]
    vectors: np.ndarray | None = None

    def load_vectors(self, dim: int) -> np.ndarray:
        if self.vectors is not None:
            return self.vectors
        try:
            with np.load(self.path, allow_pickle=False) as data:
                vectors = data["vectors"]
        except FileNotFoundError as exc:
            raise DamagedCacheError(self.path, "it was removed while this run read the cache") from exc
        except _READ_ERRORS as exc:
            raise DamagedCacheError(self.path, f"{type(exc).__name__}: {exc}") from exc
        if vectors.shape != (len(self.ids), dim) or vectors.dtype != np.float32:
            raise DamagedCacheError(self.path, f"vectors {vectors.dtype} {vectors.shape}, expected float32 "
                                               f"{(len(self.ids), dim)}")
        return vectors


class Snapshot:
    """The shards as listed ONCE: lookups, the index and the vectors all use this one listing.

    Listing the folder twice (ids, then files) let a shard written in between by another run
    shift the numbering and hand one image's vector to another.
    """

    def __init__(self, shards: list[Shard]):
        self.shards = shards

    def locate(self, sample_ids: Sequence[str], stamps: Sequence[str] | None = None) -> dict[str, tuple[int, int]]:
        """``sample_id -> (shard number, row)`` for each id cached with its current stamp.

        Several shards may hold one id (concurrent runs, an image replaced in place): the first
        (in file-name order) whose stamp matches wins; ids with no matching entry are absent.
        """
        wanted = dict(zip(sample_ids, stamps)) if stamps is not None else {s: None for s in sample_ids}
        where: dict[str, tuple[int, int]] = {}
        for number, shard in enumerate(self.shards):
            for row, (sample_id, stamp) in enumerate(zip(shard.ids, shard.stamps)):
                if sample_id in where or sample_id not in wanted:
                    continue
                if wanted[sample_id] is None or wanted[sample_id] == stamp:
                    where[sample_id] = (number, row)
        return where

    def gather(self, sample_ids: Sequence[str], where: dict[str, tuple[int, int]], dim: int) -> np.ndarray:
        """Vectors of ``sample_ids`` (all in ``where``), in that order."""
        out = np.empty((len(sample_ids), dim), dtype=np.float32)
        by_shard: dict[int, list[tuple[int, int]]] = {}
        for position, sample_id in enumerate(sample_ids):
            number, row = where[sample_id]
            by_shard.setdefault(number, []).append((position, row))
        for number, pairs in by_shard.items():
            vectors = self.shards[number].load_vectors(dim)
            positions, rows = zip(*pairs)
            out[list(positions)] = vectors[list(rows)]
        return out


class ShardStore:
    """Vectors in shards; ``folder=None`` keeps them in memory (no cache).

    A cache that cannot be written (read-only, disk full) degrades to memory with one warning
    naming the folder and the fix; ``write_errors`` lists what could not be written.
    """

    def __init__(self, folder: Path | None, encoder_key: dict):
        self.folder = folder
        self._memory: list[Shard] = []
        self.write_errors: list[str] = []
        self.stamps: dict[str, str] = {}  # sample_id -> file stamp, stored with each vector
        if folder is not None:
            key_file = folder / "encoder.json"
            if key_file.is_file():
                try:
                    stored = json.loads(key_file.read_text())
                except (OSError, ValueError) as exc:
                    stored = None
                    logger.warning("unreadable %s (%s); rewriting it", key_file, exc)
                if stored is not None and stored != encoder_key:
                    raise RuntimeError(f"{key_file} does not match this encoder (hash collision?); "
                                       f"delete {folder} to rebuild this cache")
                if stored is not None:
                    return
            try:
                (folder / "shards").mkdir(parents=True, exist_ok=True)
                write_text_atomic(key_file, json.dumps(encoder_key, sort_keys=True, indent=1))
            except OSError as exc:
                self._cannot_write(key_file, exc)

    def _cannot_write(self, path: Path, exc: OSError) -> None:
        if not self.write_errors:
            logger.warning(
                "cannot write the embedding cache %s (%s): vectors are kept in memory for this run only; "
                "free disk space or make %s writable, or pass another cache_dir (deq embed --output DIR)",
                path, exc.strerror or exc, self.folder)
        self.write_errors.append(f"{path}: {exc.strerror or exc}")

    def _read_shard(self, path: Path) -> Shard | None:
        try:
            with np.load(path, allow_pickle=False) as data:
                ids = data["sample_ids"].tolist()
                stamps = data["stamps"].tolist() if "stamps" in data.files else [""] * len(ids)
                # the vectors' header only (shape, dtype): reading 5 GB to list ids would be too slow
                with data.zip.open("vectors.npy") as member:
                    shape, dtype = _npy_header(member)
        except FileNotFoundError:  # removed (quarantined by another run) since the listing
            return None
        except _READ_ERRORS as exc:
            self.quarantine(path, f"{type(exc).__name__}: {exc}")
            return None
        if len(stamps) != len(ids) or len(shape) != 2 or shape[0] != len(ids) or dtype != np.float32:
            self.quarantine(path, f"{len(ids)} ids, {len(stamps)} stamps, vectors {dtype} {shape}")
            return None
        return Shard(path, [str(s) for s in ids], [str(s) for s in stamps])

    def quarantine(self, path: Path, reason: str) -> None:
        """Move a damaged shard aside (``*.damaged``) so its samples are embedded again."""
        target = path.with_name(path.name + ".damaged")
        try:
            os.replace(path, target)
            where = f"moved to {target.name}"
        except FileNotFoundError:  # another run set it aside first
            where = "already moved aside by another run"
        except OSError as exc:
            where = f"left in place ({exc.strerror or exc}; delete it by hand)"
        logger.warning("damaged embedding cache shard %s (%s): its samples are embedded again; %s",
                       path, reason, where)

    def snapshot(self) -> Snapshot:
        """List the shards once (damaged ones are quarantined and left out)."""
        shards: list[Shard] = []
        if self.folder is not None:
            for path in sorted((self.folder / "shards").glob("*.npz")):
                shard = self._read_shard(path)
                if shard is not None:
                    shards.append(shard)
        return Snapshot(shards + self._memory)

    def write(self, ids: list[str], vectors: np.ndarray, rank: int) -> None:
        stamps = [self.stamps.get(s, "") for s in ids]
        ids_array = np.asarray(ids, dtype=str)
        stamps_array = np.asarray(stamps, dtype=str)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.folder is not None and not self.write_errors:
            digest = hashlib.sha256(b"\n".join(_encode_id(s) for s in ids)).hexdigest()[:16]
            name = f"r{rank:03d}-{digest}.npz"
            try:
                with atomic_path(self.folder / "shards" / name) as tmp:
                    with open(tmp, "wb") as handle:  # a handle: np.savez would append .npz to the name
                        np.savez(handle, sample_ids=ids_array, vectors=vectors, stamps=stamps_array)
                return
            except OSError as exc:
                self._cannot_write(self.folder / "shards" / name, exc)
        self._memory.append(Shard(None, list(ids), list(stamps), vectors))

    def _earlier_index_rows(self, snapshot: Snapshot, run_ids: set[str]) -> pd.DataFrame | None:
        """Rows of the existing ``index.parquet`` for samples not in ``run_ids`` that still hold.

        A row is kept only when its shard is in ``snapshot`` and holds that id at that row (a
        quarantined or deleted shard drops its rows); an unreadable index is reported and
        replaced by this run's rows.
        """
        path = self.folder / "index.parquet"
        if not path.is_file():
            return None
        try:
            earlier = pd.read_parquet(path, columns=["sample_id", "shard", "row"])
        except Exception as exc:  # noqa: BLE001 - a damaged index is rebuilt, never trusted
            logger.warning("ignoring the unreadable embedding index %s (%s: %s); it is rewritten with this run's "
                           "samples only", path, type(exc).__name__, exc)
            return None
        held = {shard.path.name: shard.ids for shard in snapshot.shards if shard.path is not None}
        keep = [
            sample_id not in run_ids and shard in held and 0 <= row < len(held[shard])
            and printable_id(held[shard][row]) == sample_id
            for sample_id, shard, row in zip(earlier["sample_id"].astype(str), earlier["shard"].astype(str),
                                             earlier["row"].astype(np.int64))
        ]
        earlier = earlier[np.asarray(keep, dtype=bool)].drop_duplicates("sample_id")
        return earlier.astype({"row": np.int64}).reset_index(drop=True)

    def write_if_changed(self, name: str, data: bytes) -> bool:
        """Write ``folder/name`` atomically unless it already holds ``data``; a failure is a warning.

        An unchanged cache is never rewritten, so a fully cached run works on a read-only or full disk.
        """
        if self.folder is None:
            return False
        path = self.folder / name
        try:
            if path.is_file() and path.read_bytes() == data:
                return False
        except OSError:
            pass
        try:
            write_bytes_atomic(path, data)
            return True
        except OSError as exc:
            self._cannot_write(path, exc)
            return False

    def write_index(self, snapshot: Snapshot, where: dict[str, tuple[int, int]], sample_ids: Sequence[str],
                    run_ids: Sequence[str] | None = None) -> bool:
        """``index.parquet``: sample_id -> shard file and row, for readers other than this module.

        Built from the same snapshot as the vectors; ids that are not valid UTF-8 (file names
        in another encoding) are written with ``\\xNN`` escapes. The index accumulates: it lists
        ``sample_ids`` (this run's embedded samples, in their order) and then every sample an
        earlier index listed that this run did not touch (``run_ids``: all its ids, failed ones
        included; default ``sample_ids``), as long as its shard is still listed and still holds
        that id at that row. So a subsample run after a full run keeps every sample. Returns
        whether it was written.
        """
        if self.folder is None:
            return False
        names = [shard.path.name if shard.path is not None else "" for shard in snapshot.shards]
        frame = pd.DataFrame({
            "sample_id": [printable_id(s) for s in sample_ids],
            "shard": [names[where[s][0]] for s in sample_ids],
            "row": np.asarray([where[s][1] for s in sample_ids], dtype=np.int64),
        })
        if (frame["shard"] == "").any():  # some vectors live in memory only: an index would lie
            return False
        earlier = self._earlier_index_rows(snapshot, {printable_id(s) for s in (run_ids or sample_ids)})
        if earlier is not None and len(earlier):
            frame = pd.concat([frame, earlier], ignore_index=True)
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return self.write_if_changed("index.parquet", buffer.getvalue())
