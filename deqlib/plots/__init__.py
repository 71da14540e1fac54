"""Figures: each module builds figures from deqlib's results; :mod:`deqlib.plots.png` saves them.

* :mod:`deqlib.plots.png` -- saving a figure as PNG (atomic, stable name, its parameters and
  the deqlib version in the metadata and, for :func:`~deqlib.plots.png.save_figure`, a caption).
* :mod:`deqlib.plots.paper` -- figures that need no dataset (Figure 3: the Generalized Focal
  Loss weight; Figure 5: DD3D vs DD3D-DE BEV AP from Table 3).
* :mod:`deqlib.plots.clusters` -- per-dataset cluster plots and likelihood histograms.
* :mod:`deqlib.plots.stability` -- per-sample mean against spread; the run-agreement matrix.
* :mod:`deqlib.plots.sweep` -- a parameter sweep's metrics against one parameter.
* :mod:`deqlib.plots.training` -- the training experiment's paired differences to CE.
* :mod:`deqlib.plots.explorer` -- the interactive cluster explorer.

Submodules are not imported here: matplotlib and plotly are slow to import, so callers import
the module they need. Saved figures record their parameters and the deqlib version.
"""
