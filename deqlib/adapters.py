"""Plain scikit-learn estimators as deqlib stages: adapters whose parameters are the wrapped class's own.

A deqlib reducer or clusterer is a scikit-learn estimator that also has a ``cache_key()``; a
plain ``sklearn.decomposition.PCA`` or ``sklearn.cluster.KMeans`` has none. This module holds
what :class:`deqlib.reduce.SklearnReducer` and :class:`deqlib.cluster.SklearnClusterer` share:

* :class:`WrappingEstimator`, whose ``wrapping(Cls)`` makes (once per class) an adapter class
  with exactly ``Cls``'s constructor parameters, so ``get_params``, ``set_params``, ``clone``,
  ``repr`` and pickling behave as for ``Cls`` itself; each ``fit`` builds a fresh ``Cls`` from
  them (the adapter never shares a fitted object with the caller);
* :func:`estimator_key`, the cache key of any estimator from its class and ``get_params()``:
  deterministic JSON, nested estimators by their own parameters, arrays by a hash of their
  content, never by ``repr`` or identity (both change from one Python process to the next).

Why adapters and not the objects themselves: the stage cache needs a key, and the other stages
need ``labels_`` relabelled by size, ``outlier_scores_``, ``params_`` and ``result_``. The adapter
adds those and keeps the wrapped estimator's parameters, so the user's object is never modified.
"""

from __future__ import annotations

import enum
import hashlib
import inspect
import math
import numbers
import re
import sys
from pathlib import PurePath
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator

__all__ = ["WrappingEstimator", "estimator_key", "parameter_key"]

#: A memory address in a repr (``<object at 0x7f...>``): such a repr differs from one process to the next.
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")

#: Adapter classes made so far, by (adapter base, wrapped class): one class per pair, so two
#: adapters of the same class have the same type (``clone`` and the stage builder compare types).
_ADAPTER_CLASSES: dict[tuple[type, type], type] = {}


def _qualified_name(obj) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def _package_version(kind: type) -> str | None:
    top = kind.__module__.split(".")[0]
    return getattr(sys.modules.get(top), "__version__", None)


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def parameter_key(value: Any, name: str = "value") -> Any:
    """A JSON value that stands for ``value`` in a cache key, the same in every Python process.

    Numbers, strings, booleans and None as themselves (non-finite floats as ``'nan'``,
    ``'inf'``, ``'-inf'``); lists, tuples and dicts element by element; an estimator by
    :func:`estimator_key`; an array by its dtype, shape and a hash of its bytes; a random
    generator by a hash of its state; a module-level function or class by its qualified name;
    another object by its type and ``repr`` when that repr shows its settings (joblib's
    ``Memory(location=None)``).

    Raises
    ------
    TypeError
        For a lambda, a local function or an object whose ``repr`` holds a memory address
        (``<Foo object at 0x7f...>``: different in every process), naming the parameter and what
        to pass instead.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, enum.Enum):
        return f"{type(value).__qualname__}.{value.name}"
    if isinstance(value, np.generic):
        return parameter_key(value.item(), name)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [parameter_key(item, f"{name}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): parameter_key(v, f"{name}[{k!r}]") for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, np.ndarray):
        array = np.ascontiguousarray(value)
        if array.dtype == object:
            return {"array": "object", "items": parameter_key(array.tolist(), name)}
        return {"array": array.dtype.str, "shape": list(array.shape), "blake2b": _digest(array.tobytes())}
    if isinstance(value, np.random.RandomState):
        kind, keys, position, has_gauss, cached = value.get_state()
        return {"RandomState": _digest(repr((kind, position, has_gauss, cached)).encode() + keys.tobytes())}
    if isinstance(value, np.random.Generator):
        return {"Generator": _digest(repr(value.bit_generator.state).encode())}
    if hasattr(value, "get_params") and not isinstance(value, type):
        return estimator_key(value)
    if callable(value) and hasattr(value, "__qualname__") and hasattr(value, "__module__"):
        if "<lambda>" in value.__qualname__ or "<locals>" in value.__qualname__:
            raise TypeError(f"cannot make a cache key from {name}={value!r}: a lambda or local function has no stable "
                            "name; pass a function defined at module level")
        return {"callable": _qualified_name(value)}
    text = repr(value)
    if not _ADDRESS.search(text):  # a repr of its settings, e.g. joblib's Memory(location=None)
        return {"object": _qualified_name(type(value)), "repr": text}
    raise TypeError(f"cannot make a cache key from {name}={text} ({type(value).__name__}): its repr holds a memory "
                    "address; pass numbers, strings, lists, dicts, arrays, estimators or module-level functions, or "
                    "give the part its own cache_key()")


def estimator_key(estimator) -> dict:
    """``{'class': 'module.Class', 'version': ..., 'params': {...}}`` from ``estimator.get_params(deep=False)``.

    Deterministic JSON (:func:`parameter_key` for each value, names sorted); a nested estimator
    is keyed by its own class and parameters. ``version`` is the top-level package's
    ``__version__`` (None when it has none), so upgrading the library invalidates the cache.
    """
    kind = type(estimator)
    params = estimator.get_params(deep=False)
    return {"class": _qualified_name(kind), "version": _package_version(kind),
            "params": {name: parameter_key(params[name], name) for name in sorted(params)}}


def _takes_booleans(estimator_class: type, name: str, default) -> bool:
    """Whether ``estimator_class``'s parameter ``name`` means something when given True or False.

    scikit-learn classes say it in their parameter constraints (``'boolean'``, ``'verbose'``); for
    others, a parameter whose default is a number (not a boolean) takes no boolean.
    """
    constraints = getattr(estimator_class, "_parameter_constraints", None)  # scikit-learn's declared constraints
    if isinstance(constraints, dict) and name in constraints:
        return any(c is bool or c is object or (isinstance(c, str) and c in ("boolean", "verbose", "no_validation"))
                   for c in constraints[name])
    return not (isinstance(default, numbers.Number) and not isinstance(default, (bool, np.bool_)))


def _rebuild(base: type, estimator_class: type):
    """Unpickling: an empty adapter of ``estimator_class`` (pickle then restores its state)."""
    adapter = base.wrapping(estimator_class)
    return adapter.__new__(adapter)


class WrappingEstimator(BaseEstimator):
    """Base of the adapters: :meth:`wrapping` makes one whose parameters are a class's own.

    Not used directly: ``SklearnReducer.wrapping(PCA)(n_components=3)`` or
    ``deqlib.reduce.as_reducer(PCA(n_components=3))`` make an adapter (likewise
    ``SklearnClusterer`` / ``as_clusterer``).
    """

    #: The wrapped class (None on the bases, set on the classes :meth:`wrapping` makes).
    estimator_class: ClassVar[type | None] = None
    #: Parameters an adapter adds when the wrapped class lacks them (name -> default), e.g. the
    #: ``random_state`` every reducer has; they are not passed to the wrapped class.
    adapter_params: ClassVar[dict] = {}
    _signature: ClassVar[inspect.Signature | None] = None
    _adapter_base: ClassVar[type | None] = None
    _wrapped_names: ClassVar[tuple[str, ...]] = ()
    #: What the adapters of this base are ('reducer', 'clusterer'): the cache key's first field, and messages.
    _stage: ClassVar[str] = "stage"
    #: The wrapped estimator's method that fits and gives the output, and the attribute to read after a plain fit.
    _output: ClassVar[tuple[str, str]] = ("fit", "")

    def __init__(self, *args, **params):
        kind = type(self)
        if kind.estimator_class is None:
            raise TypeError(f"{kind.__name__} adapts a scikit-learn class: register one with "
                            f"{kind.__name__}.wrapping(Cls), or adapt an instance with "
                            f"{'as_reducer' if 'Reducer' in kind.__name__ else 'as_clusterer'}(Cls(...))")
        bound = kind._signature.bind(None, *args, **params)  # None stands for self
        bound.apply_defaults()
        for name, value in list(bound.arguments.items())[1:]:
            setattr(self, name, value)

    @classmethod
    def wrapping(cls, estimator_class: type) -> type:
        """The adapter class of ``estimator_class``: its constructor takes ``estimator_class``'s parameters.

        Made once per class (the same class object every time), so it can be registered
        (``CLUSTERERS.register("optics")(SklearnClusterer.wrapping(OPTICS))``) and compared by type.
        """
        if cls.estimator_class is not None:
            raise TypeError(f"{cls.__name__} already wraps {cls.estimator_class.__name__}; call wrapping on "
                            f"{cls.__mro__[1].__name__}")
        if not isinstance(estimator_class, type):
            raise TypeError(f"wrapping takes a class, got the instance {estimator_class!r}; adapt an instance with "
                            f"{'as_reducer' if 'Reducer' in cls.__name__ else 'as_clusterer'}(...)")
        made = _ADAPTER_CLASSES.get((cls, estimator_class))
        if made is None:
            made = _ADAPTER_CLASSES[(cls, estimator_class)] = cls._make_adapter(estimator_class)
        return made

    @classmethod
    def _make_adapter(cls, estimator_class: type) -> type:
        try:
            wrapped = inspect.signature(estimator_class)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"cannot read the parameters of {estimator_class.__name__}: {exc}") from None
        # **kwargs are not parameters to scikit-learn either (get_params and clone leave them out)
        parameters = [p for p in wrapped.parameters.values() if p.kind is not p.VAR_KEYWORD]
        if any(p.kind is p.VAR_POSITIONAL for p in parameters):
            raise TypeError(f"{estimator_class.__name__} takes *args, so its parameters cannot be listed; "
                            "scikit-learn estimators name every parameter in __init__")
        reserved = sorted(p.name for p in parameters if hasattr(cls, p.name))
        if reserved:
            raise TypeError(f"{estimator_class.__name__}'s parameters {reserved} clash with {cls.__name__}'s own "
                            "attributes; give it a deqlib estimator of its own")
        names = tuple(p.name for p in parameters)
        extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
                 for name, default in cls.adapter_params.items() if name not in names]
        signature = inspect.Signature([inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
                                       *parameters, *extra])

        def __init__(self, *args, **params):
            WrappingEstimator.__init__(self, *args, **params)

        # scikit-learn reads an estimator's parameter names from its __init__'s signature
        __init__.__signature__ = signature
        namespace = {"__init__": __init__, "__module__": cls.__module__, "estimator_class": estimator_class,
                     "_adapter_base": cls,
                     "_signature": signature, "_wrapped_names": names,
                     "__doc__": f"{estimator_class.__name__} as a deqlib {cls._stage} ({cls.__name__}): its parameters "
                                f"are {estimator_class.__name__}'s.\n\n{cls.__doc__ or ''}"}
        namespace.update(cls._adapter_attributes(estimator_class))
        # The class name is the wrapped one (reprs read PCA(n_components=3)); its qualname says what it is.
        adapter = type(estimator_class.__name__, (cls,), namespace)
        adapter.__qualname__ = f"{cls.__name__}.wrapping({estimator_class.__name__})"
        return adapter

    @classmethod
    def _adapter_attributes(cls, estimator_class: type) -> dict:
        """Class attributes of the adapter of ``estimator_class`` (a hook for the subclasses)."""
        return {}

    def __reduce__(self):
        # The adapter class is made at run time, so pickle cannot find it by name: rebuild it from the base
        # and the wrapped class (both importable), then restore the state as for any estimator.
        return _rebuild, (type(self)._adapter_base, type(self).estimator_class), self.__getstate__()

    def __getattr__(self, name: str):
        # Called only for attributes the adapter lacks: after a fit, the wrapped estimator's fitted
        # attributes (KMeans' cluster_centers_ and n_iter_, PCA's explained_variance_ratio_) read through.
        if name.endswith("_") and not name.startswith("_"):
            fitted = self.__dict__.get("estimator_")
            if fitted is not None:
                return getattr(fitted, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _make_estimator(self):
        """A fresh, unfitted ``estimator_class`` made with this adapter's parameters (booleans refused where the
        class takes numbers: :func:`deqlib._validation.check_int`'s rule, which scikit-learn does not apply)."""
        params = {name: getattr(self, name) for name in self._wrapped_names}
        for name, value in params.items():
            if isinstance(value, (bool, np.bool_)) and not _takes_booleans(self.estimator_class, name,
                                                                          self._signature.parameters[name].default):
                raise ValueError(f"{name} must be a number or one of {self.estimator_class.__name__}'s options, not a "
                                 f"boolean (True is 1 to Python), got {value!r}")
        return self.estimator_class(**params)

    def cache_key(self) -> dict:
        """``{'<stage>': 'module.Class', 'version': ..., 'params': {...}}`` (:func:`estimator_key` of the wrapped
        class made with these parameters); it validates them as :meth:`fit` does."""
        key = estimator_key(self._make_estimator())
        return {self._stage: key["class"], "version": key["version"], "params": key["params"]}

    def _fit_wrapped(self, X):
        """A fresh wrapped estimator fitted on ``X`` and its output: ``<method>(X)`` (``fit_transform``,
        ``fit_predict``) when it has it, else ``fit(X).<attribute>`` (``embedding_``, ``labels_``)."""
        method, attribute = self._output
        model = self._make_estimator()
        if hasattr(model, method):
            return model, getattr(model, method)(X)
        output = getattr(model.fit(X), attribute, None)
        if output is None:
            raise TypeError(f"{type(model).__name__} has no {method} and sets no {attribute} when fitted: it is not a "
                            f"{self._stage}")
        return model, output

    @classmethod
    def adapt(cls, part, choices=()):
        """A deqlib stage for ``part``: itself when it is one (it has ``cache_key``), else the adapter of its
        class made with its ``get_params()`` (``as_reducer`` / ``as_clusterer``).

        Raises
        ------
        TypeError
            ``part`` is a class rather than an instance, has neither ``fit`` nor the stage's method, or
            has no ``get_params`` (the cache key is made from it); ``choices`` (the registered names)
            are listed in the message.
        """
        stage, (method, attribute) = cls._stage, cls._output
        if isinstance(part, type):
            raise TypeError(f"{stage} must be an instance, got the class {part.__name__}; pass {part.__name__}(...) "
                            f"(or register {cls.__name__}.wrapping({part.__name__}))")
        if hasattr(part, "cache_key"):
            return part
        if not (callable(getattr(part, method, None)) or callable(getattr(part, "fit", None))):
            raise TypeError(f"{stage} must be a registered name ({', '.join(choices)}), a deqlib {stage} or a "
                            f"scikit-learn-style {stage} ({method}, or fit then {attribute}); got {type(part).__name__}")
        if not callable(getattr(part, "get_params", None)):
            raise TypeError(f"{type(part).__name__} has no get_params(), which the cache key is made from: derive it "
                            "from sklearn.base.BaseEstimator, or give it a cache_key() method")
        return cls.wrapping(type(part))(**part.get_params(deep=False))
