"""Step two of the method: embeddings -> 3-D t-SNE coordinates.

Reducers are scikit-learn estimators registered in :data:`REDUCERS` (``get_reducer(name)`` or
``REDUCERS.create(name, **params)``); each has ``fit(X) -> self`` setting ``embedding_``
(N x n_components, float64), ``fit_transform(X)``, ``get_params``/``set_params`` and
``cache_key()`` (what the output depends on). Registered:

:class:`OpenTSNEReducer` (default)
    openTSNE (one thread by default: the map depends on the thread count, :data:`DEFAULT_TSNE_THREADS`;
    ``n_jobs=-1`` opts into every core). 3-D needs Barnes-Hut (openTSNE's FFT method refuses more than
    two dimensions); ``n_components=2`` may use FFT, a documented deviation from the paper's
    3-D plots. The iteration schedule is explicit and named (:data:`SCHEDULES`):

    * ``"official"``: 250 early-exaggeration + 250 normal iterations, theta 0.5: the same
      schedule as the official scikit-learn run (its ``n_iter=500`` *includes* the 250
      exaggerated iterations);
    * ``"fast"`` (default): 125 + 100 iterations, theta 0.8: measured on Fashion-MNIST to give
      clusters as close to the classes (NMI) as ``"official"`` about 3x faster
      (``docs/analysis.md``, ``benchmarks/analysis``).

    Optional PCA pre-reduction (default 50 dims, when the input has more) before the
    affinities; past ``sample_threshold`` samples it fits on a random ``sample_size`` subset
    and places the rest with openTSNE's ``transform`` (or, with ``placement="neighbors"``, at
    the median of their nearest fitted neighbours, without optimisation).
:class:`SklearnTSNEReducer`
    scikit-learn's TSNE exactly as the official analysis configures it (``n_components=3,
    perplexity=30, max_iter=500, learning_rate='auto', init='pca'``, seed 33). Used by the
    ``reference`` mode of :func:`deqlib.pipeline.analyze`.
:class:`UMAPReducer` (``'umap'``, needs ``umap-learn``)
    UMAP 3-D with umap-learn's defaults and the same optional PCA-50 pre-reduction. Not a
    t-SNE: its registry entry says ``output='umap'``, so eps in official t-SNE units is refused.

Any scikit-learn-style reducer (``fit_transform``, or ``fit`` then ``embedding_``: PCA,
TruncatedSVD, Isomap, scikit-learn's TSNE, ...) is a stage too: :func:`as_reducer` adapts an
instance (:func:`deqlib.stages.build_stages` does it for any object passed as ``reducer``), and
``REDUCERS.register("pca", output="pca", ...)(SklearnReducer.wrapping(PCA))`` registers a class.

The two t-SNEs give coordinates of different spread (openTSNE's is about 3x wider on 20,000 points),
which is why :mod:`deqlib.cluster` offers a scale-aware eps.

A package, one module per family, each registering its reducers in :data:`REDUCERS` beside their
code: :mod:`.base` (the registry, the checks and the PCA pre-reduction every reducer shares),
:mod:`.tsne` (the two t-SNEs, their schedules and shared affinities), :mod:`.umap` (UMAP) and
:mod:`.adapter` (:class:`SklearnReducer`, :func:`as_reducer`). Every module of the package is
imported here, so a new one registers its reducers by existing; every public name is importable
from ``deqlib.reduce``.
"""

from __future__ import annotations

from deqlib._validation import check_embeddings
from deqlib.reduce.base import REDUCERS, check_not_all_identical, get_reducer, reducer_output
from deqlib.reduce.tsne import (DEFAULT_SCHEDULE, DEFAULT_TSNE_THREADS, INITIALIZATIONS, PLACEMENTS, SCHEDULES,
                                OpenTSNEReducer, SklearnTSNEReducer, TSNEAffinities, min_fit_samples)
from deqlib.reduce.umap import UMAPReducer
from deqlib.reduce.adapter import SklearnReducer, as_reducer

__all__ = [
    "REDUCERS",
    "SCHEDULES",
    "DEFAULT_SCHEDULE",
    "DEFAULT_TSNE_THREADS",
    "PLACEMENTS",
    "INITIALIZATIONS",
    "OpenTSNEReducer",
    "SklearnTSNEReducer",
    "UMAPReducer",
    "SklearnReducer",
    "TSNEAffinities",
    "as_reducer",
    "reducer_output",
    "get_reducer",
    "check_embeddings",
    "check_not_all_identical",
    "min_fit_samples",
]


def _import_reducer_modules() -> None:
    """Import every module of this package, so that a new reducer module registers its reducers in
    :data:`REDUCERS` by existing (as :mod:`deqlib.sources` does for dataset modules)."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


_import_reducer_modules()
