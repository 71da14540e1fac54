"""The stages of one analysis, built in one place from names, parameters, instances and the mode.

:func:`build_stages` makes a :class:`Stages` (reducer, clusterer, noise policy, rarity signal, the
mode they were checked against, the seed and eq. 4's eta and gamma) from registered names
(:data:`deqlib.reduce.REDUCERS`, :data:`deqlib.cluster.CLUSTERERS`,
:data:`deqlib.likelihood.RARITY_SIGNALS`), parameter dicts, estimator instances and the mode's
defaults (:data:`MODE_DEFAULTS`). :func:`deqlib.pipeline.analyze`,
:func:`deqlib.stability.stability_runs`, the CLI (``deq analyze``, ``deq stability``) and the
notebooks all take their stages from here, so the defaults are written once.

Two modes:

``mode="default"``
    openTSNE 3-D with the ``"fast"`` schedule and PCA-50, DBSCAN with a scale-aware eps
    (``eps_scale="official"``), noise policy ``"singleton"``.
``mode="reference"``
    The official analysis step for step: scikit-learn TSNE (``n_components=3, perplexity=30,
    max_iter=500, learning_rate='auto', init='pca'``, seed 33), DBSCAN with the raw eps, all
    noise counted as one cluster (``noise_policy="as_cluster"``); :func:`deqlib.pipeline.analyze`
    also embeds in float32.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from sklearn.base import clone

from deqlib._validation import check_real
from deqlib.cluster import (CLUSTERERS, OFFICIAL_EPS_OUTPUTS, DBSCANClusterer, as_clusterer, preset_params,
                            preset_setting)
from deqlib.likelihood import (DEFAULT_NOISE_POLICY, DEFAULT_RARITY_SIGNAL, NOISE_POLICIES, PAPER_RARITY_SIGNAL,
                              RARITY_SIGNALS)
from deqlib.reduce import REDUCERS, SklearnTSNEReducer, as_reducer, reducer_output
from deqlib.weights import DEFAULT_ETA, DEFAULT_GAMMA

__all__ = ["MODES", "MODE_DEFAULTS", "DEFAULT_SEED", "MODE_SEEDS", "Stages", "build_stages", "checked_stages",
           "default_seed"]

MODES = ("default", "reference")
#: The registered parts each mode uses when none is named. Without a preset DBSCAN keeps its own
#: defaults, eps 1.0 / min_samples 10 (nuScenes and Waymo's setting).
MODE_DEFAULTS = {"default": {"reducer": "opentsne", "clusterer": "dbscan"},
                 "reference": {"reducer": "sklearn", "clusterer": "dbscan"}}
#: The seed of the parts built by name when none is given (the official code's ``np.random.seed(33)``).
DEFAULT_SEED = 33
#: The seed a run uses when the user names none, in ``deq analyze`` / ``deq stability`` and the
#: notebooks (``seed = None``): 0, and in reference mode the official code's ``np.random.seed(33)``
#: (so ``--mode reference`` stays the official analysis bit for bit).
MODE_SEEDS = {"default": 0, "reference": 33}


def default_seed(mode: str) -> int:
    """The seed of :data:`MODE_SEEDS` for ``mode`` (``'default'``: 0, ``'reference'``: 33).

    Raises
    ------
    ValueError
        ``mode`` is not one of :data:`MODES`.
    """
    if mode not in MODE_SEEDS:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return MODE_SEEDS[mode]


@dataclass
class Stages:
    """What one analysis runs (made by :func:`build_stages`): the parts, the mode and the weight.

    Attributes
    ----------
    reducer : estimator
        A reducer (:data:`deqlib.reduce.REDUCERS` entry instance, or any estimator with
        ``fit_transform`` and ``cache_key``), not yet fitted.
    clusterer : estimator
        A clusterer (:data:`deqlib.cluster.CLUSTERERS` entry instance, or any estimator whose
        ``fit(X)`` returns itself with ``result_``, and ``cache_key``).
    noise_policy : {'singleton', 'as_cluster', 'nearest'}
        What eq. 3 makes of noise.
    rarity : object or None, default=None
        A rarity signal (``deqlib.likelihood.RARITY_SIGNALS`` entry instance, not yet fitted); None
        is eq. 3 on the clusters (``'cluster'``) with ``noise_policy``.
    preset : str or None, default=None
        The paper's dataset setting the clusterer was made from, recorded in the bank's metadata.
    mode : {'default', 'reference'}, default='default'
        The mode the parts were checked against; ``'reference'`` also embeds in float32
        (:func:`deqlib.pipeline.analyze`).
    seed : int or None, default=None
        The ``random_state`` the parts built by name received; recorded in the analysis'
        ``params['seed']`` and seeding its faithfulness sample.
    eta, gamma : float, default=1.0, 5.0
        The weight of eq. 4 (:func:`deqlib.weights.gfl_weight`) for the samples' ``weight``
        column and the stability report's weight figures (the paper's KITTI setting).
    """

    reducer: Any
    clusterer: Any
    noise_policy: str
    rarity: Any = None
    preset: str | None = None
    mode: str = "default"
    seed: int | None = None
    eta: float = DEFAULT_ETA
    gamma: float = DEFAULT_GAMMA


def _parameter_names(factory) -> set[str] | None:
    """Keyword parameters ``factory`` accepts (None when it takes ``**kwargs``: anything goes)."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return None
    names = set()
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            return None
        if parameter.kind is not inspect.Parameter.VAR_POSITIONAL and parameter.name != "self":
            names.add(parameter.name)
    return names


def _construct(registry, name: str, params: dict | None, seed: int | None):
    """``registry``'s part ``name`` made with ``params`` (checked by name) and ``random_state=seed``
    when it takes one and ``params`` do not set it."""
    entry = registry.entry(name)
    if params is not None and not isinstance(params, dict):
        raise TypeError(f"{registry.kind}_params must be a dict of parameter names to values, got "
                        f"{type(params).__name__}")
    params = dict(params or {})
    valid = _parameter_names(entry.factory)
    if valid is not None:
        unknown = sorted(set(params) - valid)
        if unknown:
            raise ValueError(f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
                             f"for the {registry.kind} {entry.name!r}; valid: {', '.join(sorted(valid))}")
        if seed is not None and "random_state" in valid:
            params.setdefault("random_state", int(seed))
    try:
        return registry.create(entry.name, **params)
    except TypeError as exc:  # a factory taking **kwargs refused one of them
        raise ValueError(f"the {registry.kind} {entry.name!r} refused its parameters {sorted(params)}: {exc}") from None


def _instance(part, kind: str, params: dict | None, methods: tuple[str, ...]):
    """A passed-in estimator: checked and cloned (its own parameters, random_state included, kept); a plain
    scikit-learn estimator is adapted first (``as_reducer`` / ``as_clusterer``: its cache key from ``get_params()``)."""
    part = as_reducer(part) if kind == "reducer" else as_clusterer(part)
    if params:
        raise ValueError(f"{kind}_params apply to a {kind} given by name; set them on the {kind} instance "
                         f"({kind}.set_params(...)) or pass its registered name ({kind}=<name>)")
    missing = [m for m in methods if not hasattr(part, m)]
    if missing:
        raise TypeError(f"{kind} must be a registered name or a deqlib {kind} ({', '.join(methods)}); "
                        f"{type(part).__name__} lacks {', '.join(missing)}")
    return clone(part)


def build_stages(mode: str = "default", *, reducer=None, reducer_params: dict | None = None, clusterer=None,
                 clusterer_params: dict | None = None, noise_policy: str | None = None, preset: str | None = None,
                 rarity=None, rarity_params: dict | None = None, seed: int | None = DEFAULT_SEED,
                 eta: float = DEFAULT_ETA, gamma: float = DEFAULT_GAMMA) -> Stages:
    """The stages of one analysis, from names, parameters, instances and the mode's defaults.

    Parameters
    ----------
    mode : {'default', 'reference'}, default='default'
        ``'default'``: openTSNE (``'fast'`` schedule, PCA-50), DBSCAN with eps in official units
        (nuScenes/Waymo's eps 1.0, min_samples 10 unless ``preset``), noise ``'singleton'``.
        ``'reference'``: the official analysis (scikit-learn TSNE, DBSCAN on the raw eps, noise
        ``'as_cluster'``); anything else is refused.
    reducer : str or estimator, optional
        A :data:`deqlib.reduce.REDUCERS` name (or alias), or an instance (cloned, its parameters
        kept): a deqlib reducer, or any scikit-learn-style one (``PCA(3)``), adapted by
        :func:`deqlib.reduce.as_reducer`. None: the mode's (``'opentsne'``, ``'sklearn'`` in reference mode).
    reducer_params : dict, optional
        Constructor parameters of a named reducer (an unknown one raises ValueError naming the valid ones).
    clusterer : str or estimator, optional
        A :data:`deqlib.cluster.CLUSTERERS` name, or an instance: a deqlib clusterer, or any
        scikit-learn-style one (``KMeans(20)``), adapted by :func:`deqlib.cluster.as_clusterer`.
        None: ``'dbscan'``.
    clusterer_params : dict, optional
        Constructor parameters of a named clusterer; they override the preset's.
    noise_policy : {'singleton', 'as_cluster', 'nearest'}, optional
        None: ``'singleton'`` (``'as_cluster'`` in reference mode).
    preset : {'kitti', 'nuscenes', 'waymo', 'bdd100k'}, optional
        The paper's DBSCAN setting of a dataset, read by a named clusterer whose registry entry
        says how (``preset_params``: HDBSCAN takes ``min_cluster_size = min_samples``). A
        clusterer passed as an instance already has its setting: the preset is then only
        recorded by :func:`deqlib.pipeline.analyze` (``params['preset']``).
    rarity : str or object, optional
        A single-run ``deqlib.likelihood.RARITY_SIGNALS`` name (``'knn-density'``) or a signal
        instance (cloned). ``'cluster'``: eq. 3 on the clusters with ``noise_policy`` (the only
        signal in reference mode). None: the mode's, ``'cluster'`` in reference mode and
        :data:`deqlib.likelihood.DEFAULT_RARITY_SIGNAL` (the rarity benchmark's choice,
        docs/rarity.md) otherwise. The consensus signals need K runs: refused here (``deqlib.stability``).
    rarity_params : dict, optional
        Constructor parameters of a named rarity signal (``{'k': 15}``); the cluster signal's noise
        policy is ``noise_policy``, not one of these.
    seed : int or None, default=33
        The ``random_state`` of the parts this function constructs by name (unless their params
        set one); None leaves each part its own default. A passed-in instance keeps its own
        ``random_state``: set it there. Recorded in the analysis' ``params['seed']``.
    eta, gamma : float, default=1.0, 5.0
        Eq. 4's weight parameters (``>= 0``) for the ``weight`` column of the analysis and the
        stability report's weight figures (default: the paper's KITTI setting).

    Returns
    -------
    Stages

    Notes
    -----
    DBSCAN's ``eps_scale`` defaults to ``'official'`` after a t-SNE (a reducer whose registry
    entry says ``output='tsne'``), to ``'knn'`` after any other reducer (UMAP), and to ``'raw'``
    in reference mode; ``'official'`` after a non-t-SNE reducer is refused (its calibration is
    t-SNE's, :data:`deqlib.cluster.EPS_CALIBRATED_ON`).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if preset is not None:
        preset_setting(preset)  # a clear error for an unknown name
    reference = mode == "reference"
    defaults = MODE_DEFAULTS[mode]

    # reducer
    reducer = defaults["reducer"] if reducer is None else reducer
    if isinstance(reducer, str):
        reducer = _construct(REDUCERS, reducer, reducer_params, seed)
    else:
        reducer = _instance(reducer, "reducer", reducer_params, ("fit_transform", "cache_key"))
    if reference and not isinstance(reducer, SklearnTSNEReducer):
        raise ValueError("mode='reference' runs scikit-learn's TSNE as the official code does; leave reducer=None, "
                         "name 'sklearn' or pass a SklearnTSNEReducer (or use mode='default')")
    output = reducer_output(reducer)
    is_tsne = output in OFFICIAL_EPS_OUTPUTS

    # clusterer
    clusterer = defaults["clusterer"] if clusterer is None else clusterer
    if isinstance(clusterer, str):
        name = CLUSTERERS.resolve(clusterer)
        params = preset_params(name, preset) if preset is not None else {}
        if "eps_scale" in (_parameter_names(CLUSTERERS.entry(name).factory) or ()):
            params["eps_scale"] = "raw" if reference else ("official" if is_tsne else "knn")
        params.update(clusterer_params or {})
        clusterer = _construct(CLUSTERERS, name, params, seed)
    else:
        clusterer = _instance(clusterer, "clusterer", clusterer_params, ("fit", "cache_key"))
    if reference and not (isinstance(clusterer, DBSCANClusterer) and clusterer.eps_scale == "raw"):
        raise ValueError("mode='reference' clusters with DBSCAN on the raw eps; leave clusterer=None (or 'dbscan') "
                         "or pass DBSCANClusterer(..., eps_scale='raw')")
    if getattr(clusterer, "eps_scale", None) == "official" and not is_tsne:
        raise ValueError(
            f"eps_scale='official' is calibrated on scikit-learn t-SNE output, but the reducer "
            f"{type(reducer).__name__} gives {output or 'unknown'} coordinates; use eps_scale='knn' (eps in "
            "multiples of the k-NN distance) or 'raw' (the coordinates' own units)")

    # noise policy
    if reference:
        if noise_policy not in (None, "as_cluster"):
            raise ValueError(f"mode='reference' counts noise as one cluster as the official code does; "
                             f"noise_policy={noise_policy!r} contradicts it (use mode='default')")
        noise_policy = "as_cluster"
    noise_policy = DEFAULT_NOISE_POLICY if noise_policy is None else noise_policy
    if noise_policy not in NOISE_POLICIES:
        raise ValueError(f"noise_policy must be one of {NOISE_POLICIES}, got {noise_policy!r}")

    # rarity signal
    rarity = _rarity(rarity, rarity_params, seed, reference, noise_policy)

    # Parameter values are checked now (cache_key validates), not after a long reduction.
    reducer.cache_key()
    clusterer.cache_key()
    eta, gamma = check_real("eta", eta, 0.0), check_real("gamma", gamma, 0.0)
    return Stages(reducer=reducer, clusterer=clusterer, noise_policy=noise_policy, rarity=rarity, preset=preset,
                  mode=mode, seed=seed, eta=eta, gamma=gamma)


def _rarity(rarity, rarity_params, seed, reference, noise_policy):
    """The rarity signal; None in the result means eq. 3 on the clusters with ``noise_policy``, made
    in :func:`deqlib.pipeline.analyze`. ``rarity=None`` is the mode's: eq. 3 in reference mode,
    :data:`deqlib.likelihood.DEFAULT_RARITY_SIGNAL` otherwise."""
    if rarity is None and not reference:
        if rarity_params:
            raise ValueError("rarity_params apply to a rarity signal given by name (rarity=<name>)")
        rarity = DEFAULT_RARITY_SIGNAL
    if isinstance(rarity, str):
        name = RARITY_SIGNALS.resolve(rarity)
        if name == "cluster":  # the stage's noise_policy is the one place to set it
            if "noise_policy" in (rarity_params or {}):
                raise ValueError("set the cluster signal's noise policy with noise_policy= (--noise-policy), "
                                 "not in rarity_params")
            if not rarity_params:
                return None  # the default: eq. 3 with noise_policy
            rarity_params = {**rarity_params, "noise_policy": noise_policy}
        if RARITY_SIGNALS.entry(name).extra.get("needs_runs"):
            raise ValueError(f"the rarity signal {name!r} needs K runs of the analysis, which one analysis does "
                             "not make: use `deq stability --signal ...` or deqlib.stability.stability_runs + "
                             "consensus_bank")
    elif rarity_params:
        raise ValueError("rarity_params apply to a rarity signal given by name; set them on the instance")
    if rarity is None:
        if rarity_params:
            raise ValueError("rarity_params apply to a rarity signal given by name (rarity=<name>)")
        return None
    if reference:
        raise ValueError("mode='reference' computes eq. 3 on the clusters as the official code does; "
                         "leave rarity=None or 'cluster' (or use mode='default')")
    if isinstance(rarity, str):
        return _construct(RARITY_SIGNALS, rarity, rarity_params, seed)
    if not callable(getattr(rarity, "fit", None)):
        raise TypeError(f"rarity must be a registered name ({', '.join(RARITY_SIGNALS.names())}) or a rarity "
                        f"signal with fit(context), got {type(rarity).__name__}")
    return clone(rarity)


def checked_stages(stages: Stages | None, seed: int | None = DEFAULT_SEED) -> Stages:
    """What :func:`deqlib.pipeline.analyze` and :func:`deqlib.stability.stability_runs` run: ``stages``
    checked against its mode by :func:`build_stages` and cloned (so a :class:`Stages` made by hand
    gets the same checks, and the caller's parts are never fitted); None: ``build_stages(seed=seed)``."""
    if stages is None:
        return build_stages(seed=seed)
    if not isinstance(stages, Stages):
        raise TypeError(f"stages must be a Stages from deqlib.stages.build_stages(...), got {type(stages).__name__}; "
                        "name the parts there, e.g. stages=build_stages(reducer='umap', clusterer='hdbscan')")
    # a built Stages holds None for eq. 3: name it, or build_stages would put the mode's default there
    rarity = PAPER_RARITY_SIGNAL if stages.rarity is None else stages.rarity
    return build_stages(stages.mode, reducer=stages.reducer, clusterer=stages.clusterer,
                        noise_policy=stages.noise_policy, rarity=rarity, preset=stages.preset,
                        seed=stages.seed, eta=stages.eta, gamma=stages.gamma)
