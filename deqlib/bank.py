"""The likelihood bank: one row per sample, the file a training run reads.

Two formats:

* **Parquet** (ours, :func:`write_bank` / :func:`read_bank`): columns ``sample_id`` and
  ``likelihood``; the cluster columns ``cluster_id``, ``cluster_size``, ``largest_cluster_size``
  when the rarity signal is cluster-based (all three or none); optional reduced coordinates
  ``x, y, z`` (plus any extra per-sample columns, e.g. ``outlier_score``). The run's
  parameters, the rarity signal that made the likelihood (``signal``, ``signal_params``), model,
  dataset, noise policy, deqlib version and creation time are stored as JSON in the file's
  schema metadata under the key ``deqlib``. Reading it never unpickles anything. Banks written
  before signals were recorded carry no ``signal`` and always have the cluster columns: they
  load and export as before.
* **The official forks' pickle** (:func:`export_official_pickle` /
  :func:`import_official_pickle`): ``{sample_id: {'cluster_id', 'cluster_size',
  'largest_cluster_size'}}`` with ``str`` keys and plain ``int`` values, as the DD3D
  (``kitti_training_cluster_info.pkl``) and BEVFormer (``nuscenes_training_cluster_info.pkl``)
  forks read it. The forks recompute the likelihood as ``cluster_size / largest_cluster_size``:
  a cluster-based signal's bank (:data:`deqlib.likelihood.RARITY_SIGNALS`) is written with its
  cluster sizes, exactly; any other signal's likelihood ``p`` is written as the pair
  ``(max(1, round(p * L)), L)`` with ``L =`` :data:`LIKELIHOOD_LEVELS` (10**6), so the forks
  recompute it to within ``0.5 / L``. Import never
  runs Python's unpickler: :mod:`deqlib._safe_pickle` interprets the opcodes itself and builds only dicts, lists, tuples, strings, numbers and numpy scalars
  (rebuilt from validated bytes), with no shared containers and bounded nesting, so a hostile
  file raises :class:`UnsafePickleError` (quickly, with a short message) instead of running
  code, crashing or hanging. Samples the bank lacks (images that failed to decode) are never
  left out of the export silently (``missing=``); the official Waymo pickle's integer keys are
  mapped to file names with ``key_listing=`` (see docs/training.md).

Both writers are atomic (temporary file, then rename): an interrupted write never leaves a
truncated bank. Duplicate or missing sample ids are rejected on write and on read.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import pickle
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from deqlib import __version__
from deqlib._atomic import atomic_path
from deqlib._safe_pickle import SafePickleError, safe_load
from deqlib.likelihood import DEFAULT_NOISE_POLICY, RARITY_SIGNALS, ClusterSignal, RarityContext, is_cluster_based

__all__ = [
    "REQUIRED_COLUMNS",
    "CLUSTER_COLUMNS",
    "OFFICIAL_BANK_FILENAMES",
    "LikelihoodBank",
    "BankFormatError",
    "UnsafePickleError",
    "bank_from_labels",
    "bank_from_likelihood",
    "bank_from_signal",
    "write_bank",
    "read_bank",
    "export_official_pickle",
    "record_key_listing",
    "import_official_pickle",
    "missing_sample_ids",
    "MISSING_POLICIES",
    "LIKELIHOOD_LEVELS",
]

REQUIRED_COLUMNS = ("sample_id", "likelihood")
#: Present (all three) when the likelihood is eq. 3 of a partition; required only by the forks' pickle.
CLUSTER_COLUMNS = ("cluster_id", "cluster_size", "largest_cluster_size")
COORDINATE_COLUMNS = ("x", "y", "z")
METADATA_KEY = b"deqlib"
OFFICIAL_FIELDS = CLUSTER_COLUMNS
#: The ``largest_cluster_size`` a likelihood without clusters is written with: ``cluster_size = round(p * L)``.
LIKELIHOOD_LEVELS = 10**6
#: What :func:`export_official_pickle` does with training samples the bank lacks (docs/training.md).
MISSING_POLICIES = ("error", "rarest", "median")

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
        One row per sample with :data:`REQUIRED_COLUMNS`, the :data:`CLUSTER_COLUMNS` for a
        cluster-based signal, optional ``x, y, z`` and extras.
    metadata : dict
        JSON-serialisable description of the run (the rarity signal and its parameters,
        parameters, model, dataset, noise policy, versions, creation time).
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

    @property
    def has_clusters(self) -> bool:
        """Whether the bank carries the cluster columns (the forks' pickle needs them)."""
        return all(c in self.table.columns for c in CLUSTER_COLUMNS)

    def likelihood_of(self, sample_ids: Sequence[str] | str, return_spread: bool = False):
        """Scaled likelihoods for ``sample_ids`` (one id as a string gives an array of one);
        raises ``KeyError`` naming unknown ids.

        With ``return_spread=True``, returns ``(likelihood, likelihood_std)``: the standard
        deviation over the runs of a consensus bank (:func:`deqlib.stability.consensus_bank`);
        a bank without a ``likelihood_std`` column raises ``KeyError`` saying how to get one.
        """
        if return_spread and "likelihood_std" not in self.table.columns:
            raise KeyError("this bank has no likelihood_std column (one run has no spread); make a consensus "
                           "bank with `deq stability` or deqlib.stability.consensus_bank")
        indexed = self.table.set_index("sample_id")
        wanted = [sample_ids] if isinstance(sample_ids, str) else [str(s) for s in sample_ids]
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
        raise BankFormatError(f"bank is missing column(s) {missing}; required: {list(REQUIRED_COLUMNS)} "
                              f"(and {list(CLUSTER_COLUMNS)} for the forks' pickle)")
    if len(table) == 0:
        raise BankFormatError("bank is empty: it must hold one row per training sample")
    table = table.reset_index(drop=True).copy()
    ids = table["sample_id"]
    if pd.api.types.is_numeric_dtype(ids) or pd.api.types.is_bool_dtype(ids):
        # str(1) is '1', never the KITTI id '000001': numbers would silently stop matching
        raise BankFormatError(
            f"bank sample_id column holds numbers ({ids.dtype}), e.g. {ids.iat[0]!r}: ids are strings, and "
            "turning numbers into strings loses leading zeros ('000001' -> '1'). Read the ids as strings "
            "(e.g. pd.read_csv(..., dtype={'sample_id': str})) or format them (ids.map('{:06d}'.format))")
    not_str = [v for v in ids.head(1000) if not (isinstance(v, str) or v is None or v is pd.NA
                                                 or (isinstance(v, float) and np.isnan(v)))]
    if not_str:
        raise BankFormatError(f"bank sample_id column holds {type(not_str[0]).__name__} values, e.g. "
                              f"{not_str[0]!r}: ids must be strings (numbers lose leading zeros)")
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
    present = [c for c in CLUSTER_COLUMNS if c in table.columns]
    if present and len(present) < len(CLUSTER_COLUMNS):
        absent = [c for c in CLUSTER_COLUMNS if c not in present]
        raise BankFormatError(f"bank has cluster column(s) {present} but not {absent}: a bank carries all of "
                              f"{list(CLUSTER_COLUMNS)} (a cluster-based signal) or none of them")
    if present:
        for column in CLUSTER_COLUMNS:
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


def bank_from_likelihood(
    sample_ids: Sequence[str],
    likelihood,
    signal: str,
    signal_params: Mapping[str, Any] | None = None,
    coords=None,
    metadata: Mapping[str, Any] | None = None,
    extra_columns: Mapping[str, Any] | None = None,
    clusters: Mapping[str, Any] | None = None,
) -> LikelihoodBank:
    """Build a bank from any rarity signal's likelihoods.

    Parameters
    ----------
    sample_ids : sequence of str
    likelihood : array-like (N,)
        In (0, 1], 1 = most common.
    signal : str
        The signal's name (a :data:`deqlib.likelihood.RARITY_SIGNALS` name, or your own), recorded
        as ``metadata['signal']``; the forks' pickle export refuses a registered signal that is not
        cluster-based.
    signal_params : mapping, optional
        Recorded as ``metadata['signal_params']``.
    coords : array-like (N, 2 or 3), optional
        Stored as ``x, y, z``.
    metadata : mapping, optional
        Merged last (it may override ``signal``).
    extra_columns : mapping of name -> array (N,), optional
        Extra per-sample columns (e.g. ``outlier_score``, ``likelihood_std``).
    clusters : mapping, optional
        ``cluster_id``, ``cluster_size`` (arrays) and ``largest_cluster_size`` (int) of a
        cluster-based signal: written as the cluster columns the forks' pickle needs.
    """
    sample_ids = [str(s) for s in sample_ids]
    likelihood = np.asarray(likelihood, dtype=np.float64)
    n = likelihood.size
    if likelihood.ndim != 1 or len(sample_ids) != n:
        raise ValueError(f"got {len(sample_ids)} sample ids but {likelihood.shape} likelihoods: they must match "
                         "one to one")
    if not isinstance(signal, str) or not signal:
        raise ValueError(f"signal must name the rarity signal that made the likelihood, got {signal!r}")
    table = pd.DataFrame({"sample_id": sample_ids})
    if clusters is not None:
        table["cluster_id"] = np.asarray(clusters["cluster_id"], dtype=np.int64)
        table["cluster_size"] = np.asarray(clusters["cluster_size"], dtype=np.int64)
        table["largest_cluster_size"] = np.full(n, int(clusters["largest_cluster_size"]), dtype=np.int64)
    table["likelihood"] = likelihood
    if coords is not None:
        coords = np.asarray(coords, dtype=np.float64)
        if coords.ndim != 2 or coords.shape[0] != n or coords.shape[1] > 3:
            raise ValueError(f"coords must have shape ({n}, 2 or 3), got {coords.shape}")
        for axis, name in enumerate(COORDINATE_COLUMNS[: coords.shape[1]]):
            table[name] = coords[:, axis]
    for name, values in (extra_columns or {}).items():
        values = np.asarray(values)
        if values.shape[0] != n:
            raise ValueError(f"extra column {name!r} has {values.shape[0]} values for {n} samples")
        table[name] = values
    meta = {"signal": signal, "signal_params": dict(signal_params or {}), "n_samples": n}
    meta.update(dict(metadata or {}))
    return LikelihoodBank(table=table, metadata=meta)


def bank_from_signal(sample_ids: Sequence[str], signal, coords=None, metadata: Mapping[str, Any] | None = None,
                     extra_columns: Mapping[str, Any] | None = None) -> LikelihoodBank:
    """Build a bank from a fitted rarity signal (:class:`deqlib.likelihood.RaritySignal`).

    The likelihood is ``signal.likelihood_``; ``metadata['signal']`` / ``['signal_params']`` come
    from ``signal.params_``; a cluster-based signal also gives the cluster columns.
    """
    params = dict(getattr(signal, "params_", None) or {})
    if not hasattr(signal, "likelihood_"):
        raise ValueError(f"{type(signal).__name__} is not fitted: call signal.fit(context) first")
    name = params.pop("signal", None) or getattr(signal, "name", "") or type(signal).__name__
    clusters = None
    if getattr(signal, "cluster_based", False):
        clusters = {"cluster_id": signal.cluster_id_, "cluster_size": signal.cluster_size_,
                    "largest_cluster_size": signal.largest_cluster_size_}
    return bank_from_likelihood(sample_ids, signal.likelihood_, name, params, coords=coords, metadata=metadata,
                                extra_columns=extra_columns, clusters=clusters)


def bank_from_labels(
    sample_ids: Sequence[str],
    labels,
    noise_policy: str = DEFAULT_NOISE_POLICY,
    coords=None,
    scale: float = 1.0,
    metadata: Mapping[str, Any] | None = None,
    extra_columns: Mapping[str, Any] | None = None,
) -> LikelihoodBank:
    """Build a bank from cluster labels: the ``cluster`` signal (eq. 3, :class:`~deqlib.likelihood.ClusterSignal`).

    ``cluster_id`` keeps DBSCAN's label (``-1`` for noise) except under ``'nearest'``, where
    noise samples take the id of the cluster they joined. ``cluster_size`` and
    ``likelihood`` follow ``noise_policy`` (see :mod:`deqlib.likelihood`); ``coords``
    (N x 3) are stored as ``x, y, z`` when given. ``scale`` is K~ in (0, 1] (a bool or
    anything else raises ``ValueError``, as in :func:`~deqlib.likelihood.scaled_likelihood`).
    """
    labels_array = np.asarray(labels)
    if labels_array.ndim == 1 and len(sample_ids) != labels_array.size:
        raise ValueError(f"got {len(sample_ids)} sample ids but {labels_array.size} labels: they must match one to one")
    signal = ClusterSignal(noise_policy=noise_policy, scale=scale).fit(RarityContext(labels=labels, coords=coords))
    n_noise = signal.params_["n_noise"]
    meta = {
        "noise_policy": noise_policy,
        "scale": float(scale),
        "n_samples": int(signal.likelihood_.size),
        "n_clusters": signal.params_["n_clusters"],
        "n_noise": n_noise,
        "noise_fraction": n_noise / signal.likelihood_.size,
    }
    meta.update(dict(metadata or {}))
    return bank_from_signal(sample_ids, signal, coords=coords, metadata=meta, extra_columns=extra_columns)


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
    try:
        arrow = pq.read_table(path)
    except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid is a ValueError
        raise BankFormatError(f"{path} is not a readable Parquet file ({type(exc).__name__}: {str(exc)[:200]}); "
                              "re-create it with `deq analyze`") from None
    raw = (arrow.schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise BankFormatError(f"{path} is a Parquet file but not a deqlib bank (no 'deqlib' metadata)")
    try:
        metadata = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise BankFormatError(f"{path}: the bank's 'deqlib' metadata is not valid JSON ({exc}); the file was "
                              "damaged or written by another tool: re-create it with `deq analyze`") from None
    if not isinstance(metadata, dict):
        raise BankFormatError(f"{path}: the bank's 'deqlib' metadata must be a JSON object, got "
                              f"{type(metadata).__name__}; re-create it with `deq analyze`")
    table = arrow.to_pandas()
    expected = metadata.get("n_samples")
    if expected is not None and expected != len(table):
        raise BankFormatError(f"{path} holds {len(table)} rows but its metadata says {expected}: the bank is partial")
    try:
        return LikelihoodBank(table=table, metadata=metadata)
    except BankFormatError as exc:
        raise BankFormatError(f"{path}: {exc}") from None


def missing_sample_ids(bank: LikelihoodBank, expected_ids: Sequence[str] | None = None) -> list[str]:
    """Training samples the bank has no row for.

    Those recorded in ``bank.metadata['missing_sample_ids']`` (images that could not be decoded,
    written there by :func:`deqlib.pipeline.analyze`), plus the ``expected_ids`` not in the bank.
    """
    present = set(bank.table["sample_id"])
    missing = [str(s) for s in bank.metadata.get("missing_sample_ids") or []]
    if expected_ids is not None:
        if isinstance(expected_ids, str):
            raise TypeError("expected_ids must be a sequence of sample ids, not one string")
        missing += [str(s) for s in expected_ids]
    return list(dict.fromkeys(s for s in missing if s not in present))


def export_official_pickle(bank: LikelihoodBank, path: str | Path, missing: str = "error",
                           expected_ids: Sequence[str] | None = None, weight_scheme=None) -> Path:
    """Write the official forks' pickle (plain ``int`` values, ``str`` keys), atomically.

    A cluster-based bank is written with its cluster ids and sizes. A bank of any other signal (no
    cluster columns, e.g. ``knn-density`` or ``multi-granularity+lof``) is written as
    ``{'cluster_id': -1, 'cluster_size': max(1, round(p * L)), 'largest_cluster_size': L}`` with
    ``L =`` :data:`LIKELIHOOD_LEVELS`: the forks' ``cluster_size / largest_cluster_size`` gives
    back ``p`` to within ``0.5 / L`` (``1 / L`` for ``p < 1 / L``), and ``official_export`` in the
    metadata records ``likelihood_levels``.

    Parameters
    ----------
    bank : LikelihoodBank
    path : path
        Where to write (e.g. ``<KITTI root>/kitti_training_cluster_info.pkl``).
    missing : {'error', 'rarest', 'median'}, default='error'
        What to do with training samples the bank has no row for (see :func:`missing_sample_ids`;
        images that failed to decode). Left out of the pickle, the BEVFormer and BEVFusion forks
        would give them p = 1 (the lowest weight) without a word and DD3D would raise
        ``KeyError``, so they are never left out silently:

        * ``'error'``: refuse, naming how many are missing and these choices;
        * ``'rarest'``: write them with ``cluster_size = 1`` (p = 1 / largest: the highest weight,
          as a singleton noise sample gets);
        * ``'median'``: write them with the median ``cluster_size`` of the bank's samples
          (a middle weight: no evidence either way).

        Filled entries have ``cluster_id = -1`` ("not clustered"). The choice, the count and the
        ids are recorded in ``bank.metadata['official_export']``.
    expected_ids : sequence of str, optional
        Every sample id the training run will look up (e.g. the split list), to catch samples
        missing from the bank for any reason.
    weight_scheme : str or dict, optional
        The weight the training run is meant to use (a :data:`deqlib.weights.WEIGHT_SCHEMES` name or a
        :func:`deqlib.weights.weight_scheme_record`); None reads ``bank.metadata['weight_scheme']``
        if present. The forks compute eq. 4 from the pickle's cluster sizes and nothing else, so any
        scheme but ``'eq4'`` is refused (train from the Parquet bank with
        ``deqlib.training.GFLWeightedLoss(..., scheme=...)`` instead). ``official_export`` records
        ``weight_scheme: 'eq4'``; eta and gamma live in the fork's config, not in the pickle.
    """
    levels = _check_exportable(bank)
    _check_eq4_only(bank, weight_scheme)
    if missing not in MISSING_POLICIES:
        raise ValueError(f"missing must be one of {MISSING_POLICIES}, got {missing!r}")
    table = _validate_table(bank.table)
    if levels is not None:  # a likelihood without clusters, as the pair the forks divide
        table = table.assign(cluster_id=-1, largest_cluster_size=levels, cluster_size=np.maximum(
            1, np.rint(table["likelihood"].to_numpy() * levels)).astype(np.int64))
    payload = {
        str(row.sample_id): {
            "cluster_id": int(row.cluster_id),
            "cluster_size": int(row.cluster_size),
            "largest_cluster_size": int(row.largest_cluster_size),
        }
        for row in table.itertuples(index=False)
    }
    absent = missing_sample_ids(bank, expected_ids)
    path = Path(path)
    if absent and missing == "error":
        raise BankFormatError(
            f"{len(absent)} training sample(s) have no likelihood (their images could not be embedded), "
            f"e.g. {absent[:3]}; {path} would leave them out and the forks would then weight them silently "
            "(BEVFormer/BEVFusion: p = 1, DD3D: KeyError). Fix the images, or choose missing='rarest' or "
            "'median' (CLI: --missing rarest|median) to write them as the rarest or a median sample")
    largest = int(table["largest_cluster_size"].iat[0])
    if absent:
        size = 1 if missing == "rarest" else int(np.quantile(table["cluster_size"], 0.5, method="lower"))
        for sample_id in absent:
            payload[sample_id] = {"cluster_id": -1, "cluster_size": size, "largest_cluster_size": largest}
    bank.metadata["official_export"] = {"path": str(path), "missing": missing, "n_missing": len(absent),
                                        "missing_sample_ids": absent, "likelihood_levels": levels,
                                        "weight_scheme": "eq4"}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            pickle.dump(payload, handle, protocol=4)
    return path


def _check_eq4_only(bank: LikelihoodBank, weight_scheme) -> None:
    """Refuse a weight scheme other than eq. 4: the forks' pickle cannot carry it."""
    from deqlib.weights import WEIGHT_SCHEMES

    scheme = weight_scheme if weight_scheme is not None else bank.metadata.get("weight_scheme")
    if scheme is None:
        return
    name = scheme.get("scheme") if isinstance(scheme, Mapping) else scheme
    if not isinstance(name, str) or WEIGHT_SCHEMES.resolve(name) != "eq4":
        raise BankFormatError(
            f"the forks' pickle carries cluster sizes, from which the forks compute eq. 4 only; the weight scheme "
            f"{name!r} cannot travel in it (the forks would silently train with eq. 4). Train from the Parquet "
            f"bank with deqlib.training.GFLWeightedLoss(criterion, bank, scheme={name!r}, scheme_params=...), "
            "or export for eq. 4 (weight_scheme='eq4')")


def _check_exportable(bank: LikelihoodBank) -> int | None:
    """None for a bank written with its cluster sizes; :data:`LIKELIHOOD_LEVELS` for one written as quantised
    pairs (a signal that is not cluster-based, or no cluster columns); refuses cluster columns that disagree."""
    signal = bank.metadata.get("signal")
    cluster_based = is_cluster_based(signal) if isinstance(signal, str) and signal in RARITY_SIGNALS else None
    if cluster_based is False or not bank.has_clusters:
        return LIKELIHOOD_LEVELS
    table = bank.table
    recomputed = table["cluster_size"].to_numpy() / table["largest_cluster_size"].to_numpy()
    if not np.allclose(table["likelihood"].to_numpy(), recomputed, rtol=1e-12, atol=0.0):
        raise BankFormatError(
            "the forks recompute the likelihood as cluster_size / largest_cluster_size (eq. 3 with K~ = 1), but "
            f"this bank's likelihood differs (e.g. the scale K~ = {bank.metadata.get('scale', 'unknown')}): the "
            "pickle would silently change the weights. Make the bank with scale=1.0, or train from the Parquet bank")
    return None


KEY_LISTING_HEADER = "# deqlib key listing v1"


def _file_sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def record_key_listing(folder: str | Path, path: str | Path) -> Path:
    """Record an image folder's ``os.listdir`` order, with each file's size and sha256, for
    :func:`import_official_pickle` (``key_listing=``).

    Run it once where the official Waymo analysis ran (the same copy, on the same file system):
    ``os.listdir`` order is that file system's, and the pickle's integer keys are positions in it.
    The file (tab-separated ``position, name, size, sha256`` under a header naming the folder,
    host and time) then travels with the pickle, and every key is checked against the files by
    name, size and digest wherever the images are.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; pass the image folder the official run listed "
                                "(<split>/image_0)")
    names = os.listdir(folder)  # unsorted, on purpose: the official notebook's order
    lines = [f"{KEY_LISTING_HEADER}: os.listdir order of {folder.resolve()} on {platform.node()}, recorded "
             f"{_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')}", "position\tname\tsize\tsha256"]
    for position, name in enumerate(names):
        file = folder / name
        if any(c in name for c in "\t\r\n"):
            raise ValueError(f"{file}: a tab or line break in a file name cannot be recorded; rename it")
        lines.append(f"{position}\t{name}\t{file.stat().st_size}\t{_file_sha256(file)}")
    with atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Path(path)


def _read_recorded_listing(where: Path) -> tuple[list[tuple[str, int, str]], Path | None]:
    """The (name, size, sha256) rows of a :func:`record_key_listing` file, and the folder it names."""
    lines = where.read_text(encoding="utf-8").splitlines()
    if not lines or not lines[0].startswith(KEY_LISTING_HEADER):
        raise BankFormatError(
            f"key_listing {where} is not a recorded listing (no '{KEY_LISTING_HEADER}' header): a list of names "
            "gives positions only, which nothing can check (a sorted or copied listing mapped 26 of 30 keys to "
            "other files). Record it where the original run listed the images: "
            "deqlib.bank.record_key_listing('<split>/image_0', 'listing.tsv')")
    recorded_folder = Path(lines[0].split("os.listdir order of ", 1)[1].rsplit(" on ", 1)[0]) \
        if "os.listdir order of " in lines[0] else None
    rows = []
    for number, line in enumerate(lines[2:], start=3):
        parts = line.split("\t")
        if len(parts) != 4 or not parts[0].isdigit() or int(parts[0]) != len(rows) or not parts[2].isdigit():
            raise BankFormatError(f"key_listing {where}, line {number}: expected 'position<TAB>name<TAB>size<TAB>"
                                  f"sha256' with position {len(rows)}, got {line[:80]!r}")
        rows.append((parts[1], int(parts[2]), parts[3]))
    return rows, recorded_folder


def _verify_listing_files(where: Path, rows: list[tuple[str, int, str]], images: Path) -> None:
    """Every listed file is in ``images`` with its recorded size and sha256, and nothing else is there."""
    present = set(os.listdir(images))
    missing = [name for name, _, _ in rows if name not in present]
    extra = sorted(present - {name for name, _, _ in rows})
    changed = [name for name, size, digest in rows if name in present
               and ((images / name).stat().st_size != size or _file_sha256(images / name) != digest)]
    if missing or extra or changed:
        problems = "; ".join(f"{label} {len(found)} (e.g. {found[:3]})" for label, found in
                             (("missing", missing), ("not listed", extra), ("changed content", changed)) if found)
        raise BankFormatError(f"key_listing {where} does not match the files in {images}: {problems}. The keys "
                              "cannot be mapped safely: pass images= the folder the listing was recorded from")


def _map_integer_keys(path: Path, payload: dict, key_listing, images) -> tuple[dict, dict]:
    """Official Waymo pickles: integer keys = positions in ``os.listdir(image_0)`` -> file stems, through a
    recorded listing whose every file is verified (name, size, sha256) against ``images``."""
    fix = ("record the listing once where the original run listed the images, "
           "deqlib.bank.record_key_listing('<split>/image_0', 'listing.tsv') (same copy, same file system), then "
           "pass key_listing='listing.tsv' (and images=<the image folder>, if it moved)")
    if key_listing is None:
        raise BankFormatError(
            f"{path}: sample ids are integers ({len(payload)} keys, e.g. {list(payload)[:3]}): the official "
            f"Waymo notebook keys samples by their position in os.listdir(<split>/image_0). To map them, {fix}")
    if not isinstance(key_listing, (str, os.PathLike)):
        raise BankFormatError(f"{path}: key_listing must be a recorded listing file; a list of names gives "
                              f"positions only, which nothing can check; {fix}")
    where = Path(key_listing).expanduser()
    if where.is_dir():
        raise BankFormatError(
            f"{path}: key_listing {where} is a folder: listing it again maps keys by position alone, and "
            "os.listdir order depends on the file system (a copy elsewhere mapped 24 of 30 keys to other files); "
            + fix)
    if not where.is_file():
        raise FileNotFoundError(f"key_listing {where} does not exist; {fix}")
    rows, recorded_folder = _read_recorded_listing(where)
    keys = sorted(int(k) for k in payload)
    if keys != list(range(len(rows))):
        raise BankFormatError(
            f"{path}: the integer keys ({len(keys)}, from {keys[0]} to {keys[-1]}) are not the positions "
            f"0..{len(rows) - 1} of the {len(rows)} names in {where}: it is not the listing this pickle was made from")
    folder = Path(images).expanduser() if images is not None else recorded_folder
    if folder is None or not folder.is_dir():
        raise BankFormatError(f"{path}: the images the listing {where} names are not at {folder}; pass "
                              "images=<the image folder> so that every key is checked against its file")
    _verify_listing_files(where, rows, folder)
    ids = [Path(name).stem for name, _, _ in rows]
    if len(set(ids)) != len(ids):
        raise BankFormatError(f"{path}: {where} lists two files with the same name stem; ids would repeat")
    mapped = {ids[int(k)]: info for k, info in payload.items()}
    return mapped, {"key_mapping": "position in the recorded os.listdir order -> file stem, each file verified "
                                   "by name, size and sha256", "key_listing": str(where), "key_images": str(folder)}


def import_official_pickle(
    path: str | Path, metadata: Mapping[str, Any] | None = None, allow_numpy_scalars: bool = True,
    key_listing=None, images=None,
) -> LikelihoodBank:
    """Read an official forks' pickle safely and return it as a :class:`LikelihoodBank`.

    ``likelihood`` is recomputed as ``cluster_size / largest_cluster_size`` (eq. 3), as the
    forks do. The noise policy used to make the file cannot be known and is recorded as
    ``'unknown'`` unless ``metadata`` says otherwise.

    Parameters
    ----------
    path : path
    metadata : mapping, optional
        Merged into the bank's metadata.
    allow_numpy_scalars : bool, default=True
        The official notebooks pickle numpy integers; they are rebuilt from their validated raw
        bytes (numeric dtypes only), never by numpy's own unpickling code. ``False`` refuses them.
    key_listing : path, optional
        For integer keys (the official Waymo notebook: positions in ``os.listdir`` of the image
        folder): a listing recorded by :func:`record_key_listing` where the original run listed
        the images. Sample ids become the file stems. A folder (listed again, in whatever order
        this file system gives) or a bare list of names is refused: they map keys by position
        alone. Without it integer keys are refused.
    images : path, optional
        The image folder now, against which every listed file is checked by name, size and
        sha256 (default: the folder the listing was recorded from). A missing, extra or changed
        file is refused.

    Raises
    ------
    UnsafePickleError
        The file asks for anything a bank cannot hold (a class, a function, an object dtype,
        a shared or too deeply nested container); nothing is built or run. Work is linear in
        the file size.
    BankFormatError
        Not a pickle, or not a bank (wrong keys, fields or values); the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no pickle at {path}")
    data = path.read_bytes()
    try:
        payload = safe_load(data, allow_numpy_scalars=allow_numpy_scalars)
    except SafePickleError as exc:
        text = str(exc)
        if text.startswith("not a readable pickle"):
            raise BankFormatError(f"{path} is {text}") from None
        raise UnsafePickleError(f"{path}: {text}; this file is not a likelihood bank or was tampered with, "
                                "nothing was loaded") from None
    if not isinstance(payload, dict) or not payload:
        raise BankFormatError(f"{path}: expected a non-empty dict sample_id -> cluster info, got {type(payload).__name__}")
    meta = {"source_format": "official-pickle", "source_file": str(path), "noise_policy": "unknown"}
    integer_keys = [isinstance(k, (int, np.integer)) for k in payload]
    if all(integer_keys):
        payload, mapping = _map_integer_keys(path, payload, key_listing, images)
        meta.update(mapping)
    elif any(integer_keys):
        raise BankFormatError(f"{path}: sample ids mix strings and integers; a bank's ids are all strings")
    rows = []
    for key, info in payload.items():
        absent = [f for f in OFFICIAL_FIELDS if f not in info] if isinstance(info, dict) else list(OFFICIAL_FIELDS)
        if absent:
            found = sorted(map(str, info))[:5] if isinstance(info, dict) else type(info).__name__
            raise BankFormatError(f"{path}: entry {key!r} lacks {absent}; each entry must be a dict with keys "
                                  f"{list(OFFICIAL_FIELDS)}, found {found}")
        values = [info[f] for f in OFFICIAL_FIELDS]
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in values):
            raise BankFormatError(f"{path}: entry {key!r} must hold integers, got "
                                  f"{[type(v).__name__ for v in values]}")
        rows.append((key, *(int(v) for v in values)))
    table = pd.DataFrame(rows, columns=["sample_id", *OFFICIAL_FIELDS])
    table["sample_id"] = table["sample_id"].astype(object)
    table["likelihood"] = table["cluster_size"] / table["largest_cluster_size"]
    meta.update(dict(metadata or {}))
    try:
        return LikelihoodBank(table=table, metadata=meta)
    except BankFormatError as exc:
        raise BankFormatError(f"{path}: {exc}") from None


