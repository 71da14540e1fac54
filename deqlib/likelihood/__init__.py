"""Rarity signals: a likelihood in (0, 1] per sample, 1 = most common (paper eq. 1-3 and beyond).

A package, one module per family; everything is importable from ``deqlib.likelihood``:

* :mod:`deqlib.likelihood.base`: eq. 1-3 and the noise policies, ``knn_density_likelihood``, the
  stage interface (:class:`RarityContext`, :class:`RaritySignal`), the registry
  :data:`RARITY_SIGNALS` and its first signals: ``cluster`` (eq. 3, the default), ``knn-density``,
  ``consensus-mean``, ``consensus-coassoc``.
* :mod:`deqlib.likelihood.space`: the embedding space the label-free signals share (unit vectors,
  centred, deterministic PCA-50), the k-NN-constrained Ward tree and its cuts, score-to-likelihood
  and rank helpers.
* :mod:`deqlib.likelihood.embedding`: ``lof``, ``knn-cosine``, ``two-sided-density``,
  ``isolation-forest``, ``cleanlab-ood`` and ``glosh``.
* :mod:`deqlib.likelihood.hierarchy`: ``multi-granularity``, ``parent-relative`` and the rank
  fusion ``multi-granularity+lof``.
* :mod:`deqlib.likelihood.columns`: several signals side by side as ``signal:<name>`` columns (the
  explorer colours by them: ``deq explore --signals``).

Every signal is a ``RARITY_SIGNALS`` entry, so banks, ``deq analyze --rarity NAME``,
``build_stages(rarity=NAME)``, the notebooks and the explorer take it by name. docs/likelihood.md
describes each.
"""

from deqlib.likelihood import base, columns, embedding, hierarchy, space
from deqlib.likelihood.base import *  # noqa: F401,F403 - the package's public names
from deqlib.likelihood.base import __all__ as _base_all
from deqlib.likelihood.columns import *  # noqa: F401,F403
from deqlib.likelihood.columns import __all__ as _columns_all
from deqlib.likelihood.embedding import *  # noqa: F401,F403
from deqlib.likelihood.embedding import __all__ as _embedding_all
from deqlib.likelihood.hierarchy import *  # noqa: F401,F403
from deqlib.likelihood.hierarchy import __all__ as _hierarchy_all
from deqlib.likelihood.space import *  # noqa: F401,F403
from deqlib.likelihood.space import __all__ as _space_all

__all__ = [*_base_all, *_space_all, *_embedding_all, *_hierarchy_all, *_columns_all]
