"""The per-sample table as CSV (``deq analyze --samples-csv``): written quoted, read back row for row.

File names may hold commas, quotes, line feeds and lone carriage returns; pandas' default quotes only
what holds its line terminator, so a ``\\r`` in a name split a row in two (issue 19). These two
functions are the one way the workbook writes and reads that table.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from deqlib._atomic import atomic_path

__all__ = ["read_samples_csv", "write_samples_csv"]


def write_samples_csv(samples: pd.DataFrame, path: str | Path) -> Path:
    """Write a per-sample table as CSV (atomic) that reads back row for row, whatever the file names.

    Every text field is quoted (``csv.QUOTE_NONNUMERIC``), so a sample id or path holding a comma, a
    quote, a line feed or a lone carriage return stays one field of one row; pandas' default quotes
    only what holds its line terminator, and a ``\\r`` in a file name split a row in two (60 samples
    read back as 62 rows). UTF-8, ``\\n`` line ends. Read it with :func:`read_samples_csv`.
    """
    import csv

    path = Path(path)
    with atomic_path(path) as tmp:
        samples.to_csv(tmp, index=False, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n", encoding="utf-8")
    return path


def read_samples_csv(path: str | Path) -> pd.DataFrame:
    """Read a table written by :func:`write_samples_csv`: ids and locations stay text (``'000001'``,
    ``'NA'`` and ``'nan'`` are ids, not numbers or missing values)."""
    header = pd.read_csv(path, nrows=0, encoding="utf-8").columns
    text_columns = {c: str for c in ("sample_id", "location") if c in header}
    missing = {c: ["", "nan", "NaN"] for c in header if c not in text_columns}  # other columns: as pandas reads
    return pd.read_csv(path, dtype=text_columns, keep_default_na=False, na_values=missing, encoding="utf-8")
