"""The embedding space the label-free rarity signals measure in, and the maths they share.

* :func:`embedding_space`: L2-normalise each vector, centre, project on the top principal
  components (50 by default), optionally scaled to unit variance per component. The PCA is an
  eigendecomposition of the covariance matrix (``D x D``), with each component's sign fixed, so
  it is deterministic (no randomised solver, no seed) and independent of the row order up to
  rounding.
* :func:`ward_cuts`: a Ward agglomerative tree constrained to a k-NN graph, cut at several
  numbers of clusters in one pass over its merges.
* :func:`relative_likelihood`: a positive "rarity" score (larger = rarer) mapped into (0, 1] as
  ``min(1, s_ref / s)``, relative to a low quantile of the scores, as
  :func:`deqlib.likelihood.knn_density_likelihood` does with k-NN radii.
* :func:`percentile_ranks`: ranks in (0, 1] (ties share their average rank), for rank fusion.

Pure numpy / scikit-learn; no I/O.
"""

from __future__ import annotations

import numpy as np

from deqlib._validation import check_embeddings, check_int

__all__ = ["embedding_space", "ward_cuts", "micro_clusters", "MAX_TREE_POINTS", "granularity_cuts",
           "relative_likelihood", "percentile_ranks", "kth_neighbour_distance"]


def embedding_space(X, n_components: int = 50, whiten: bool = False, centre: bool = True) -> np.ndarray:
    """The vectors as the embedding-space signals see them: unit length, centred, top principal components.

    Parameters
    ----------
    X : array-like, shape (N, D)
        The encoder's vectors (finite; float32 or float64).
    n_components : int or None, default=50
        Components kept; fewer when ``D`` or ``N - 1`` is smaller, and components with no variance
        (below ``1e-12`` of the largest) are dropped. None: no PCA (the unit vectors, centred).
    whiten : bool, default=False
        Scale each component to unit variance (every direction counts alike; the second view of
        the multi-granularity signal).
    centre : bool, default=True
        Subtract the mean before projecting. False keeps the directions of the original vectors
        (cosine similarities survive the projection up to the dropped components); distances
        are the same either way.

    Returns
    -------
    ndarray, shape (N, n_kept), float64
        Row ``i`` is ``(x_i / |x_i| - mean) @ V`` with ``V`` the covariance's top eigenvectors, each
        signed so that its largest-magnitude entry is positive. A zero vector stays zero before centring.
    """
    X = np.asarray(check_embeddings(X, "embeddings", min_samples=2), dtype=np.float64)
    n_components = check_int("n_components", n_components, 1, allow_none=True)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    X = X / np.where(norms > 0, norms, 1.0)
    mean = X.mean(axis=0)
    X = X - mean
    if n_components is None:
        X = X if centre else X + mean
        return X / X.std(axis=0).clip(np.finfo(float).tiny) if whiten else X
    covariance = X.T @ X / (X.shape[0] - 1)
    eigenvalues, eigenvectors = _top_eigenpairs(covariance, min(n_components, X.shape[1], X.shape[0] - 1))
    keep = eigenvalues > 1e-12 * max(float(eigenvalues[0]), np.finfo(float).tiny)
    eigenvalues, eigenvectors = eigenvalues[keep], eigenvectors[:, keep]
    signs = np.sign(eigenvectors[np.argmax(np.abs(eigenvectors), axis=0), np.arange(eigenvectors.shape[1])])
    projected = (X if centre else X + mean) @ (eigenvectors * signs)
    if whiten:
        projected /= np.sqrt(eigenvalues)
    return projected


def _top_eigenpairs(covariance: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` largest eigenvalues (descending) and their eigenvectors of a symmetric matrix.

    LAPACK's ``evr`` for the top ``n`` only, on one BLAS thread: on a busy 2-core machine two threads
    made this step 7-10 times slower (2026-12-02: 47 s against 3.6 s for 1,280 x 1,280), and one
    thread gives the same numbers whatever the machine's core count."""
    from scipy.linalg import eigh
    from threadpoolctl import threadpool_limits

    size = covariance.shape[0]
    with threadpool_limits(limits=1, user_api="blas"):
        eigenvalues, eigenvectors = eigh(covariance, subset_by_index=[size - n, size - 1], driver="evr")
    return eigenvalues[::-1], eigenvectors[:, ::-1]


def kth_neighbour_distance(Z: np.ndarray, k: int) -> np.ndarray:
    """Euclidean distance from each row of ``Z`` to its ``k``-th nearest other row, shape (N,)."""
    from sklearn.neighbors import NearestNeighbors

    if not 1 <= k < Z.shape[0]:
        raise ValueError(f"k must be an integer with 1 <= k < N = {Z.shape[0]}, got {k!r}")
    distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(Z).kneighbors(Z)
    return distances[:, k]  # column 0 is the sample itself


def granularity_cuts(n_samples: int, divisors=(1000, 500, 250, 125, 64, 32, 16)) -> list[int]:
    """Numbers of clusters ``N / d`` for each divisor ``d`` (rounded, at least 2, below N), distinct, ascending."""
    cuts = {min(max(2, int(round(n_samples / d))), n_samples - 1) for d in divisors}
    return sorted(c for c in cuts if c >= 1)


#: Above this many points, :func:`ward_cuts` builds its tree on ``MAX_TREE_POINTS // 4`` k-means
#: micro-clusters: the exact tree took 14 s at N = 20,000, 30 s at 35,000 and 164 s at 70,000 (2-core AMD
#: EPYC, load 3-4, 2026-12-03), growing about as N^2.4 at the top, so about 7 minutes at 100,000 and half an
#: hour at Waymo's 198,068.
MAX_TREE_POINTS = 100_000


def ward_cuts(Z: np.ndarray, n_clusters, n_neighbors: int = 10,
              max_tree_points: int | None = MAX_TREE_POINTS) -> dict[int, np.ndarray]:
    """Partitions of a k-NN-constrained Ward tree at each number of clusters in ``n_clusters``.

    Parameters
    ----------
    Z : ndarray, shape (N, d)
        Points (e.g. :func:`embedding_space`).
    n_clusters : iterable of int
        Where to cut (each in ``[1, N]``).
    n_neighbors : int, default=10
        The connectivity graph: each point linked to its ``n_neighbors`` nearest points (made
        symmetric); scikit-learn's ``ward_tree`` joins disconnected parts itself.
    max_tree_points : int or None, default=100,000
        Above this N the tree is built on ``max_tree_points // 4`` k-means micro-clusters
        (:func:`micro_clusters`) and each sample takes its micro-cluster's label, so N = 200,000
        takes minutes, not half an hour; a cut finer than the micro-clusters is clipped to their
        number. An approximation: on the rarity benchmark's 11,200 vectors with micro-clusters
        of about 1 sample, multi-granularity's ranking agreed with the exact tree's at Spearman
        0.82. None: always the exact tree. At or below it the result is the exact tree's.

    Returns
    -------
    dict int -> ndarray (N,) of int64
        Labels ``0..n-1`` per cut, numbered by first appearance in row order.
    """
    n = Z.shape[0]
    cuts = sorted({int(c) for c in n_clusters}, reverse=True)  # fine first: fewer merges done
    if not cuts or cuts[-1] < 1 or cuts[0] > n:
        raise ValueError(f"n_clusters must lie in [1, N = {n}], got {sorted(cuts)}")
    max_tree_points = check_int("max_tree_points", max_tree_points, 2, allow_none=True)
    if max_tree_points is None or n <= max_tree_points:
        return _exact_ward_cuts(Z, cuts, n_neighbors)
    centres, assignment = micro_clusters(Z, max(2, max_tree_points // 4))
    on_centres = _exact_ward_cuts(centres, sorted({min(c, len(centres)) for c in cuts}, reverse=True), n_neighbors)
    return {cut: _numbered_by_first_appearance(on_centres[min(cut, len(centres))][assignment]) for cut in cuts}


def _numbered_by_first_appearance(labels: np.ndarray) -> np.ndarray:
    """The same partition with clusters numbered ``0..n-1`` in the order they first appear in the rows."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    return np.argsort(np.argsort(first))[inverse].astype(np.int64)


def micro_clusters(Z: np.ndarray, n_centres: int, seed: int = 0, max_iter: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """``n_centres`` k-means centres of ``Z`` and each row's centre, independent of the row order.

    The rows are put in a canonical order (lexicographic on their coordinates) before a seeded
    k-means (random initial centres, which follow the density, ``max_iter`` Lloyd steps, one
    thread), so a permutation of the rows permutes the assignment and nothing else, and the
    result does not depend on the machine's core count. Empty centres are dropped.

    Returns
    -------
    centres : ndarray (M, d), M <= n_centres
    assignment : ndarray (N,) of int64, indices into ``centres``
    """
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    order = np.lexsort(Z.T[::-1])
    with threadpool_limits(limits=1):
        model = KMeans(n_clusters=n_centres, init="random", n_init=1, max_iter=max_iter, random_state=seed,
                       algorithm="lloyd").fit(Z[order])
    used, canonical_assignment = np.unique(model.labels_, return_inverse=True)
    assignment = np.empty(len(Z), dtype=np.int64)
    assignment[order] = canonical_assignment
    return model.cluster_centers_[used], assignment


def _exact_ward_cuts(Z: np.ndarray, cuts: list[int], n_neighbors: int) -> dict[int, np.ndarray]:
    """:func:`ward_cuts` on every point (``cuts`` descending, checked)."""
    import warnings

    from sklearn.cluster import ward_tree
    from sklearn.neighbors import kneighbors_graph

    n = Z.shape[0]
    k = min(n_neighbors, n - 1)
    connectivity = kneighbors_graph(Z, n_neighbors=k, include_self=False)
    connectivity = connectivity + connectivity.T
    with warnings.catch_warnings():  # "the number of connected components ... Completing it": expected, handled
        warnings.simplefilter("ignore", UserWarning)
        children = ward_tree(Z, connectivity=connectivity)[0]
    parent = np.arange(2 * n - 1)

    def find(i: int) -> int:
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    result: dict[int, np.ndarray] = {}
    merges_done = 0
    for cut in cuts:
        target = n - cut  # merges that leave `cut` clusters
        while merges_done < target:
            left, right = children[merges_done]
            node = n + merges_done
            parent[find(int(left))] = node
            parent[find(int(right))] = node
            merges_done += 1
        roots = np.fromiter((find(i) for i in range(n)), dtype=np.int64, count=n)
        result[cut] = _numbered_by_first_appearance(roots)
    return result


def relative_likelihood(score, reference_quantile: float = 0.01) -> np.ndarray:
    """``min(1, s_ref / s)`` for a positive rarity score ``s`` (larger = rarer), ``s_ref`` its low quantile.

    ``s_ref`` is the ``reference_quantile`` of the scores (``method='lower'``, so it is one sample's
    score and that sample gets exactly 1); a score of 0 (or below) gets 1. Values lie in (0, 1].
    """
    score = np.asarray(score, dtype=np.float64)
    reference = float(np.quantile(score, reference_quantile, method="lower"))
    if reference <= 0:
        positive = score[score > 0]
        if positive.size == 0:
            return np.ones(score.size)
        reference = float(positive.min())
    with np.errstate(divide="ignore", invalid="ignore"):
        likelihood = np.where(score > 0, reference / score, 1.0)
    return np.minimum(likelihood, 1.0)


def percentile_ranks(values) -> np.ndarray:
    """Rank of each value divided by N, in (0, 1]: the smallest value gets ``1/N``, ties share their average rank."""
    from scipy.stats import rankdata

    values = np.asarray(values, dtype=np.float64)
    return rankdata(values, method="average") / values.size
