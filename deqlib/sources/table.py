"""The base of table-backed sources: one row per sample, read from the dataset's own index tables.

nuScenes (JSON tables) and the Waymo v2 release (Parquet) list their samples in tables rather
than as image files. What they share lives here: selecting the rows (seeded subsample of
``max_images``), checking that ids are unique, the metadata (the table itself) and the
fingerprint (ids plus size and time of the files the listing depends on). A subclass builds a
:class:`pandas.DataFrame` with ``sample_id`` and ``location`` first, passes it to
:meth:`TableSource._set_table`, and implements :meth:`~deqlib.sources.base.ImageSource.load`.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import pandas as pd

from deqlib.sources.base import ImageSource, _require_unique, _select, _stat_digest


class TableSource(ImageSource):
    """A source whose samples are the rows of a table (``sample_id``, ``location``, attributes).

    Subclasses call :meth:`_select_rows` on their ordered table, then :meth:`_set_table`, and
    name what identifies the listing besides ids and files in :meth:`_identity` (version,
    split, camera...).
    """

    _table: pd.DataFrame
    _ids: list[str]
    _files: list[str]

    @staticmethod
    def _select_rows(table: pd.DataFrame, max_images: int | None, seed: int) -> pd.DataFrame:
        """The seeded subsample of ``max_images`` rows (all rows when None), in table order."""
        return table.iloc[_select(len(table), max_images, seed)].reset_index(drop=True)

    def _set_table(self, table: pd.DataFrame, files: Sequence[str], what: str) -> None:
        """Adopt ``table`` as the listing; ``files`` are the files it was read from or points to
        (their size and modification time go into the fingerprint)."""
        if list(table.columns[:2]) != ["sample_id", "location"]:
            raise ValueError(f"{type(self).__name__}: the table must start with sample_id, location; "
                             f"got {list(table.columns[:2])}")
        _require_unique(table["sample_id"].tolist(), what)
        self._table = table
        self._ids = table["sample_id"].tolist()
        self._files = [str(f) for f in files]

    def _identity(self) -> str:
        """What names this listing besides its ids and files (hashed first by :meth:`fingerprint`)."""
        return f"{self.name}|{self.split}"

    @property
    def sample_ids(self) -> list[str]:
        return self._ids

    def metadata(self) -> pd.DataFrame:
        return self._table.copy()

    def fingerprint(self) -> str:
        """Hash of the identity, ids, and paths, sizes and modification times of the files."""
        digest = hashlib.sha256(self._identity().encode())
        digest.update("\n".join(self._ids).encode())
        _stat_digest(digest, self._files)
        return digest.hexdigest()[:16]
