"""Open a run in the viewers users already have.

* :mod:`deqlib.export.projector` -- TensorBoard's Embedding Projector (tensor, metadata, sprite, config).
* :mod:`deqlib.export.atlas` -- Apple's Embedding Atlas (one Parquet table with coordinates and images).
* :mod:`deqlib.export.fiftyone` -- cluster, likelihood, weight and 3-D points as fields of a FiftyOne dataset.

Each reads the per-sample table of a run (``AnalysisResult.samples`` or
:func:`deqlib.plots.explorer.samples_from_bank`). The viewers themselves are optional: the
writers need none of them; :func:`require` names the ``pip install`` when a caller needs one.
"""

from __future__ import annotations

import importlib

#: Per-sample columns every export carries when present, in this order.
RUN_COLUMNS = ("sample_id", "cluster_id", "cluster_size", "likelihood", "weight", "likelihood_std")
#: Columns of the analysis that are bookkeeping, not something to browse by.
SKIPPED_COLUMNS = ("x", "y", "z", "location", "raw_cluster_id", "is_noise", "largest_cluster_size")


def require(module: str, package: str, purpose: str):
    """Import ``module`` or raise ``ImportError`` saying which ``pip install`` provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{purpose} needs the optional package {package!r}: pip install {package}") from exc


def browse_columns(samples) -> list[str]:
    """The run's columns first (:data:`RUN_COLUMNS`), then metadata; bookkeeping columns left out."""
    first = [c for c in RUN_COLUMNS if c in samples.columns]
    return first + [c for c in samples.columns if c not in first and c not in SKIPPED_COLUMNS]
