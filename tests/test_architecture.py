"""docs/ARCHITECTURE.md's layering rules, checked on the code: every import of deqlib, function-level ones included.

The rules (docs/ARCHITECTURE.md, "Layers"):

1. no import cycle between deqlib's modules (a package's ``__init__`` re-exporting its own
   submodules is not a cycle);
2. no module imports another module's private (``_underscore``) names; modules of one subpackage
   (``deqlib.commands.*``, ``deqlib.experiment.*``, ...) may share theirs, and the private helper
   modules (``deqlib._validation``, ``deqlib._atomic``, ...) are imported by their public names;
3. every module sits in one layer of ARCHITECTURE.md's layer table and imports only modules of its
   own layer or of lower layers;
4. the training experiment (``deqlib.experiment``) is an application: nothing in deqlib imports it
   but the ``deq train-demo`` command.

The import graph is read from the source with ``ast`` (nothing is imported), so an import inside a
function counts as much as one at the top of the file.
"""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "deqlib"
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
#: The only modules outside the experiment that may import it (rule 4).
EXPERIMENT = "deqlib.experiment"
EXPERIMENT_IMPORTERS = {"deqlib.commands.train_demo"}


# ------------------------------------------------------------------------------------ the checker
def module_name(path: Path, package_dir: Path) -> str:
    parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package_dir: Path) -> tuple[dict[str, set[str]], list[tuple[str, str, str]]]:
    """``(edges, private)``: module -> the package's modules it imports (at any depth of the file), and
    ``(importer, module, name)`` for every import of another module's private name."""
    package_dir = Path(package_dir)
    files = {module_name(path, package_dir): path for path in sorted(package_dir.rglob("*.py"))}
    edges: dict[str, set[str]] = {module: set() for module in files}
    private: list[tuple[str, str, str]] = []
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            targets: list[tuple[str, str | None]] = []
            if isinstance(node, ast.Import):
                targets = [(alias.name, None) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: anchored at this module's package
                    anchor = module.split(".") if is_package else module.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    # `from pkg import submodule` imports a module, not a name of pkg
                    targets.append((full, None) if full in files else (base, alias.name))
            for target, name in targets:
                while target and target not in files:
                    target = target.rpartition(".")[0]
                if not target or target == module:
                    continue
                edges[module].add(target)
                if (name and name.startswith("_") and not name.startswith("__")
                        and target.split(".")[:2] != module.split(".")[:2]):
                    private.append((module, target, name))
    return edges, private


def _package_and_child(a: str, b: str) -> bool:
    return b == a.rpartition(".")[0] or a == b.rpartition(".")[0]


def import_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted; the edges between a
    package's ``__init__`` and its own submodules are left out (re-exports)."""
    graph = {m: sorted(t for t in targets if not _package_and_child(m, t)) for m, targets in edges.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # iterative enough for a package of this size; recursion depth = chain length
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def read_layers(text: str) -> list[tuple[int, str, list[str]]]:
    """ARCHITECTURE.md's layer table: ``(number, name, module patterns)`` per row, patterns like
    ``deqlib.stages`` or ``deqlib.sources.*`` (the package and everything in it)."""
    if "## Layers" not in text:
        return []
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    layers = []
    for line in section.splitlines():
        row = re.match(r"\|\s*(\d+)\s+([^|]+?)\s*\|([^|]*)\|", line)
        if row:
            modules = ["deqlib" if m == "deqlib" else f"deqlib.{m}" for m in re.findall(r"`([\w.*]+)`", row.group(3))]
            layers.append((int(row.group(1)), row.group(2), modules))
    return layers


def layer_of(module: str, layers: list[tuple[int, str, list[str]]]) -> int | None:
    for number, _, patterns in layers:
        for pattern in patterns:
            if module == pattern or (pattern.endswith(".*") and (module == pattern[:-2]
                                                                 or module.startswith(pattern[:-1]))):
                return number
    return None


def layer_violations(edges: dict[str, set[str]], layers) -> tuple[list[str], list[str]]:
    """``(unplaced, upward)``: modules in no layer, and ``importer (layer) -> module (layer)`` imports of a higher layer."""
    unplaced = sorted(m for m in edges if layer_of(m, layers) is None)
    upward = sorted(f"{m} (layer {layer_of(m, layers)}) -> {t} (layer {layer_of(t, layers)})"
                    for m, targets in edges.items() for t in targets
                    if None not in (layer_of(m, layers), layer_of(t, layers))
                    and layer_of(t, layers) > layer_of(m, layers))
    return unplaced, upward


@pytest.fixture(scope="module")
def graph():
    return import_graph(PACKAGE)


@pytest.fixture(scope="module")
def layers():
    table = read_layers(ARCHITECTURE.read_text(encoding="utf-8"))
    assert len(table) >= 5, "docs/ARCHITECTURE.md lost its layer table (section '## Layers')"
    return table


# ------------------------------------------------------------------------------------ the rules on deqlib
def test_deqlib_has_no_import_cycle(graph):
    edges, _ = graph
    cycles = import_cycles(edges)
    assert not cycles, "import cycles (function-level imports count):\n" + "\n".join(
        "  " + " <-> ".join(cycle) for cycle in cycles)


def test_no_module_imports_another_modules_private_names(graph):
    _, private = graph
    assert not private, ("imports of another module's private names; make the name public or move the helper to "
                         "deqlib/_validation.py or a small shared module:\n"
                         + "\n".join(f"  {importer} imports {name} from {module}" for importer, module, name in private))


def test_every_module_has_a_layer_and_imports_only_its_own_or_lower_layers(graph, layers):
    edges, _ = graph
    unplaced, upward = layer_violations(edges, layers)
    assert not unplaced, ("modules in no layer of docs/ARCHITECTURE.md's layer table (add them to the row they "
                          "belong to):\n  " + "\n  ".join(unplaced))
    assert not upward, "imports of a higher layer (docs/ARCHITECTURE.md, 'Layers'):\n  " + "\n  ".join(upward)


def test_the_layer_table_names_only_modules_that_exist(graph, layers):
    edges, _ = graph
    stale = [p for _, _, patterns in layers for p in patterns
             if p.rstrip(".*") not in edges and not any(m.startswith(p[:-1]) for m in edges if p.endswith(".*"))]
    assert not stale, f"docs/ARCHITECTURE.md's layer table names modules that do not exist: {stale}"


def test_the_experiment_is_an_application_nothing_in_deqlib_imports(graph):
    edges, _ = graph
    importers = sorted(m for m, targets in edges.items() if not (m == EXPERIMENT or m.startswith(EXPERIMENT + "."))
                       and any(t == EXPERIMENT or t.startswith(EXPERIMENT + ".") for t in targets))
    assert set(importers) <= EXPERIMENT_IMPORTERS, (
        f"only {sorted(EXPERIMENT_IMPORTERS)} may import deqlib.experiment (an application, not a library stage); "
        f"also imported by: {sorted(set(importers) - EXPERIMENT_IMPORTERS)}")
    assert importers == sorted(EXPERIMENT_IMPORTERS)  # deq train-demo does use it: the rule is not vacuous


def test_the_stage_modules_never_import_the_pipeline_plots_or_commands(graph, layers):
    """ARCHITECTURE.md: 'stages never import pipeline, plots or commands' (a consequence of the layers)."""
    edges, _ = graph
    stage_modules = ["deqlib.reduce", "deqlib.cluster", "deqlib.likelihood", "deqlib.weights", "deqlib.embed",
                     "deqlib.bank", "deqlib.consensus", "deqlib.faithfulness"]
    above = ("deqlib.pipeline", "deqlib.stages", "deqlib.stability", "deqlib.plots", "deqlib.commands")
    modules = [m for m in edges if any(m == s or m.startswith(s + ".") for s in stage_modules)]  # packages too
    assert set(stage_modules) <= set(modules) and "deqlib.reduce.tsne" in modules
    reach = {m: sorted(t for t in edges[m] if t.startswith(above)) for m in modules}
    assert not any(reach.values()), reach


MAX_LINES = 600


def test_no_module_is_over_600_lines_but_the_documented_exceptions():
    """Issue 18's target: a module over 600 lines holds one concept that needs it, and ARCHITECTURE.md says which
    and why (a bullet starting with its path under '## Module sizes')."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text.split("## Module sizes", 1)[1].split("\n## ", 1)[0] if "## Module sizes" in text else ""
    documented = set(re.findall(r"^- `([\w/]+\.py)`", section, flags=re.M))
    sizes = {path.relative_to(PACKAGE).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
             for path in PACKAGE.rglob("*.py")}
    long = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert set(long) <= documented, (f"modules over {MAX_LINES} lines: split them, or say in docs/ARCHITECTURE.md "
                                     f"('## Module sizes') which one concept needs it: "
                                     f"{ {k: v for k, v in long.items() if k not in documented} }")
    assert documented <= set(long), f"documented as over {MAX_LINES} lines but not: {sorted(documented - set(long))}"


# ------------------------------------------------------------------------------------ the checker itself
def _write_package(root: Path, modules: dict[str, str]) -> Path:
    package = root / "pkg"
    package.mkdir()
    for name, code in {"__init__": "", **modules}.items():
        (package / f"{name}.py").write_text(textwrap.dedent(code))
    return package


def test_the_checker_finds_a_cycle_hidden_in_a_function_and_a_private_import(tmp_path):
    package = _write_package(tmp_path, {
        "a": """
            from pkg.b import helper

            def _secret():
                return 1
            """,
        "b": """
            def helper():
                from pkg import a  # imported at use, as deqlib's old cycles were

                return a._secret()
            """,
        "c": "from pkg.a import _secret\nfrom . import b\n",
        "d": "import pkg.c\n",
    })
    edges, private = import_graph(package)
    assert edges["pkg.b"] == {"pkg.a"} and edges["pkg.c"] == {"pkg.a", "pkg.b"} and edges["pkg.d"] == {"pkg.c"}
    assert import_cycles(edges) == [["pkg.a", "pkg.b"]]
    assert private == [("pkg.c", "pkg.a", "_secret")]
    with pytest.raises(AssertionError, match="pkg.a <-> pkg.b"):
        test_deqlib_has_no_import_cycle((edges, private))
    with pytest.raises(AssertionError, match="pkg.c imports _secret from pkg.a"):
        test_no_module_imports_another_modules_private_names((edges, private))


def test_the_checker_refuses_an_upward_import_and_an_unplaced_module(tmp_path):
    package = _write_package(tmp_path, {"low": "def f():\n    import pkg.high\n", "high": "import pkg.low\n",
                                        "new": ""})
    edges, _ = import_graph(package)
    table = read_layers("## Layers\n| layer | modules |\n|---|---|\n| 0 low | `pkg`, `pkg.low` |\n"
                        "| 1 high | `pkg.high` |\n")
    table = [(n, name, [p.replace("deqlib.", "", 1) for p in patterns]) for n, name, patterns in table]
    unplaced, upward = layer_violations(edges, table)
    assert unplaced == ["pkg.new"] and upward == ["pkg.low (layer 0) -> pkg.high (layer 1)"]
    assert import_cycles(edges) == [["pkg.high", "pkg.low"]]


def test_the_checker_sees_what_the_old_code_hid(tmp_path):
    """The import graph of deqlib before issue 18 (its cycle and private imports, written as a package)."""
    old = {"bank": "from pkg.likelihood import x\n", "likelihood": "def f():\n    from pkg.stability import _knn_graph\n",
           "stability": "from pkg.likelihood import x\ndef g():\n    from pkg.bank import y\n    from pkg.pipeline import z\n",
           "pipeline": "from pkg.bank import y\ndef h():\n    from pkg.stability import faithfulness\n"}
    edges, private = import_graph(_write_package(tmp_path, old))
    assert import_cycles(edges) == [["pkg.bank", "pkg.likelihood", "pkg.pipeline", "pkg.stability"]]
    assert private == [("pkg.likelihood", "pkg.stability", "_knn_graph")]
