"""Figures: each module builds figures from deqlib's results and saves them under stable names.

* :mod:`deqlib.plots.paper` -- figures that need no dataset (Figure 3: the Generalized Focal
  Loss weight; Figure 5: DD3D vs DD3D-DE BEV AP from Table 3).
* :mod:`deqlib.plots.clusters` -- per-dataset cluster plots and likelihood histograms.
* :mod:`deqlib.plots.explorer` -- the interactive cluster explorer.

Submodules are not imported here: matplotlib and plotly are slow to import, so callers import
the module they need. Saved figures record their parameters and the deqlib version.
"""
