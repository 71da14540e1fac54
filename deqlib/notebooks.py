"""Run the workbook's notebooks headlessly with papermill and check the figures they write.

The notebooks hold narrative and calls into deqlib, no logic; this module executes them
like a user would (a real Jupyter kernel, top to bottom) so that CI proves they work:

* :func:`execute_notebook` runs one notebook with parameters and writes the executed copy to
  ``build/notebooks/`` (git-ignored), stamped with the deqlib, Python and library versions.
  Any cell error raises :class:`NotebookExecutionError` naming the cell and the copy to read.
* :func:`regenerate_figures` runs the main-job notebooks of :data:`MAIN_NOTEBOOKS` in order
  and checks that each one (re)wrote the figures it promises. ``bash workbook.sh main``
  (``deq figures``) calls it.

Adding a notebook to the main job is one line in :data:`MAIN_NOTEBOOKS`. A notebook that
writes figures should declare ``output_dir = None`` in its cell tagged ``parameters`` and
fall back to :func:`deqlib.paths.figures_dir`; the runner passes the figures folder both as
that parameter and as ``$DEQ_FIGURES_DIR`` in the kernel's environment.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from deqlib import __version__
from deqlib import paths
from deqlib._atomic import write_text_atomic

__all__ = [
    "MAIN_NOTEBOOKS",
    "DEFAULT_KERNEL",
    "NotebookExecutionError",
    "UnknownNotebookParameterError",
    "MissingFigureError",
    "NotebookRun",
    "notebooks_dir",
    "check_notebook_parameters",
    "list_notebooks",
    "resolve_notebook",
    "resolve_kernel",
    "environment_versions",
    "execute_notebook",
    "regenerate_figures",
]

logger = logging.getLogger(__name__)

#: The kernel the set-up registers in ``.venv`` (``ipykernel install --sys-prefix --name deqlib``).
DEFAULT_KERNEL = "deqlib"
#: Used when ``deqlib`` is not registered: the kernel of the running interpreter.
FALLBACK_KERNEL = "python3"

#: The main job, in running order: notebook name (file stem in ``notebooks/``) -> file names
#: of the figures it must write into the figures folder. Add a line to add a notebook.
MAIN_NOTEBOOKS: dict[str, tuple[str, ...]] = {
    "00_quickstart": ("fashion-mnist_tsne_clusters.png", "fashion-mnist_likelihood_per_cluster.png",
                      "fashion-mnist_weight_distribution.png", "fashion-mnist_rarest_clusters.png",
                      "fashion-mnist_common_clusters.png", "fashion-mnist_likelihood_histogram.png",
                      "fashion-mnist_rarest_samples.png", "fashion-mnist_common_samples.png",
                      "fashion-mnist_signal_check.csv", "fashion-mnist_explorer.html",
                      "fashion-mnist_stability_mean_vs_spread.png", "fashion-mnist_stability_agreement.png"),
    "06_parameter_sweeps": ("sweep_clusters_vs_eps.png", "sweep_weight_spread.png"),
    "01_generalized_focal_loss": ("figure3_generalized_focal_loss.png",),
    "07_training_with_gfl": ("training_gfl_results.png", "training_gfl_results.csv",
                             "training_gfl_signal_ranking.csv", "training_gfl_runs.csv"),
    "90_paper_results": ("figure5_dd3d_bev_ap.png",),
}

#: Packages whose versions an executed notebook records.
_RECORDED_PACKAGES = ("torch", "torchvision", "numpy", "pandas", "scikit-learn", "matplotlib", "plotly",
                      "open_clip_torch", "openTSNE", "hdbscan", "papermill")


class NotebookExecutionError(RuntimeError):
    """A notebook cell raised; the message names the cell and the executed copy to inspect."""

    def __init__(self, message: str, *, notebook: Path, executed: Path, cell_index: int | None = None,
                 ename: str | None = None, evalue: str | None = None):
        super().__init__(message)
        self.notebook = notebook
        self.executed = executed
        self.cell_index = cell_index
        self.ename = ename
        self.evalue = evalue


class UnknownNotebookParameterError(ValueError):
    """A parameter the notebook's cell tagged ``parameters`` does not declare (papermill would only warn
    and run with the notebook's own value); the message lists the valid ones."""


def check_notebook_parameters(name_or_path: str | os.PathLike, names: Iterable[str]) -> set[str]:
    """Refuse parameter ``names`` the notebook does not declare; return the declared ones.

    Parameters
    ----------
    name_or_path : str or path-like
        A notebook path, name or number prefix (:func:`resolve_notebook`).
    names : iterable of str
        Parameter names to be injected (``-p KEY VALUE``, a sweep's base parameters and grid axes).

    Raises
    ------
    UnknownNotebookParameterError
        Naming each unknown parameter (with the closest declared name, when one is close), the
        notebook, and every parameter it declares. Before, papermill only logged a warning and
        the notebook ran with its own value (``-p perplexity 3`` ran at perplexity 30).
    """
    import difflib

    notebook = resolve_notebook(name_or_path)
    declared = _declared_parameters(notebook)
    unknown = sorted(set(names) - declared)
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, sorted(declared), n=1)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        nested = ("; a t-SNE or clusterer setting goes inside reducer_params / clusterer_params, e.g. "
                  "-p reducer_params '{\"perplexity\": 3}'") if {"reducer_params", "clusterer_params"} <= declared else ""
        raise UnknownNotebookParameterError(
            f"notebook {notebook.name} has no parameter {', '.join(hints)}; its parameters are: "
            f"{', '.join(sorted(declared))}{nested}")
    return declared


class MissingFigureError(RuntimeError):
    """A notebook ran without error but did not write a figure it is registered for."""


@dataclass(frozen=True)
class NotebookRun:
    """One executed notebook: its name, the executed copy and the figures it wrote."""

    name: str
    executed: Path
    figures: tuple[Path, ...] = field(default_factory=tuple)
    seconds: float = 0.0


def notebooks_dir() -> Path:
    """``<project root>/notebooks``."""
    return paths.project_root() / "notebooks"


def list_notebooks(directory: str | Path | None = None) -> list[Path]:
    """Every ``*.ipynb`` in the notebooks folder, sorted by name (checkpoints excluded)."""
    directory = Path(directory) if directory is not None else notebooks_dir()
    return sorted(p for p in directory.glob("*.ipynb") if not p.name.startswith("."))


def resolve_notebook(name_or_path: str | os.PathLike) -> Path:
    """Find a notebook by path, by name (``01_generalized_focal_loss``) or by number (``01``).

    Raises
    ------
    FileNotFoundError
        If nothing matches; the message lists the notebooks there are.
    ValueError
        If a number prefix matches several notebooks.
    """
    candidate = Path(name_or_path)
    if candidate.suffix == ".ipynb" and candidate.is_file():
        return candidate.resolve()
    stem = candidate.name[: -len(".ipynb")] if candidate.name.endswith(".ipynb") else candidate.name
    available = list_notebooks()
    exact = [p for p in available if p.stem == stem]
    if exact:
        return exact[0].resolve()
    prefixed = [p for p in available if p.stem.startswith(f"{stem}_")]
    if len(prefixed) == 1:
        return prefixed[0].resolve()
    names = ", ".join(p.stem for p in available) or "(none)"
    if len(prefixed) > 1:
        raise ValueError(f"notebook {str(name_or_path)!r} is ambiguous: {', '.join(p.stem for p in prefixed)}")
    raise FileNotFoundError(f"no notebook {str(name_or_path)!r} in {notebooks_dir()}; available: {names}")


def resolve_kernel(kernel_name: str | None = None) -> str:
    """The Jupyter kernel to run notebooks with.

    ``None`` picks ``'deqlib'`` (registered by ``bash workbook.sh setup``) and falls back to
    ``'python3'`` (this interpreter's own kernel) with a warning when it is not registered.
    A named kernel must exist.
    """
    from jupyter_client.kernelspec import KernelSpecManager

    available = KernelSpecManager().find_kernel_specs()
    if kernel_name is not None:
        if kernel_name not in available:
            installed = ", ".join(sorted(available)) or "none"
            raise ValueError(
                f"Jupyter kernel {kernel_name!r} is not installed (available: {installed}); "
                f"register it with: {sys.executable} -m ipykernel install --sys-prefix --name {kernel_name}"
            )
        return kernel_name
    if DEFAULT_KERNEL in available:
        return DEFAULT_KERNEL
    logger.warning(
        "Jupyter kernel %r is not registered; running notebooks with %r (%s). Register it with: "
        "%s -m ipykernel install --sys-prefix --name deqlib --display-name 'Python 3 (deqlib)'",
        DEFAULT_KERNEL, FALLBACK_KERNEL, sys.executable, sys.executable,
    )
    return FALLBACK_KERNEL


def environment_versions() -> dict[str, str]:
    """Versions of Python, deqlib and the main libraries, read without importing them.

    Returns
    -------
    dict
        ``{'python': '3.11.2', 'deqlib': '0.1.0', 'torch': '2.14.1', ...}``; a package that is
        not installed reads ``'not installed'``.
    """
    versions = {"python": platform.python_version(), "deqlib": __version__, "platform": platform.platform()}
    for package in _RECORDED_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _plain(value: Any) -> Any:
    """Parameters as papermill can write them into a cell: paths become strings, tuples lists."""
    if isinstance(value, os.PathLike):
        return str(Path(value).resolve())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _first_error(nb) -> tuple[int | None, str | None, str | None]:
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return index, output.get("ename"), output.get("evalue")
    return None, None, None


def _kernel_manager_logging_to(log_file: Path):
    """A jupyter_client kernel manager whose kernels write their process stdout/stderr to ``log_file``."""
    from jupyter_client.manager import AsyncKernelManager

    class KernelManagerWithLogFile(AsyncKernelManager):
        async def _async_start_kernel(self, **kw):
            with open(log_file, "ab") as log:  # the child keeps its own copy of the descriptor
                kw.setdefault("stdout", log)
                kw.setdefault("stderr", log)
                return await super()._async_start_kernel(**kw)

        start_kernel = _async_start_kernel

    return KernelManagerWithLogFile


def _relay_kernel_log(log_file: Path, notebook_name: str) -> None:
    """Pass a kernel's own log on to this module's logger (nothing is lost) and delete the file."""
    try:
        lines = log_file.read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    finally:
        log_file.unlink(missing_ok=True)
    for line in filter(str.strip, lines):
        # jupyter_client interrupts every kernel before shutting it down: not a problem of the notebook
        level = logging.DEBUG if "KeyboardInterrupt caught in kernel" in line else logging.WARNING
        logger.log(level, "kernel of %s: %s", notebook_name, line)


def execute_notebook(name_or_path: str | os.PathLike, parameters: Mapping[str, Any] | None = None,
                     output_dir: str | os.PathLike | None = None, kernel_name: str | None = None,
                     timeout: float | None = None, progress: bool = False) -> Path:
    """Execute a notebook with papermill and write the executed copy.

    Parameters
    ----------
    name_or_path : str or path-like
        A notebook path, name (``'90_paper_results'``) or number prefix (``'90'``).
    parameters : mapping, optional
        Values injected after the cell tagged ``parameters`` (papermill). Paths become
        absolute strings, because the kernel runs in the notebook's folder.
    output_dir : path-like, optional
        Where the *executed notebook* goes (default ``build/notebooks``, see
        :func:`deqlib.paths.build_dir`). Not where figures go: that is the notebook's own
        ``output_dir`` parameter.
    kernel_name : str, optional
        Jupyter kernel; default ``'deqlib'``, else ``'python3'`` with a warning.
    timeout : float, optional
        Seconds allowed per cell; ``None`` for no limit.
    progress : bool, default=False
        Show papermill's progress bar.

    Returns
    -------
    Path
        The executed copy, ``<output_dir>/<notebook name>.ipynb``. Its metadata holds
        ``deqlib`` (versions, kernel, parameters, status) next to papermill's own record.

    Raises
    ------
    UnknownNotebookParameterError
        A parameter the notebook does not declare, before anything runs (a ``ValueError``).
    NotebookExecutionError
        If any cell raises. The executed copy (with the traceback) is still written.
    """
    import nbformat
    import papermill

    notebook = resolve_notebook(name_or_path)
    parameters = _plain(dict(parameters or {}))
    check_notebook_parameters(notebook, parameters)  # before a kernel starts
    kernel = resolve_kernel(kernel_name)
    target_dir = Path(output_dir) if output_dir is not None else paths.build_dir() / "notebooks"
    target_dir = target_dir.resolve()
    target_dir.mkdir(parents=True, exist_ok=True)
    executed = target_dir / notebook.name

    # papermill saves after every cell: run into a scratch file and publish the finished copy
    # (with our metadata) in one rename, so build/ never holds a half-written notebook.
    fd, scratch_name = tempfile.mkstemp(prefix=f".{notebook.stem}.", suffix=".ipynb", dir=target_dir)
    os.close(fd)
    scratch = Path(scratch_name)
    failure: BaseException | None = None
    # The kernel process's own stdout/stderr (its log, not cell output, which travels over
    # ZeroMQ) goes to this file: inherited, it leaked into the caller's cell outputs when a
    # notebook runs a notebook (06), e.g. "KeyboardInterrupt caught in kernel", logged when
    # jupyter_client's shutdown (which always interrupts first) catches a kernel still busy.
    fd, log_name = tempfile.mkstemp(prefix=f".{notebook.stem}.", suffix=".kernel.log")
    os.close(fd)
    kernel_log = Path(log_name)
    started = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(notebook), str(scratch), parameters=parameters, kernel_name=kernel, language="python",
            cwd=str(notebook.parent), progress_bar=progress, log_output=False, execution_timeout=timeout,
            # The kernel's own log (not cell output) otherwise prints a warning about its
            # localhost TCP transport into every notebook that runs another notebook (06).
            extra_arguments=["--IPKernelApp.log_level=ERROR"],
            kernel_manager_class=_kernel_manager_logging_to(kernel_log),
        )
    except papermill.PapermillExecutionError as exc:
        failure = exc
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise
    finally:
        _relay_kernel_log(kernel_log, notebook.name)
    seconds = time.perf_counter() - started

    try:
        nb = nbformat.read(scratch, as_version=4)
    finally:
        scratch.unlink(missing_ok=True)
    nb.metadata["deqlib"] = {
        "versions": environment_versions(),
        "kernel_name": kernel,
        "source_notebook": notebook.name,
        "parameters": parameters,
        "status": "failed" if failure is not None else "completed",
        "seconds": round(seconds, 3),
    }
    write_text_atomic(executed, nbformat.writes(nb))

    if failure is not None:
        cell_index, ename, evalue = _first_error(nb)
        ename = ename or getattr(failure, "ename", None)
        evalue = evalue if evalue is not None else getattr(failure, "evalue", None)
        raise NotebookExecutionError(
            f"notebook {notebook.name} failed in cell {getattr(failure, 'exec_count', '?')} "
            f"({ename}: {evalue}); the executed copy with the traceback is {executed}",
            notebook=notebook, executed=executed, cell_index=cell_index, ename=ename, evalue=evalue,
        ) from None
    logger.info("executed %s in %.1f s -> %s", notebook.name, seconds, executed)
    return executed


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables for the kernels started inside the block, then restore them."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _declared_parameters(notebook: Path) -> set[str]:
    import papermill

    return set(papermill.inspect_notebook(str(notebook)))


def _select(notebooks: Iterable[str] | None, registry: Mapping[str, Sequence[str]]) -> list[str]:
    if notebooks is None:
        return sorted(registry)
    chosen = []
    for requested in notebooks:
        matches = [name for name in registry if name == requested or name.startswith(f"{requested}_")]
        if len(matches) != 1:
            raise ValueError(
                f"{requested!r} is not one notebook of the main job; choose from: {', '.join(sorted(registry))}"
            )
        chosen.append(matches[0])
    return sorted(set(chosen))


def regenerate_figures(notebooks: Iterable[str] | None = None, figures_dir: str | os.PathLike | None = None,
                       build_dir: str | os.PathLike | None = None, kernel_name: str | None = None,
                       registry: Mapping[str, Sequence[str]] | None = None,
                       progress: bool = False) -> list[NotebookRun]:
    """Execute the main-job notebooks in order and check each wrote its figures.

    Parameters
    ----------
    notebooks : iterable of str, optional
        Names or number prefixes of notebooks in ``registry``; default all of them.
    figures_dir : path-like, optional
        Where figures go (default :func:`deqlib.paths.figures_dir`).
    build_dir : path-like, optional
        Where executed notebooks go (default ``build/notebooks``).
    kernel_name : str, optional
        See :func:`execute_notebook`.
    registry : mapping, optional
        Notebook name -> expected figure file names; default :data:`MAIN_NOTEBOOKS`.
    progress : bool, default=False

    Returns
    -------
    list of NotebookRun
        In running order.

    Raises
    ------
    NotebookExecutionError
        A cell failed (the remaining notebooks are not run).
    MissingFigureError
        A notebook ran but an expected figure is missing or was not rewritten by this run.
    """
    registry = dict(MAIN_NOTEBOOKS if registry is None else registry)
    selected = _select(notebooks, registry)
    figures = (Path(figures_dir) if figures_dir is not None else paths.figures_dir()).resolve()
    figures.mkdir(parents=True, exist_ok=True)
    runs: list[NotebookRun] = []
    for name in selected:
        notebook = resolve_notebook(name)
        parameters = {"output_dir": str(figures)} if "output_dir" in _declared_parameters(notebook) else {}
        # Coarse file-system clocks: allow a second of slack when checking "written by this run".
        started_wall = time.time() - 1.0
        started = time.perf_counter()
        with _environment(DEQ_FIGURES_DIR=str(figures)):
            executed = execute_notebook(notebook, parameters=parameters, output_dir=build_dir,
                                        kernel_name=kernel_name, progress=progress)
        expected = [figures / file_name for file_name in registry[name]]
        missing = [p for p in expected if not p.is_file()]
        stale = [p for p in expected if p.is_file() and p.stat().st_mtime < started_wall]
        if missing or stale:
            problems = [f"{p.name} (missing)" for p in missing] + [f"{p.name} (not rewritten)" for p in stale]
            raise MissingFigureError(
                f"notebook {name} ran but did not write {', '.join(problems)} in {figures}; "
                f"see the executed copy {executed}"
            )
        runs.append(NotebookRun(name=name, executed=executed, figures=tuple(expected),
                                seconds=time.perf_counter() - started))
        logger.info("%s: %s", name, ", ".join(p.name for p in expected) or "no figures registered")
    return runs
