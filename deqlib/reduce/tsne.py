"""The two t-SNEs of :mod:`deqlib.reduce`: openTSNE with named schedules (the default) and scikit-learn's
TSNE as the official analysis configures it (reference mode), with the shared-affinity fit the
stability runs use and a progress bar over openTSNE's iterations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator

from deqlib._validation import check_choice, check_embeddings, check_int, check_real, resolve_n_jobs
from deqlib.reduce.base import (REDUCERS, _check_learning_rate, _check_positive_int, _check_random_state,
                                _duplicate_hint, _pca, check_not_all_identical)

__all__ = ["SCHEDULES", "DEFAULT_SCHEDULE", "PLACEMENTS", "INITIALIZATIONS", "DEFAULT_TSNE_THREADS", "OpenTSNEReducer",
           "SklearnTSNEReducer", "TSNEAffinities", "min_fit_samples"]

#: Named iteration schedules of :class:`OpenTSNEReducer`.
SCHEDULES = {
    # The official run: sklearn TSNE(n_iter=500) = 250 exaggerated + 250 normal iterations.
    "official": {"early_exaggeration_iter": 250, "n_iter": 250, "theta": 0.5},
    # Measured (ENVIRONMENT.md, benchmarks/analysis): same NMI with the classes, ~3x faster.
    "fast": {"early_exaggeration_iter": 125, "n_iter": 100, "theta": 0.8},
}
DEFAULT_SCHEDULE = "fast"
PLACEMENTS = ("transform", "neighbors")
#: Threads of both t-SNEs by default: a constant, never the core count. Their maps depend on the thread
#: count (openTSNE: Annoy builds its trees with one seed per thread; scikit-learn: its OpenMP gradient
#: sums in a thread-dependent order), so a default that followed the cores gave a machine with 1 core
#: another bank than one with 2 (1,977 of 2,000 likelihoods in issue 19). ``n_jobs=-1`` (openTSNE) or
#: ``n_threads=-1`` (scikit-learn) opts into every core for speed; the count is recorded and keyed.
DEFAULT_TSNE_THREADS = 1
INITIALIZATIONS = ("pca", "random")


@REDUCERS.register("opentsne", summary="openTSNE 3-D (Barnes-Hut), named schedules (default)",
                   aliases=("default",), output="tsne",
                   test_params={"perplexity": 5.0, "early_exaggeration_iter": 20, "n_iter": 20, "n_jobs": 1},
                   invalid_params={"perplexity": -1.0})
class OpenTSNEReducer(BaseEstimator):
    """openTSNE embedding in 3-D (Barnes-Hut) with an explicit, named schedule.

    Parameters
    ----------
    n_components : int, default=3
        Output dimensions. 3 (the paper) uses Barnes-Hut; 2 may use FFT (``"auto"``).
    perplexity : float, default=30
        As in the official run. Needs at least ``3 * perplexity + 1`` samples.
    schedule : {'fast', 'official'}, default='fast'
        Named iteration schedule (:data:`SCHEDULES`); ``early_exaggeration_iter``, ``n_iter``
        and ``theta`` override single entries.
    early_exaggeration_iter, n_iter : int, optional
        Iterations with and after early exaggeration (openTSNE counts them separately).
    theta : float, optional
        Barnes-Hut accuracy (0.5 exact-ish, larger faster).
    learning_rate : float or 'auto', default='auto'
        openTSNE's ``'auto'`` is ``N / exaggeration``: N/12 while exaggerated, then N.
    pca_components : int or None, default=50
        PCA pre-reduction before the affinities (skipped when the input has fewer dims).
    sample_threshold : int, default=250_000
        Above this many samples, fit on a random subset of ``sample_size`` and place the rest.
    sample_size : int, default=100_000
        Size of that subset.
    placement : {'transform', 'neighbors'}, default='transform'
        How the rest are placed: openTSNE's ``transform`` (optimises the new points against
        the fixed fit) or ``'neighbors'`` (median of the 25 nearest fitted points, no optimisation).
    negative_gradient_method : {'auto', 'bh', 'fft'}, default='auto'
        ``'auto'``: ``'bh'`` in 3-D (FFT refuses it), ``'fft'`` in 2-D.
    random_state : int, default=33
        The official seed.
    n_jobs : int, default=DEFAULT_TSNE_THREADS (1)
        openTSNE's threads. The coordinates depend on it (Annoy's neighbour trees are built with
        one seed per thread), so the default is a constant and the resolved count is part of
        :meth:`cache_key` and ``params_['n_jobs']``; -1 (every core this process may use) is
        faster but then the map follows the core count. The PCA and other BLAS calls always
        run on one thread (BLAS sums depend on the thread count, and t-SNE amplifies them).
    verbose : bool, default=False
    initialization : {'pca', 'random'}, default='pca'
        Starting positions. ``'random'`` lets runs that share one set of affinities
        (:meth:`fit_affinities`, used by :mod:`deqlib.stability`) differ by their seed.

    Attributes
    ----------
    embedding_ : ndarray of float64, shape (N, n_components)
        The coordinates of the last :meth:`fit`.
    fit_indices_ : ndarray of int or None
        Samples the t-SNE was fitted on, when subsampled (others were placed).
    params_ : dict
        Every parameter as resolved for the last run (schedule numbers, PCA, threads, method).
    """

    def __init__(self, n_components=3, perplexity=30.0, schedule=DEFAULT_SCHEDULE, early_exaggeration_iter=None,
                 n_iter=None, theta=None, learning_rate="auto", pca_components=50, sample_threshold=250_000,
                 sample_size=100_000, placement="transform", negative_gradient_method="auto", random_state=33,
                 n_jobs=DEFAULT_TSNE_THREADS, verbose=False, initialization="pca"):
        self.initialization = initialization
        self.n_components = n_components
        self.perplexity = perplexity
        self.schedule = schedule
        self.early_exaggeration_iter = early_exaggeration_iter
        self.n_iter = n_iter
        self.theta = theta
        self.learning_rate = learning_rate
        self.pca_components = pca_components
        self.sample_threshold = sample_threshold
        self.sample_size = sample_size
        self.placement = placement
        self.negative_gradient_method = negative_gradient_method
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose

    def resolved_params(self) -> dict:
        """Parameters with the schedule expanded into numbers and choices checked."""
        check_choice("schedule", self.schedule, sorted(SCHEDULES))
        plan = dict(SCHEDULES[self.schedule])
        for key in ("early_exaggeration_iter", "n_iter", "theta"):
            if getattr(self, key) is not None:
                plan[key] = getattr(self, key)
        n_components = _check_positive_int("n_components", self.n_components)
        method = self.negative_gradient_method
        if method == "auto":
            method = "fft" if n_components <= 2 else "bh"
        check_choice("negative_gradient_method", method, ("auto", "bh", "fft"))
        if method == "fft" and n_components > 2:
            raise ValueError("negative_gradient_method: openTSNE's FFT method supports at most 2 dimensions; "
                             "use 'bh' for 3-D")
        check_choice("placement", self.placement, PLACEMENTS)
        check_real("perplexity", self.perplexity, 0, exclusive=True)
        check_int("pca_components", self.pca_components, 1, allow_none=True)
        check_choice("initialization", self.initialization, INITIALIZATIONS)
        check_real("theta", plan["theta"], 0)
        _check_learning_rate(self.learning_rate)
        _check_random_state(self.random_state)
        # 'initialization' is listed only when not the default, so existing cache keys stay valid.
        extra = {} if self.initialization == "pca" else {"initialization": self.initialization}
        return {
            "reducer": "opentsne",
            "n_components": n_components,
            "perplexity": float(self.perplexity),
            "schedule": self.schedule,
            "early_exaggeration_iter": _check_positive_int("early_exaggeration_iter", plan["early_exaggeration_iter"], 0),
            "n_iter": _check_positive_int("n_iter", plan["n_iter"], 0),
            "theta": float(plan["theta"]),
            "learning_rate": self.learning_rate,
            "pca_components": self.pca_components,
            "sample_threshold": _check_positive_int("sample_threshold", self.sample_threshold),
            "sample_size": _check_positive_int("sample_size", self.sample_size),
            "placement": self.placement,
            "negative_gradient_method": method,
            "random_state": self.random_state,
            **extra,
        }

    def sample_fit_at(self, n_samples: int) -> "OpenTSNEReducer":
        """This reducer with its sample-fit policy applied to ``n_samples`` points, as if past ``sample_threshold``.

        The policy: past ``sample_threshold`` points, fit on a random ``sample_size`` of them and place
        the rest (by default 100,000 of 250,000: 40%). The returned clone fits on the same share
        (``sample_size / sample_threshold``) of ``n_samples``, at least the ``min_fit_samples`` the
        perplexity needs, and places the rest, so the policy can be measured on a small dataset
        (notebook 00 compares it with the full fit).
        """
        from sklearn.base import clone

        n_samples = check_int("n_samples", n_samples, 1)
        params = self.resolved_params()
        share = params["sample_size"] / params["sample_threshold"]
        size = max(int(share * n_samples), min_fit_samples(self.perplexity))
        return clone(self).set_params(sample_threshold=size, sample_size=size)

    def fit_affinities(self, X) -> "TSNEAffinities":
        """PCA and perplexity affinities of ``X`` once, for several :meth:`fit_transform` runs.

        The affinities (the k-NN graph and its perplexity-calibrated weights) are most of a
        t-SNE's fixed cost and depend on the seed only through the approximate k-NN search; runs
        that differ in their seed can share them (``fit_transform(X, affinities=...)``), and with
        ``initialization='random'`` still start from different positions. Not available when
        ``X`` is subsampled (more than ``sample_threshold`` rows).
        """
        import openTSNE
        from threadpoolctl import threadpool_limits

        params = self.resolved_params()
        X = check_embeddings(X, min_samples=2)
        if X.shape[0] > params["sample_threshold"]:
            raise ValueError(f"shared affinities need the full fit: {X.shape[0]} samples exceed sample_threshold "
                             f"({params['sample_threshold']}); raise sample_threshold or fit runs separately")
        seed = self.random_state
        with threadpool_limits(limits=1, user_api="blas"):  # as in fit_transform: a thread-independent PCA
            reduced, pca_info = _pca(X, params["pca_components"], seed if seed is not None else 0)
        _check_perplexity(params["perplexity"], X.shape[0])
        affinities = openTSNE.affinity.PerplexityBasedNN(
            reduced, perplexity=params["perplexity"], method="auto", n_jobs=resolve_n_jobs(self.n_jobs),
            random_state=seed, verbose=self.verbose)
        return TSNEAffinities(affinities=affinities, reduced=reduced, pca_info=pca_info, n_samples=X.shape[0],
                              perplexity=params["perplexity"], random_state=seed)

    def cache_key(self) -> dict:
        """What the output depends on: the resolved parameters, openTSNE's thread count (the neighbour
        trees depend on it) and its version; verbosity is left out (the result does not depend on it)."""
        import openTSNE

        return {**self.resolved_params(), "n_jobs": resolve_n_jobs(self.n_jobs), "opentsne": openTSNE.__version__}

    def fit_transform(self, X, y=None, affinities: "TSNEAffinities | None" = None,
                      progress: bool = False) -> np.ndarray:
        """:meth:`fit` and return :attr:`embedding_` (N x n_components, float64)."""
        return self.fit(X, affinities=affinities, progress=progress).embedding_

    def fit(self, X, y=None, affinities: "TSNEAffinities | None" = None,
            progress: bool = False) -> "OpenTSNEReducer":
        """Reduce ``X`` (N x D) to ``N x n_components`` float64 coordinates in :attr:`embedding_`.

        ``affinities`` (from :meth:`fit_affinities` on the same ``X``) skips the PCA and the
        affinity computation; the optimisation then uses this reducer's seed and schedule.
        ``progress=True`` shows a progress bar over the optimisation iterations (tqdm; a widget
        in notebooks), fed by openTSNE's callbacks. It does not change the result.
        """
        from threadpoolctl import threadpool_limits  # a scikit-learn dependency

        # One BLAS thread: a BLAS matrix product sums in an order that depends on its thread count,
        # and t-SNE amplifies those last-bit differences of the PCA into a different map
        # (OMP_NUM_THREADS=1 against the default moved almost every likelihood). openTSNE's own
        # n_jobs threads change its neighbour trees, so n_jobs defaults to a constant and is keyed.
        with threadpool_limits(limits=1, user_api="blas"):
            self.embedding_ = self._fit_transform(X, affinities, progress)
        return self

    def _fit_transform(self, X, affinities: "TSNEAffinities | None", progress: bool) -> np.ndarray:
        import openTSNE

        params = self.resolved_params()
        X = check_embeddings(X, min_samples=2)  # a map of one point is no map
        check_not_all_identical(X)
        n_samples, n_features = X.shape
        seed = self.random_state
        if affinities is not None:
            if affinities.n_samples != n_samples or affinities.perplexity != params["perplexity"]:
                raise ValueError(f"affinities were computed for {affinities.n_samples} samples at perplexity "
                                 f"{affinities.perplexity:g}, not {n_samples} at {params['perplexity']:g}; "
                                 "call fit_affinities on this X with this reducer")
            X, pca_info = affinities.reduced, dict(affinities.pca_info, affinities_seed=affinities.random_state)
        else:
            X, pca_info = _pca(X, params["pca_components"], seed if seed is not None else 0)

        fit_indices = None
        if n_samples > params["sample_threshold"] and params["sample_size"] < n_samples:
            rng = np.random.default_rng(seed)
            fit_indices = np.sort(rng.choice(n_samples, size=params["sample_size"], replace=False))
        if affinities is not None:
            fit_indices = None  # fit_affinities refused subsampled inputs
        n_fit = n_samples if fit_indices is None else fit_indices.size
        _check_perplexity(params["perplexity"], n_fit)
        start = self.initialization
        if start == "pca" and X.shape[1] < params["n_components"]:
            # openTSNE's PCA start cannot have more components than features (a 3-D map of 2-D data)
            start = _padded_pca_start(X if fit_indices is None else X[fit_indices], params["n_components"], seed)
        tsne = openTSNE.TSNE(
            n_components=params["n_components"], perplexity=params["perplexity"],
            learning_rate=params["learning_rate"], early_exaggeration_iter=params["early_exaggeration_iter"],
            n_iter=params["n_iter"], theta=params["theta"], initialization=start,
            negative_gradient_method=params["negative_gradient_method"], n_jobs=resolve_n_jobs(self.n_jobs),
            random_state=seed, verbose=self.verbose, **_progress_callbacks(progress, params, n_fit),
        )
        if fit_indices is None:
            shared = affinities.affinities if affinities is not None else None
            coords = np.asarray(tsne.fit(X, affinities=shared), dtype=np.float64)
        else:
            embedding = tsne.fit(X[fit_indices])
            rest = np.setdiff1d(np.arange(n_samples), fit_indices)
            if params["placement"] == "transform":
                placed = embedding.transform(X[rest])
            else:
                placed = embedding.prepare_partial(X[rest], initialization="median", k=25)
            coords = np.empty((n_samples, params["n_components"]), dtype=np.float64)
            coords[fit_indices] = np.asarray(embedding)
            coords[rest] = np.asarray(placed)
        _close_progress(tsne)
        if not np.isfinite(coords).all():
            raise RuntimeError(f"openTSNE returned non-finite coordinates; {_duplicate_hint(X)}")
        self.fit_indices_ = fit_indices
        self.n_features_in_ = n_features
        self.params_ = {**params, **pca_info, "n_samples": n_samples, "n_fit": int(n_fit),
                        "n_jobs": resolve_n_jobs(self.n_jobs), "blas_threads": 1, "opentsne": openTSNE.__version__}
        return coords


def _check_threads(name: str, value) -> int:
    """A thread count: a positive int, or -1 for every core this process may use (then resolved)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not (value == -1 or value >= 1):
        raise ValueError(f"{name} must be a positive number of threads or -1 (every core), got {value!r}")
    return resolve_n_jobs(int(value))


def min_fit_samples(perplexity: float) -> int:
    """Fewest samples an openTSNE fit at ``perplexity`` accepts: 3 x perplexity neighbours each, plus itself."""
    return int(np.floor(3 * perplexity)) + 1


def _check_perplexity(perplexity: float, n_fit: int) -> None:
    minimum = min_fit_samples(perplexity)
    if n_fit < minimum:
        raise ValueError(
            f"t-SNE with perplexity {perplexity:g} needs at least {minimum} samples "
            f"(3 x perplexity neighbours each), got {n_fit}; lower perplexity below {n_fit / 3:.1f} "
            "or add samples"
        )


def _padded_pca_start(X: np.ndarray, n_components: int, seed: int | None) -> np.ndarray:
    """A PCA start for a map with more dimensions than ``X`` has features: the PCA of every feature
    (scaled as each library scales its PCA start, first column's standard deviation 1e-4), then
    columns of Gaussian noise of the same spread, as a random start would have.

    Without it both t-SNEs refuse a 3-D map of 2-D data (their PCA asks for 3 components of 2).
    """
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(seed)
    start = PCA(n_components=X.shape[1], random_state=seed).fit_transform(X)
    spread = float(np.std(start[:, 0]))
    start = start / spread * 1e-4 if spread > 0 else start
    noise = rng.normal(0.0, 1e-4, size=(X.shape[0], n_components - X.shape[1]))
    return np.ascontiguousarray(np.hstack([start, noise]), dtype=np.float64)


@dataclass
class TSNEAffinities:
    """What :meth:`OpenTSNEReducer.fit_affinities` computed once: the PCA'd data and openTSNE's affinities."""

    affinities: object
    reduced: np.ndarray
    pca_info: dict
    n_samples: int
    perplexity: float
    random_state: int | None


@REDUCERS.register("sklearn", summary="scikit-learn TSNE as the official analysis runs it (reference mode)",
                   aliases=("sklearn-tsne", "sklearntsne", "reference"), output="tsne",
                   test_params={"perplexity": 10.0, "max_iter": 300}, invalid_params={"max_iter": 10})
class SklearnTSNEReducer(BaseEstimator):
    """scikit-learn TSNE as the official analysis runs it (the ``reference`` reducer).

    The official notebooks call ``TSNE(n_components=3, perplexity=30, n_iter=500,
    learning_rate='auto', init='pca')`` after ``np.random.seed(33)``; ``random_state=33`` gives
    the same random stream. ``max_iter`` counts all iterations including the 250 of early
    exaggeration (``n_iter`` in older scikit-learn). No PCA pre-reduction, no subsampling.

    Parameters
    ----------
    n_components : int, default=3
    perplexity : float, default=30
        Must be below the number of samples (scikit-learn's rule).
    max_iter : int, default=500
    learning_rate : float or 'auto', default='auto'
        scikit-learn's ``'auto'`` is ``max(N / early_exaggeration / 4, 50)``.
    init : {'pca', 'random'}, default='pca'
    random_state : int, default=33
    n_jobs : int or None, default=None
        Threads for the neighbour search only (the official run left it unset; the exact
        neighbours do not depend on it).
    n_threads : int, default=DEFAULT_TSNE_THREADS (1)
        OpenMP threads of scikit-learn's Barnes-Hut gradient. The map depends on it (the
        gradient sums in a thread-dependent order), so the default is a constant, recorded in
        ``params_`` and :meth:`cache_key`; -1 (every core this process may use) is faster but
        then the map follows the core count.

    Attributes
    ----------
    embedding_ : ndarray of float64, shape (N, n_components)
    params_ : dict
        Parameters and the final KL divergence of the last :meth:`fit`.
    """

    def __init__(self, n_components=3, perplexity=30.0, max_iter=500, learning_rate="auto", init="pca",
                 random_state=33, n_jobs=None, n_threads=DEFAULT_TSNE_THREADS):
        self.n_components = n_components
        self.perplexity = perplexity
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.init = init
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.n_threads = n_threads

    def resolved_params(self) -> dict:
        _check_positive_int("n_components", self.n_components)
        _check_positive_int("max_iter", self.max_iter, 250)  # sklearn needs >= 250 (the exaggeration phase)
        check_real("perplexity", self.perplexity, 0, exclusive=True)
        check_choice("init", self.init, ("pca", "random"))
        _check_learning_rate(self.learning_rate)
        _check_random_state(self.random_state)
        return {"reducer": "sklearn", "n_components": int(self.n_components), "perplexity": float(self.perplexity),
                "max_iter": int(self.max_iter), "learning_rate": self.learning_rate, "init": self.init,
                "random_state": self.random_state, "pca_components": None}

    def cache_key(self) -> dict:
        import sklearn

        return {**self.resolved_params(), "n_threads": _check_threads("n_threads", self.n_threads),
                "sklearn": sklearn.__version__}

    def fit_transform(self, X, y=None) -> np.ndarray:
        """:meth:`fit` and return :attr:`embedding_` (N x n_components, float64)."""
        return self.fit(X).embedding_

    def fit(self, X, y=None) -> "SklearnTSNEReducer":
        """Reduce ``X`` (N x D) to ``N x n_components`` float64 coordinates in :attr:`embedding_`."""
        import sklearn
        from sklearn.manifold import TSNE
        from threadpoolctl import threadpool_limits

        params = self.resolved_params()
        n_threads = _check_threads("n_threads", self.n_threads)
        X = check_embeddings(X, min_samples=2).astype(np.float64, copy=False)  # the official code casts to float64
        check_not_all_identical(X)  # checked here: scikit-learn would crash the interpreter
        if X.shape[0] <= params["perplexity"]:
            raise ValueError(
                f"scikit-learn's t-SNE needs more samples than the perplexity ({params['perplexity']:g}), "
                f"got {X.shape[0]}; lower perplexity or add samples"
            )
        init = params["init"]
        if init == "pca" and X.shape[1] < params["n_components"]:
            # scikit-learn's PCA start cannot have more components than features (a 3-D map of 2-D data);
            # the official configuration never meets this (its embeddings have hundreds of features)
            init = _padded_pca_start(X, params["n_components"], self.random_state).astype(np.float32)
        tsne = TSNE(n_components=params["n_components"], perplexity=params["perplexity"],
                    max_iter=params["max_iter"], learning_rate=params["learning_rate"], init=init,
                    random_state=self.random_state, n_jobs=self.n_jobs)
        # the gradient's OpenMP threads (and the PCA start's BLAS) fixed: the map depends on them
        with threadpool_limits(limits=n_threads, user_api="openmp"), threadpool_limits(limits=1, user_api="blas"):
            coords = np.asarray(tsne.fit_transform(X), dtype=np.float64)
        self.n_features_in_ = int(X.shape[1])
        self.params_ = {**params, "n_samples": int(X.shape[0]), "kl_divergence": float(tsne.kl_divergence_),
                        "n_threads": n_threads, "blas_threads": 1, "sklearn": sklearn.__version__}
        self.embedding_ = coords
        return self


_PROGRESS_EVERY = 5  # iterations between progress-bar updates (openTSNE's callbacks_every_iters)


def _progress_callbacks(progress: bool, params: dict, n_fit: int) -> dict:
    """openTSNE keyword arguments that drive a tqdm bar over the t-SNE iterations (none if not ``progress``)."""
    if not progress:
        return {}
    from tqdm.auto import tqdm

    total = params["early_exaggeration_iter"] + params["n_iter"]
    bar = tqdm(total=total, desc=f"t-SNE ({n_fit:,} points)", unit="it", mininterval=1.0)

    def advance(iteration, error, embedding):
        bar.update(min(_PROGRESS_EVERY, total - bar.n))
        bar.set_postfix_str(f"KL {error:.3f}", refresh=False)
        return False  # never stop early

    advance.bar = bar
    return {"callbacks": advance, "callbacks_every_iters": _PROGRESS_EVERY}


def _close_progress(tsne) -> None:
    bar = getattr(getattr(tsne, "callbacks", None), "bar", None)
    if bar is not None:
        bar.update(bar.total - bar.n)
        bar.close()
