"""Rarity signals from a cluster hierarchy in the embedding space: multi-granularity consensus,
parent-relative rarity, and their rank fusion with LOF (a candidate default).

The hierarchy is a Ward tree constrained to the 10-NN graph of
:func:`deqlib.likelihood.space.embedding_space` (:func:`deqlib.likelihood.space.ward_cuts`). Eq. 3
on one cut finds groups that are small at that scale; a rare group that is small at one scale
may sit inside a large one at another, hence several cuts.
"""

from __future__ import annotations

import numpy as np

from deqlib._validation import check_int
from deqlib.likelihood.base import RaritySignal, _group_sizes, _register
from deqlib.likelihood.embedding import local_outlier_factor, signal_space
from deqlib.likelihood.space import MAX_TREE_POINTS, embedding_space, granularity_cuts, percentile_ranks, ward_cuts

__all__ = ["DEFAULT_DIVISORS", "multi_granularity_likelihood", "MultiGranularitySignal", "ParentRelativeSignal",
           "RankFusionSignal"]

#: Cuts of the tree at N / d clusters for each d: from about 1,000 samples per cluster to 16.
DEFAULT_DIVISORS = (1000, 500, 250, 125, 64, 32, 16)
VIEWS = ("plain", "whitened")


def _check_divisors(divisors) -> tuple[int, ...]:
    try:
        values = tuple(divisors)
    except TypeError:
        raise ValueError(f"divisors must be a sequence of integers >= 1, got {divisors!r}") from None
    if not values:
        raise ValueError("divisors must hold at least one integer >= 1 (N / d clusters per cut), got none")
    return tuple(check_int("divisors", d, 1) for d in values)


def _check_views(views) -> tuple[str, ...]:
    values = (views,) if isinstance(views, str) else tuple(views)
    if not values or any(v not in VIEWS for v in values):
        raise ValueError(f"views must be a non-empty sequence of {VIEWS}, got {views!r}")
    return values


def multi_granularity_likelihood(spaces, divisors=DEFAULT_DIVISORS, n_neighbors: int = 10,
                                 max_tree_points: int | None = MAX_TREE_POINTS) -> tuple[np.ndarray, dict]:
    """Geometric mean, over views and cuts, of eq. 3 (``|C_i| / max_j |C_j|``) on a Ward tree's cuts.

    Parameters
    ----------
    spaces : sequence of ndarray (N, d)
        The views (each gets its own tree).
    divisors : sequence of int
        Cut each tree at ``N / d`` clusters (:func:`deqlib.likelihood.space.granularity_cuts`).
    n_neighbors : int
        The trees' connectivity graph.
    max_tree_points : int or None
        Above this N each tree is built on k-means micro-clusters (:func:`deqlib.likelihood.space.ward_cuts`).

    Returns
    -------
    likelihood : ndarray (N,)
        In (0, 1]; not rescaled.
    found : dict
        ``cuts`` (numbers of clusters) and ``n_clusters_below_1_percent`` per view and cut (how many
        clusters hold under 1 percent of the samples).
    """
    n = spaces[0].shape[0]
    cuts = granularity_cuts(n, divisors)
    log_sum = np.zeros(n)
    terms = 0
    small = {}
    for view, Z in enumerate(spaces):
        for cut, labels in ward_cuts(Z, cuts, n_neighbors=n_neighbors, max_tree_points=max_tree_points).items():
            sizes = _group_sizes(labels)
            log_sum += np.log(sizes / float(sizes.max()))
            terms += 1
            counts = np.bincount(labels)
            small[f"view{view}_cut{cut}"] = int((counts < 0.01 * n).sum())
    return np.exp(log_sum / terms), {"cuts": cuts, "n_clusters_below_1_percent": small}


def _views(plain: np.ndarray, views) -> list[np.ndarray]:
    """The views of one PCA: as it is, and each component at unit variance (what ``whiten=True`` gives: a
    component's eigenvalue is its variance), so the PCA is computed once."""
    return [plain if view == "plain" else plain / np.maximum(plain.std(axis=0, ddof=1), np.finfo(float).tiny)
            for view in views]


class _HierarchySignal(RaritySignal):
    """Shared parameter checks of the hierarchy signals."""

    needs = ("embeddings",)

    def _checked(self, n_samples: int) -> int:
        n_neighbors = check_int("n_neighbors", self.n_neighbors, 1)
        if n_samples < 3:
            raise ValueError(f"the rarity signal {self.name!r} needs at least 3 samples, got {n_samples}")
        return n_neighbors


@_register("multi-granularity consensus: geometric mean of eq. 3 over Ward-tree cuts at N/1000 ... N/16 "
           "clusters, in two views of the embedding space (PCA-50, and PCA-50 at unit variance)")
class MultiGranularitySignal(_HierarchySignal):
    """Eq. 3 at many scales at once: a sample is rare if its group is small at several granularities.

    The embedding space (:func:`~deqlib.likelihood.space.embedding_space`) is seen in two views,
    the PCA components as they are and scaled to unit variance (so small directions, where an
    artefact such as darkening may show, count as much as large ones). Each view gets a Ward tree
    on its ``n_neighbors``-NN graph, cut at ``N / d`` clusters for each divisor ``d``; the
    likelihood is the geometric mean of eq. 3 over all views and cuts, divided by its maximum
    (the most common sample gets 1). Deterministic: no seed is involved.

    Parameters
    ----------
    divisors : sequence of int, default=(1000, 500, 250, 125, 64, 32, 16)
        Cuts at ``N / d`` clusters (at least 2; duplicates merged), from about 1,000 samples per
        cluster to 16.
    n_neighbors : int, default=10
        The connectivity graph of the Ward trees.
    n_components : int or None, default=50
        PCA components of the embedding space.
    views : sequence of {'plain', 'whitened'}, default=('plain', 'whitened')
        The views averaged over.
    max_tree_points : int or None, default=100,000
        Above this N the Ward trees are built on ``max_tree_points // 4`` k-means micro-clusters
        (:func:`deqlib.likelihood.space.ward_cuts`); at or below it, on every sample (N = 70,000: about
        3 minutes). None: always every sample.

    Attributes
    ----------
    likelihood_, params_
        See :class:`~deqlib.likelihood.RaritySignal`; ``params_`` adds ``cuts`` and
        ``n_clusters_below_1_percent``.
    """

    name = "multi-granularity"

    def __init__(self, divisors=DEFAULT_DIVISORS, n_neighbors: int = 10, n_components: int | None = 50,
                 views=VIEWS, max_tree_points: int | None = MAX_TREE_POINTS):
        self.divisors = divisors
        self.n_neighbors = n_neighbors
        self.n_components = n_components
        self.views = views
        self.max_tree_points = max_tree_points

    def fit(self, context) -> "MultiGranularitySignal":
        divisors, views = _check_divisors(self.divisors), _check_views(self.views)
        X = self._need(context, "embeddings", "the encoder's vectors, one row per sample")
        n_neighbors = self._checked(len(X))
        spaces = _views(embedding_space(X, self.n_components), views)
        likelihood, found = multi_granularity_likelihood(spaces, divisors, n_neighbors, self.max_tree_points)
        return self._finish(likelihood / likelihood.max(), **found)


@_register("parent-relative: a sub-cluster's size over its largest sibling's inside its parent cluster, times "
           "the parent's eq. 3 (Ward tree in the embedding space, N/500 parents, N/50 children)")
class ParentRelativeSignal(_HierarchySignal):
    """Rarity inside the parent cluster: eq. 3 computed among the sub-clusters of each parent.

    A Ward tree on the embedding space's ``n_neighbors``-NN graph is cut twice: at ``N /
    parent_divisor`` clusters (the parents, about classes) and ``N / child_divisor`` (the children,
    nested in them, as cuts of one tree are). A sample's likelihood is its child's size over the
    largest child of the same parent, times eq. 3 of its parent::

        likelihood(i) = |child(i)| / max_{c in parent(i)} |c|  *  |parent(i)| / max_p |p|

    The first factor makes a small group inside a large cluster (darkened shirts among shirts)
    rare even when its cluster is the largest; the second keeps a rare parent (a rare class,
    whose one child is its own largest) rare.

    Parameters
    ----------
    parent_divisor : int, default=500
        Parents: ``N / parent_divisor`` clusters (at least 2).
    child_divisor : int, default=50
        Children: ``N / child_divisor`` clusters; must be below ``parent_divisor``.
    n_neighbors : int, default=10
        The Ward tree's connectivity graph.
    n_components : int or None, default=50
        PCA components of the embedding space.
    max_tree_points : int or None, default=100,000
        Above this N the Ward trees are built on ``max_tree_points // 4`` k-means micro-clusters
        (:func:`deqlib.likelihood.space.ward_cuts`); at or below it, on every sample (N = 70,000: about
        3 minutes). None: always every sample.
    """

    name = "parent-relative"

    def __init__(self, parent_divisor: int = 500, child_divisor: int = 50, n_neighbors: int = 10,
                 n_components: int | None = 50, max_tree_points: int | None = MAX_TREE_POINTS):
        self.parent_divisor = parent_divisor
        self.child_divisor = child_divisor
        self.n_neighbors = n_neighbors
        self.n_components = n_components
        self.max_tree_points = max_tree_points

    def fit(self, context) -> "ParentRelativeSignal":
        parent_divisor = check_int("parent_divisor", self.parent_divisor, 1)
        child_divisor = check_int("child_divisor", self.child_divisor, 1)
        if child_divisor >= parent_divisor:
            raise ValueError(f"child_divisor must be below parent_divisor (children are the finer cut), got "
                             f"child_divisor={child_divisor}, parent_divisor={parent_divisor}")
        Z = signal_space(self, context, self.n_components)
        n_neighbors = self._checked(Z.shape[0])
        n_parents = granularity_cuts(Z.shape[0], (parent_divisor,))[0]
        n_children = max(granularity_cuts(Z.shape[0], (child_divisor,))[0], n_parents)
        cuts = ward_cuts(Z, (n_parents, n_children), n_neighbors=n_neighbors, max_tree_points=self.max_tree_points)
        parents, children = cuts[n_parents], cuts[n_children]
        child_sizes = np.bincount(children)
        largest_sibling = np.zeros(int(parents.max()) + 1, dtype=np.int64)
        np.maximum.at(largest_sibling, parents, child_sizes[children])
        parent_sizes = np.bincount(parents)
        likelihood = (child_sizes[children] / largest_sibling[parents].astype(np.float64)
                      * parent_sizes[parents] / float(parent_sizes.max()))
        return self._finish(likelihood / likelihood.max(), n_parents=n_parents, n_children=n_children)


@_register("rank fusion of multi-granularity and LOF: the lower of the two percentile ranks (rare if rare by "
           "either); the candidate default")
class RankFusionSignal(_HierarchySignal):
    """``multi-granularity`` and ``lof`` fused by rank: a sample is as rare as the rarer of its two ranks.

    Each signal's likelihood becomes a percentile rank in (0, 1] (ties share their average rank,
    so the row order does not matter); the fused likelihood is the lower of the two, divided by its
    maximum. Multi-granularity finds groups that are small at some scale (rare classes, dark or
    defocused images); LOF finds samples sparser than their neighbours inside a large group
    (fog, rain). The embedding space is computed once for both.

    Parameters
    ----------
    divisors, n_neighbors, views
        Of the multi-granularity part (:class:`MultiGranularitySignal`).
    lof_neighbors : int, default=20
        k of the LOF part (``N - 1`` where N is smaller, so the signal runs on any N >= 3; the
        value used is ``params_['lof_neighbors_used']``).
    n_components : int or None, default=50
        PCA components of the embedding space (both parts).
    max_tree_points : int or None, default=100,000
        Above this N the Ward trees are built on ``max_tree_points // 4`` k-means micro-clusters
        (:func:`deqlib.likelihood.space.ward_cuts`); at or below it, on every sample (N = 70,000: about
        3 minutes). None: always every sample.

    Attributes
    ----------
    likelihood_, params_
        See :class:`~deqlib.likelihood.RaritySignal`.
    component_likelihoods_ : dict of str -> ndarray (N,)
        ``'multi-granularity'`` and ``'lof'``: each part's own likelihood (as that signal gives it).
    """

    name = "multi-granularity+lof"

    def __init__(self, divisors=DEFAULT_DIVISORS, n_neighbors: int = 10, views=VIEWS, lof_neighbors: int = 20,
                 n_components: int | None = 50, max_tree_points: int | None = MAX_TREE_POINTS):
        self.divisors = divisors
        self.n_neighbors = n_neighbors
        self.views = views
        self.lof_neighbors = lof_neighbors
        self.n_components = n_components
        self.max_tree_points = max_tree_points

    def fit(self, context) -> "RankFusionSignal":
        divisors, views = _check_divisors(self.divisors), _check_views(self.views)
        X = self._need(context, "embeddings", "the encoder's vectors, one row per sample")
        n_neighbors = self._checked(len(X))
        # a default that works on any N: fewer samples than neighbours compare each with all the others
        lof_neighbors = min(check_int("lof_neighbors", self.lof_neighbors, 1), len(X) - 1)
        plain = embedding_space(X, self.n_components)
        spaces = _views(plain, views)
        granular, found = multi_granularity_likelihood(spaces, divisors, n_neighbors, self.max_tree_points)
        lof = np.minimum(1.0, 1.0 / local_outlier_factor(plain, lof_neighbors))
        self.component_likelihoods_ = {"multi-granularity": granular / granular.max(), "lof": lof}
        fused = np.minimum(percentile_ranks(granular), percentile_ranks(lof))
        return self._finish(fused / fused.max(), lof_neighbors_used=lof_neighbors, **found)
