"""Saving figures: every PNG the workbook writes goes through here, with its parameters inside.

* :func:`save_png` writes a matplotlib figure atomically under a stable name and stores the
  parameters and the deqlib version as JSON in the PNG's text metadata. No timestamp is
  stored, so regenerating a figure from the same inputs gives the same bytes.
* :func:`save_figure` does the same for the analysis, sweep and training figures, and also draws
  the parameters as a small caption under the plot.
* :func:`read_png_metadata` reads the record back.

Figure modules (:mod:`deqlib.plots.paper`, :mod:`~deqlib.plots.clusters`,
:mod:`~deqlib.plots.stability`, :mod:`~deqlib.plots.sweep`, :mod:`~deqlib.plots.training`) build
figures and call these; none of them writes a file another way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from deqlib import __version__
from deqlib._atomic import atomic_path

if TYPE_CHECKING:  # matplotlib is slow to import: only when a figure is saved
    from matplotlib.figure import Figure

__all__ = ["save_png", "save_figure", "read_png_metadata"]


def save_png(figure: Figure, path: str | Path, *, title: str, parameters: Mapping[str, Any],
             dpi: int = 150) -> Path:
    """Save a matplotlib figure as PNG atomically, with its parameters in the PNG metadata.

    Parameters
    ----------
    figure : matplotlib.figure.Figure
    path : str or Path
        Target file; its folder is created.
    title : str
        Stored as the PNG ``Title``.
    parameters : mapping
        JSON-serialisable; stored as the PNG text key ``deqlib`` together with the deqlib
        version (read back with :func:`read_png_metadata`).
    dpi : int, default=150

    Returns
    -------
    Path
        ``path``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    record = {"deqlib_version": __version__, "figure": path.name, "parameters": dict(parameters)}
    metadata = {
        "Title": title,
        "Software": f"deqlib {__version__}",
        "Description": json.dumps(record, sort_keys=True),
        "deqlib": json.dumps(record, sort_keys=True),
    }
    FigureCanvasAgg(figure)  # Agg renders without a display, whatever the session's backend
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi, metadata=metadata)
    return path


def save_figure(figure, path: str | Path, parameters: Mapping | None = None, title: str | None = None,
                dpi: int = 120) -> Path:
    """Save a matplotlib figure as PNG (atomic) with a caption of its parameters, then close it.

    The caption (``key=value, ... | deqlib <version>``) is drawn under the plot, and the
    parameters are stored as JSON in the PNG metadata (read them back with
    :func:`read_png_metadata`).

    Parameters
    ----------
    figure : matplotlib.figure.Figure
    path : str or Path
        Target file; its folder is created.
    parameters : mapping, optional
        What the figure was made with; values that are not JSON are stored as ``str(value)``.
    title : str, optional
        The PNG ``Title``; default: the file name without its suffix.
    dpi : int, default=120

    Returns
    -------
    Path
        ``path``.
    """
    import matplotlib.pyplot as plt

    parameters = {k: v for k, v in dict(parameters or {}).items()}
    caption = ", ".join(f"{k}={v}" for k, v in parameters.items()) + f" | deqlib {__version__}"
    figure.text(0.01, 0.002, caption, fontsize=6, color="#666666", ha="left", va="bottom", wrap=True)
    try:
        return save_png(figure, path, title=title or Path(path).stem, parameters=json.loads(
            json.dumps(parameters, default=str)), dpi=dpi)
    finally:
        plt.close(figure)


def read_png_metadata(path: str | Path) -> dict:
    """The ``deqlib`` record a figure was saved with: ``deqlib_version``, ``figure``, ``parameters``."""
    from PIL import Image

    with Image.open(path) as image:
        text = dict(getattr(image, "text", {}) or image.info)
    if "deqlib" not in text:
        raise ValueError(f"{path} has no deqlib metadata: was it saved with deqlib.plots.png.save_png?")
    return json.loads(text["deqlib"])
