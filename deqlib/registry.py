"""Named, pluggable parts of each stage (sources, encoders, reducers, clusterers, rarity signals).

Every stage module owns one :class:`Registry` and registers its own parts beside their code, so
adding a part is one entry in that module (plus its test); the CLI's choices, the stage builder
(:func:`deqlib.pipeline.build_stages`) and the contract tests read the registries, never a
hand-written list::

    from deqlib.reduce import REDUCERS

    @REDUCERS.register("my-reducer", summary="what it is, in a few words", requires=("mypackage",))
    class MyReducer(BaseEstimator):
        ...

    REDUCERS.create("my-reducer", n_components=3)   # an instance; unknown names list the choices

Why a small class of our own rather than entry points: the parts live in this package and a
user's notebook; a dict with a decorator, clear errors and the optional-dependency check is all
that is needed, and it stays importable without any plugin machinery.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Entry", "Registry", "MissingDependencyError"]


class MissingDependencyError(ImportError):
    """A registered part needs a package that is not installed (the message names the install command)."""


@dataclass(frozen=True)
class Entry:
    """One registered part: its name, what makes it (a class or a function) and what it needs."""

    name: str
    factory: Callable[..., Any]
    summary: str = ""
    aliases: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)

    def missing_packages(self) -> list[str]:
        """Import names of ``requires`` that cannot be imported here."""
        return [name for name in self.requires if importlib.util.find_spec(name) is None]

    @property
    def available(self) -> bool:
        return not self.missing_packages()


def _canonical(name: str) -> str:
    return str(name).strip().lower().replace("_", "-")


class Registry(Mapping):
    """Names -> parts of one kind (``'reducer'``, ``'clusterer'``, ...).

    Parameters
    ----------
    kind : str
        What the parts are, used in messages ("unknown reducer 'x'; choose one of ...").
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self._aliases: dict[str, str] = {}

    # -- registration
    def register(self, name: str, *, summary: str = "", aliases: tuple[str, ...] = (),
                 requires: tuple[str, ...] = (), **extra) -> Callable[[Callable], Callable]:
        """Decorator registering a class or factory function under ``name``.

        ``requires`` lists import names (``'umap'``, ``'fast_hdbscan'``) checked when the part is
        created, so an optional dependency costs nothing until used. ``extra`` is free-form
        (e.g. a download hint, the pip name) and read back from :attr:`Entry.extra`.
        """
        key = _canonical(name)

        def decorate(factory: Callable) -> Callable:
            if key in self._entries or key in self._aliases:
                raise ValueError(f"a {self.kind} named {name!r} is already registered")
            text = summary or (factory.__doc__ or "").strip().splitlines()[0:1]
            text = text if isinstance(text, str) else (text[0] if text else "")
            self._entries[key] = Entry(key, factory, text, tuple(_canonical(a) for a in aliases),
                                       tuple(requires), dict(extra))
            for alias in aliases:
                self._aliases[_canonical(alias)] = key
            return factory

        return decorate

    def unregister(self, name: str) -> None:
        """Remove a part (tests and notebooks that register a temporary one)."""
        key = self.resolve(name)
        entry = self._entries.pop(key)
        for alias in entry.aliases:
            self._aliases.pop(alias, None)

    # -- lookup
    def resolve(self, name: str) -> str:
        """The canonical name of ``name`` (or one of its aliases); a clear error otherwise."""
        if not isinstance(name, str):
            raise TypeError(f"a {self.kind} name must be a string, got {type(name).__name__}")
        key = _canonical(name)
        key = self._aliases.get(key, key)
        if key not in self._entries:
            raise ValueError(f"unknown {self.kind} {name!r}; choose one of {', '.join(self.names())}")
        return key

    def entry(self, name: str) -> Entry:
        return self._entries[self.resolve(name)]

    def __getitem__(self, name: str) -> Entry:
        return self.entry(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = _canonical(name)
        return key in self._entries or key in self._aliases

    def names(self, available_only: bool = False) -> tuple[str, ...]:
        """Registered names in registration order (the first is the default where one is implied)."""
        return tuple(k for k, e in self._entries.items() if e.available or not available_only)

    # -- creation
    def create(self, name: str, **params) -> Any:
        """An instance of the part ``name`` made with ``params``.

        Raises
        ------
        ValueError
            Unknown name (the message lists the choices).
        MissingDependencyError
            The part needs a package that is not installed (the message says which to install).
        """
        entry = self.entry(name)
        missing = entry.missing_packages()
        if missing:
            pip = entry.extra.get("pip", " ".join(missing))
            raise MissingDependencyError(
                f"the {self.kind} {entry.name!r} needs {', '.join(missing)}, which is not installed here; "
                f"install it with `pip install {pip}` (or `bash workbook.sh setup`, which installs every "
                "dependency of environment.yml)")
        return entry.factory(**params)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"
