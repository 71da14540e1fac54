"""Add a run's cluster, likelihood, weight and 3-D t-SNE point as fields of a FiftyOne dataset.

FiftyOne (``pip install fiftyone``) is where many computer-vision users browse their datasets.
:func:`add_fields` matches the run's samples to the dataset's by a key (default: the image file
path, which is ``location`` in ``AnalysisResult.samples`` for file-based sources) and writes one
field per value with ``dataset.set_values(..., key_field=...)``. It uses only
``dataset.values`` and ``dataset.set_values``.

:func:`load_dataset` opens a dataset by name (``deq explore --fiftyone NAME``) and turns a missing
FiftyOne, a database that cannot start or an unknown name into one clear error.

Not run against a live FiftyOne here: FiftyOne needs a MongoDB server, which cannot be installed
offline on the machines this workbook is built on (``fiftyone-db`` downloads ``mongod`` at first
use). The tests drive it with a stand-in dataset object implementing those two methods, and a
stand-in ``fiftyone`` module for :func:`load_dataset`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["add_fields", "load_dataset"]

_FIELDS = {"cluster_id": int, "cluster_size": int, "likelihood": float, "weight": float, "likelihood_std": float}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def load_dataset(name: str):
    """The FiftyOne dataset ``name``, or one clear error.

    Raises
    ------
    RuntimeError
        FiftyOne is not installed (names the ``pip install``), or it cannot start: its database
        (MongoDB, started or downloaded by ``fiftyone-db`` at first use) cannot run on this machine.
    ValueError
        There is no dataset ``name`` (the message lists the ones there are).
    """
    try:
        import fiftyone
    except ImportError as exc:
        raise RuntimeError("--fiftyone needs the optional package 'fiftyone': pip install fiftyone") from exc
    except Exception as exc:  # noqa: BLE001 - fiftyone may start its database while importing
        raise RuntimeError(f"FiftyOne could not start ({_first_line(exc)}); its database, MongoDB, must be able to "
                           "run on this machine (see FiftyOne's install notes)") from exc
    try:
        if not fiftyone.dataset_exists(name):
            names = list(fiftyone.list_datasets())
            raise ValueError(f"FiftyOne has no dataset {name!r}; it has {names[:10] if names else 'none'}: create "
                             "it (e.g. fiftyone.Dataset.from_dir(..., name=..., persistent=True)) or pick one of those")
        return fiftyone.load_dataset(name)
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - database errors come in many types; say which, in one line
        raise RuntimeError(f"FiftyOne could not start ({_first_line(exc)}) to open dataset {name!r}; its database, "
                           "MongoDB, must be able to run on this machine (see FiftyOne's install notes)") from exc


def add_fields(dataset, samples: pd.DataFrame, key_field: str = "filepath", key_column: str = "location",
               prefix: str = "deq_", allow_missing: bool = False) -> list[str]:
    """Write ``<prefix>cluster_id``, ``cluster_size``, ``likelihood``, ``weight`` (``likelihood_std``
    when present) and ``<prefix>tsne`` (``[x, y, z]``) onto the matching samples of ``dataset``.

    Parameters
    ----------
    dataset : fiftyone.core.dataset.Dataset
        The user's dataset (or view).
    samples : DataFrame
        The run's per-sample table (``AnalysisResult.samples``, or
        :func:`deqlib.plots.explorer.samples_from_bank` with the source's metadata).
    key_field : str, default="filepath"
        The dataset field that identifies a sample.
    key_column : str, default="location"
        The ``samples`` column holding the same values (``sample_id`` when the dataset stores ids).
    prefix : str, default="deq_"
        Prefix of the new field names.
    allow_missing : bool, default=False
        False: every dataset sample must be in ``samples``, else ``ValueError`` names some (a
        field left empty would read as "no likelihood"). True: those samples get ``None``.

    Returns
    -------
    list of str
        The field names written.
    """
    if key_column not in samples.columns:
        raise ValueError(f"samples has no column {key_column!r} to match the dataset's {key_field!r} with; "
                         f"pass key_column= one of {list(samples.columns)}")
    table = samples.assign(_key=samples[key_column].astype(str))
    if table["_key"].duplicated().any():
        raise ValueError(f"column {key_column!r} repeats values, e.g. {table['_key'][table['_key'].duplicated()].iloc[0]!r}"
                         ": it cannot identify samples")
    table = table.set_index("_key")
    keys = [str(k) for k in dataset.values(key_field)]
    absent = [k for k in keys if k not in table.index]
    if absent and not allow_missing:
        raise ValueError(f"{len(absent)} of {len(keys)} dataset samples are not in the run, e.g. {absent[:3]}: "
                         "pass the run made on this dataset, another key_field/key_column, or allow_missing=True")
    present = [k for k in keys if k in table.index]
    written = []
    for column, kind in _FIELDS.items():
        if column in table.columns:
            values = {k: kind(v) for k, v in table.loc[present, column].items()}
            values.update({k: None for k in absent})
            dataset.set_values(prefix + column, values, key_field=key_field)
            written.append(prefix + column)
    if {"x", "y", "z"} <= set(table.columns):
        points = table.loc[present, ["x", "y", "z"]].to_numpy(dtype=np.float64)
        values = {k: [float(v) for v in p] for k, p in zip(present, points)}
        values.update({k: None for k in absent})
        dataset.set_values(prefix + "tsne", values, key_field=key_field)
        written.append(prefix + "tsne")
    return written
