"""The likelihood bank: one row per sample, the file a training run reads.

Two formats:

* **Parquet** (ours, :func:`write_bank` / :func:`read_bank`): columns ``sample_id``,
  ``cluster_id``, ``cluster_size``, ``largest_cluster_size``, ``likelihood`` and optional
  reduced coordinates ``x, y, z`` (plus any extra per-sample columns, e.g. ``outlier_score``);
  the run's parameters, model, dataset, noise policy, deqlib version and creation time are
  stored as JSON in the file's schema metadata under the key ``deqlib``. Reading it never
  unpickles anything.
* **The official forks' pickle** (:func:`export_official_pickle` /
  :func:`import_official_pickle`): ``{sample_id: {'cluster_id', 'cluster_size',
  'largest_cluster_size'}}`` with ``str`` keys and plain ``int`` values, as the DD3D
  (``kitti_training_cluster_info.pkl``) and BEVFormer (``nuscenes_training_cluster_info.pkl``)
  forks read it. Import uses a restricted unpickler that refuses every class and function,
  so a hostile file raises :class:`UnsafePickleError` instead of running code.

Both writers are atomic (temporary file, then rename): an interrupted write never leaves a
truncated bank. Duplicate or missing sample ids are rejected on write and on read.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import pickle
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from deqlib import __version__
from deqlib._atomic import atomic_path
from deqlib.likelihood import DEFAULT_NOISE_POLICY, NOISE_LABEL, assign_noise

__all__ = [
    "REQUIRED_COLUMNS",
    "OFFICIAL_BANK_FILENAMES",
    "LikelihoodBank",
    "BankFormatError",
    "UnsafePickleError",
    "bank_from_labels",
    "write_bank",
    "read_bank",
    "export_official_pickle",
    "import_official_pickle",
]

REQUIRED_COLUMNS = ("sample_id", "cluster_id", "cluster_size", "largest_cluster_size", "likelihood")
COORDINATE_COLUMNS = ("x", "y", "z")
METADATA_KEY = b"deqlib"
OFFICIAL_FIELDS = ("cluster_id", "cluster_size", "largest_cluster_size")

#: File names and locations the official training forks expect (see docs/training.md).
OFFICIAL_BANK_FILENAMES = {
    "kitti": "kitti_training_cluster_info.pkl",  # in the KITTI root, keyed by 6-digit image id
    "nuscenes": "nuscenes_training_cluster_info.pkl",  # keyed by sample token
}


class BankFormatError(ValueError):
    """A bank file or table that breaks the format (the message says what and how to fix it)."""


class UnsafePickleError(BankFormatError, pickle.UnpicklingError):
    """A pickle that asks to load a class or function: refused, nothing was executed."""


@dataclass
class LikelihoodBank:
    """Per-sample likelihoods of one analysis run.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per sample with :data:`REQUIRED_COLUMNS`, optional ``x, y, z`` and extras.
    metadata : dict
        JSON-serialisable description of the run (parameters, model, dataset, noise policy,
        versions, creation time).
    """

    table: pd.DataFrame
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.table = _validate_table(self.table)

    def __len__(self) -> int:
        return len(self.table)

    @property
    def sample_ids(self) -> list[str]:
        return self.table["sample_id"].tolist()

    def likelihood_of(self, sample_ids: Sequence[str], return_spread: bool = False):
        """Scaled likelihoods for ``sample_ids``; raises ``KeyError`` naming unknown ids.

        With ``return_spread=True``, returns ``(likelihood, likelihood_std)``: the standard
        deviation over the runs of a consensus bank (:func:`deqlib.stability.consensus_bank`);
        a bank without a ``likelihood_std`` column raises ``KeyError`` saying how to get one.
        """
        if return_spread and "likelihood_std" not in self.table.columns:
            raise KeyError("this bank has no likelihood_std column (one run has no spread); make a consensus "
                           "bank with `deq stability` or deqlib.stability.consensus_bank")
        indexed = self.table.set_index("sample_id")
        wanted = [str(s) for s in sample_ids]
        missing = [s for s in wanted if s not in indexed.index]
        if missing:
            raise KeyError(f"{len(missing)} sample id(s) not in the bank, e.g. {missing[:3]}")
        likelihood = indexed["likelihood"].loc[wanted].to_numpy(dtype=np.float64)
        if return_spread:
            return likelihood, indexed["likelihood_std"].loc[wanted].to_numpy(dtype=np.float64)
        return likelihood


def _validate_table(table: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(table, pd.DataFrame):
        raise BankFormatError(f"a bank table must be a pandas DataFrame, got {type(table).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise BankFormatError(f"bank is missing column(s) {missing}; required: {list(REQUIRED_COLUMNS)}")
    if len(table) == 0:
        raise BankFormatError("bank is empty: it must hold one row per training sample")
    table = table.reset_index(drop=True).copy()
    ids = table["sample_id"]
    if ids.isna().any() or (ids.astype(str).str.len() == 0).any():
        row = int(np.flatnonzero(ids.isna().to_numpy() | (ids.astype(str).str.len() == 0).to_numpy())[0])
        raise BankFormatError(f"bank has a missing (empty or null) sample_id at row {row}")
    table["sample_id"] = ids.astype(str)
    duplicated = table["sample_id"].duplicated(keep=False)
    if duplicated.any():
        examples = sorted(set(table.loc[duplicated, "sample_id"]))[:3]
        raise BankFormatError(
            f"bank has {int(duplicated.sum())} rows with duplicate sample_id, e.g. {examples}; "
            "every sample must appear exactly once"
        )
    for column in ("cluster_id", "cluster_size", "largest_cluster_size"):
        values = table[column]
        if not pd.api.types.is_integer_dtype(values):
            raise BankFormatError(f"bank column {column!r} must hold integers, got {values.dtype}")
        table[column] = values.astype(np.int64)
    if (table["cluster_size"] < 1).any():
        raise BankFormatError("cluster_size must be >= 1 for every sample")
    if (table["cluster_size"] > table["largest_cluster_size"]).any():
        raise BankFormatError("cluster_size must not exceed largest_cluster_size")
    likelihood = table["likelihood"].astype(np.float64)
    if not ((likelihood > 0) & (likelihood <= 1)).all():
        raise BankFormatError("likelihood must lie in (0, 1] for every sample")
    table["likelihood"] = likelihood
    return table


def _versions() -> dict[str, str]:
    import pyarrow

    return {
        "deqlib": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "pyarrow": pyarrow.__version__,
    }


def bank_from_labels(
    sample_ids: Sequence[str],
    labels,
    noise_policy: str = DEFAULT_NOISE_POLICY,
    coords=None,
    scale: float = 1.0,
    metadata: Mapping[str, Any] | None = None,
    extra_columns: Mapping[str, Any] | None = None,
) -> LikelihoodBank:
    """Build a bank from cluster labels.

    ``cluster_id`` keeps DBSCAN's label (``-1`` for noise) except under ``'nearest'``, where
    noise samples take the id of the cluster they joined. ``cluster_size`` and
    ``likelihood`` follow ``noise_policy`` (see :mod:`deqlib.likelihood`); ``coords``
    (N x 3) are stored as ``x, y, z`` when given.
    """
    sample_ids = [str(s) for s in sample_ids]
    effective = assign_noise(labels, noise_policy, coords)
    labels = np.asarray(labels, dtype=np.int64)
    if len(sample_ids) != labels.size:
        raise ValueError(f"got {len(sample_ids)} sample ids but {labels.size} labels: they must match one to one")
    _, inverse, counts = np.unique(effective, return_inverse=True, return_counts=True)
    sizes = counts[inverse].astype(np.int64)
    largest = int(sizes.max())
    if not 0.0 < float(scale) <= 1.0:
        raise ValueError(f"scale (K~) must be in (0, 1], got {scale!r}")
    table = pd.DataFrame(
        {
            "sample_id": sample_ids,
            "cluster_id": effective if noise_policy == "nearest" else labels,
            "cluster_size": sizes,
            "largest_cluster_size": np.full(labels.size, largest, dtype=np.int64),
            "likelihood": sizes / largest * float(scale),
        }
    )
    if coords is not None:
        coords = np.asarray(coords, dtype=np.float64)
        if coords.ndim != 2 or coords.shape[0] != labels.size or coords.shape[1] > 3:
            raise ValueError(f"coords must have shape ({labels.size}, 2 or 3), got {coords.shape}")
        for axis, name in enumerate(COORDINATE_COLUMNS[: coords.shape[1]]):
            table[name] = coords[:, axis]
    for name, values in (extra_columns or {}).items():
        values = np.asarray(values)
        if values.shape[0] != labels.size:
            raise ValueError(f"extra column {name!r} has {values.shape[0]} values for {labels.size} samples")
        table[name] = values
    n_noise = int((labels == NOISE_LABEL).sum())
    meta = {
        "noise_policy": noise_policy,
        "scale": float(scale),
        "n_samples": int(labels.size),
        "n_clusters": int(np.unique(labels[labels != NOISE_LABEL]).size),
        "n_noise": n_noise,
        "noise_fraction": n_noise / labels.size,
    }
    meta.update(dict(metadata or {}))
    return LikelihoodBank(table=table, metadata=meta)


def write_bank(path: str | Path, bank: LikelihoodBank) -> Path:
    """Write ``bank`` as Parquet, atomically; metadata gains versions and creation time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = _validate_table(bank.table)
    metadata = dict(bank.metadata)
    metadata.setdefault("created_at", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    metadata["versions"] = {**_versions(), **metadata.get("versions", {})}
    metadata["n_samples"] = len(table)
    try:
        encoded = json.dumps(metadata, sort_keys=True, default=_json_default).encode()
    except TypeError as exc:
        raise BankFormatError(f"bank metadata must be JSON-serialisable: {exc}") from exc
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), METADATA_KEY: encoded})
    path = Path(path)
    with atomic_path(path) as tmp:
        pq.write_table(arrow, tmp)
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def read_bank(path: str | Path) -> LikelihoodBank:
    """Read a Parquet bank written by :func:`write_bank` (validated; no pickle involved)."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no likelihood bank at {path}; create one with `deq analyze`")
    if path.suffix == ".pkl":
        raise BankFormatError(f"{path} is a pickle: load official banks with import_official_pickle()")
    arrow = pq.read_table(path)
    raw = (arrow.schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise BankFormatError(f"{path} is a Parquet file but not a deqlib bank (no 'deqlib' metadata)")
    metadata = json.loads(raw)
    table = arrow.to_pandas()
    expected = metadata.get("n_samples")
    if expected is not None and expected != len(table):
        raise BankFormatError(f"{path} holds {len(table)} rows but its metadata says {expected}: the bank is partial")
    return LikelihoodBank(table=table, metadata=metadata)


def export_official_pickle(bank: LikelihoodBank, path: str | Path) -> Path:
    """Write the official forks' pickle (plain ``int`` values, ``str`` keys), atomically."""
    signal = bank.metadata.get("signal")
    if signal == "consensus-mean":  # the pickle carries cluster sizes; a mean of runs is not one
        raise BankFormatError("the forks' pickle holds cluster sizes, and this bank's likelihood (signal "
                              "'consensus-mean') is a mean over runs, not a cluster size ratio: export the "
                              "'consensus-coassoc' bank instead (deq stability --signal consensus-coassoc)")
    table = _validate_table(bank.table)
    payload = {
        str(row.sample_id): {
            "cluster_id": int(row.cluster_id),
            "cluster_size": int(row.cluster_size),
            "largest_cluster_size": int(row.largest_cluster_size),
        }
        for row in table.itertuples(index=False)
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            pickle.dump(payload, handle, protocol=4)
    return path


# Exactly what rebuilds a numpy scalar (a dtype and its raw bytes); no other callable.
_NUMPY_SCALAR_GLOBALS = {
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "dtype"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Loads only built-in containers and scalars; every class or function is refused."""

    def __init__(self, file, allow_numpy_scalars: bool):
        super().__init__(file)
        self._allow_numpy_scalars = allow_numpy_scalars

    def find_class(self, module: str, name: str):
        if self._allow_numpy_scalars and (module, name) in _NUMPY_SCALAR_GLOBALS:
            return super().find_class(module, name)
        hint = (
            " (numpy integers: pass allow_numpy_scalars=True if you trust the file)"
            if (module, name) in _NUMPY_SCALAR_GLOBALS
            else ""
        )
        raise UnsafePickleError(
            f"refused to load {module}.{name} from the pickle: a likelihood bank holds only dicts, "
            f"strings and ints, so this file is not a bank or was tampered with{hint}"
        )


def import_official_pickle(
    path: str | Path, metadata: Mapping[str, Any] | None = None, allow_numpy_scalars: bool = False
) -> LikelihoodBank:
    """Read an official forks' pickle safely and return it as a :class:`LikelihoodBank`.

    ``likelihood`` is recomputed as ``cluster_size / largest_cluster_size`` (eq. 3), as the
    forks do. The noise policy used to make the file cannot be known and is recorded as
    ``'unknown'`` unless ``metadata`` says otherwise.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no pickle at {path}")
    data = path.read_bytes()
    try:
        payload = _RestrictedUnpickler(io.BytesIO(data), allow_numpy_scalars).load()
    except UnsafePickleError:
        raise
    except Exception as exc:  # truncated or not a pickle at all
        raise BankFormatError(f"{path} is not a readable pickle ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict) or not payload:
        raise BankFormatError(f"{path}: expected a non-empty dict sample_id -> cluster info, got {type(payload).__name__}")
    rows = []
    for key, info in payload.items():
        if not isinstance(key, str):
            raise BankFormatError(f"{path}: sample ids must be strings, got {key!r}")
        if not isinstance(info, dict) or set(info) < set(OFFICIAL_FIELDS):
            raise BankFormatError(f"{path}: entry {key!r} must be a dict with keys {OFFICIAL_FIELDS}, got {info!r}")
        values = [info[f] for f in OFFICIAL_FIELDS]
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
            raise BankFormatError(f"{path}: entry {key!r} must hold integers, got {info!r}")
        rows.append((key, *(int(v) for v in values)))
    table = pd.DataFrame(rows, columns=["sample_id", *OFFICIAL_FIELDS])
    table["likelihood"] = table["cluster_size"] / table["largest_cluster_size"]
    meta = {"source_format": "official-pickle", "source_file": str(path), "noise_policy": "unknown"}
    meta.update(dict(metadata or {}))
    return LikelihoodBank(table=table, metadata=meta)
