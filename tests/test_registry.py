"""deqlib.registry: names, aliases, clear errors, optional dependencies."""

import pytest

from deqlib.registry import MissingDependencyError, Registry


def _registry():
    parts = Registry("widget")

    @parts.register("round-one", aliases=("round",), summary="a round widget")
    class Round:
        def __init__(self, size=1):
            self.size = size

    @parts.register("needs-missing", requires=("a_package_that_is_not_there_42",), pip="not-there")
    def needs_missing():
        return "never made"

    return parts, Round


def test_create_by_name_alias_and_spelling():
    parts, Round = _registry()
    made = parts.create("Round_One", size=3)
    assert isinstance(made, Round) and made.size == 3
    assert isinstance(parts.create("round"), Round)
    assert parts.resolve("ROUND") == "round-one"
    assert parts.names() == ("round-one", "needs-missing")
    assert parts.names(available_only=True) == ("round-one",)
    assert "round" in parts and "square" not in parts and 3 not in parts
    assert parts["round-one"].summary == "a round widget"


def test_unknown_name_lists_the_choices():
    parts, _ = _registry()
    with pytest.raises(ValueError, match=r"unknown widget 'square'; choose one of round-one, needs-missing"):
        parts.create("square")
    with pytest.raises(TypeError, match="must be a string"):
        parts.resolve(3)


def test_missing_dependency_names_the_install_command():
    parts, _ = _registry()
    with pytest.raises(MissingDependencyError, match=r"pip install not-there"):
        parts.create("needs-missing")


def test_duplicate_names_are_refused_and_unregister_frees_them():
    parts, Round = _registry()
    with pytest.raises(ValueError, match="already registered"):
        parts.register("round")(Round)
    parts.unregister("round")
    assert "round" not in parts and "round-one" not in parts
    parts.register("round-one")(Round)
    assert parts.names()[-1] == "round-one"
