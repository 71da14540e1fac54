"""The committed notebooks: clean on disk, and executed headlessly with papermill they write their figures."""

import json
import logging
import os
import time
from pathlib import Path

import nbformat
import pytest
from PIL import Image

from deqlib import __version__, notebooks
from deqlib.cli import main
from deqlib.commands.notebook import parse_value
from deqlib.plots import paper as paper_plots

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks_and_the_main_job_exists():
    names = {p.stem for p in NOTEBOOKS}
    assert {"01_generalized_focal_loss", "90_paper_results"} <= names
    assert set(notebooks.MAIN_NOTEBOOKS) <= names
    assert notebooks.MAIN_NOTEBOOKS["01_generalized_focal_loss"] == (paper_plots.FIGURE3_FILENAME,)
    assert notebooks.MAIN_NOTEBOOKS["90_paper_results"] == (paper_plots.FIGURE5_FILENAME,)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_is_valid_clean_and_parameterised(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: commit notebooks without outputs"
            assert cell.execution_count is None, f"{path.name}: execution_count must be null"
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and tagged[0].cell_type == "code", f"{path.name}: needs one code cell tagged 'parameters'"
    assert nb.metadata["kernelspec"]["name"] == "deqlib"
    assert nb.metadata["kernelspec"]["display_name"] == "Python 3 (deqlib)"


def _assert_png(path, min_width=400, min_height=250):
    assert path.is_file(), path
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width >= min_width and image.height >= min_height
        colors = image.convert("RGB").getcolors(maxcolors=1 << 24)
        assert len(colors) > 50  # a drawing, not a blank canvas
    assert paper_plots.read_png_metadata(path)["deqlib_version"] == __version__


@pytest.fixture(scope="module")
def main_job(tmp_path_factory):
    """Both main-job notebooks executed once, into temporary folders (never the repo's figures/)."""
    root = tmp_path_factory.mktemp("main-job")
    # Only these two: notebooks added to the main job later have their own tests.
    runs = notebooks.regenerate_figures(notebooks=["90", "01"], figures_dir=root / "figures", build_dir=root / "build")
    return root, runs


@pytest.mark.notebook
def test_main_job_writes_the_expected_figures(main_job):
    root, runs = main_job
    assert [r.name for r in runs] == ["01_generalized_focal_loss", "90_paper_results"]
    written = {p.name for p in (root / "figures").iterdir()}
    assert written == {paper_plots.FIGURE3_FILENAME, paper_plots.FIGURE5_FILENAME}
    for run in runs:
        for figure in run.figures:
            _assert_png(figure)
    record = paper_plots.read_png_metadata(root / "figures" / paper_plots.FIGURE3_FILENAME)
    assert record["parameters"]["etas"] == [0.0, 0.3, 1.0, 3.0]  # the notebook's defaults: the paper's Figure 3


@pytest.mark.notebook
def test_executed_notebooks_record_parameters_and_versions(main_job):
    root, runs = main_job
    for run in runs:
        assert run.executed == root / "build" / f"{run.name}.ipynb"
        nb = nbformat.read(run.executed, as_version=4)
        record = nb.metadata["deqlib"]
        assert record["status"] == "completed" and record["kernel_name"] == "deqlib"
        assert record["versions"]["deqlib"] == __version__ and record["versions"]["torch"]
        assert record["parameters"] == {"output_dir": str(root / "figures")}
        assert nb.metadata["papermill"]["parameters"] == {"output_dir": str(root / "figures")}
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
        assert errors == []


@pytest.mark.notebook
def test_paper_notebook_shows_the_disagreements(main_job):
    root, _ = main_job
    nb = nbformat.read(root / "build" / "90_paper_results.ipynb", as_version=4)
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "6 of 33 printed Deltas disagree" in text
    html = "\n".join(o.get("data", {}).get("text/html", "")
                     for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "(-2.56%)" in html and "BEVFusion-C-NC-DE" in html


@pytest.mark.notebook
def test_focal_loss_notebook_shows_the_interactive_view(main_job):
    root, _ = main_job
    nb = nbformat.read(root / "build" / "01_generalized_focal_loss.ipynb", as_version=4)
    plotly = [o["data"]["application/vnd.plotly.v1+json"] for c in nb.cells if c.cell_type == "code"
              for o in c.outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(plotly) == 1 and len(plotly[0]["layout"]["sliders"]) == 2


@pytest.mark.notebook
def test_parameters_reach_the_notebook(tmp_path):
    executed = notebooks.execute_notebook("01", parameters={"output_dir": tmp_path / "f", "etas": [0.5],
                                                            "gammas": [1.0, 3.0], "n_points": 11},
                                          output_dir=tmp_path / "build")
    assert executed == tmp_path / "build" / "01_generalized_focal_loss.ipynb"
    record = paper_plots.read_png_metadata(tmp_path / "f" / paper_plots.FIGURE3_FILENAME)
    assert record["parameters"]["etas"] == [0.5] and record["parameters"]["gammas"] == [1.0, 3.0]
    assert record["parameters"]["n_points"] == 11


def _write_notebook(path, *sources):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "deqlib", "display_name": "Python 3 (deqlib)",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nb.cells[0].metadata["tags"] = ["parameters"]
    nbformat.write(nb, path)
    return path


@pytest.mark.notebook
def test_a_failing_cell_raises_with_the_cell_and_the_copy(tmp_path):
    broken = _write_notebook(tmp_path / "broken.ipynb", "x = 1", "y = x / 0", "z = 2")
    with pytest.raises(notebooks.NotebookExecutionError, match="ZeroDivisionError") as caught:
        notebooks.execute_notebook(broken, output_dir=tmp_path / "out")
    error = caught.value
    assert error.ename == "ZeroDivisionError" and error.executed == tmp_path / "out" / "broken.ipynb"
    assert str(error.executed) in str(error)
    nb = nbformat.read(error.executed, as_version=4)
    assert nb.metadata["deqlib"]["status"] == "failed"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["broken.ipynb"]  # no scratch files left


@pytest.mark.notebook
def test_a_notebook_that_runs_a_notebook_shows_only_cell_output(tmp_path, monkeypatch):
    """06 drives other notebooks: their kernels' start-up log must not leak into its outputs."""
    # ipykernel stops forwarding its process's stderr into cell outputs under pytest; undo
    # that so the kernel behaves as in the main job.
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    inner = _write_notebook(tmp_path / "inner.ipynb", "value = 1", "print('inner ran', value)")
    outer = _write_notebook(
        tmp_path / "outer.ipynb", "inner = None",
        "from deqlib.notebooks import execute_notebook\n"
        f"print('executed', execute_notebook(inner, output_dir={str(tmp_path / 'inner-out')!r}).name)")
    executed = notebooks.execute_notebook(outer, parameters={"inner": inner}, output_dir=tmp_path / "out")
    texts = ["".join(output.get("text", "")) for cell in nbformat.read(executed, as_version=4).cells
             for output in cell.get("outputs", [])]
    assert texts == ["executed inner.ipynb\n"]
    inner_nb = nbformat.read(tmp_path / "inner-out" / "inner.ipynb", as_version=4)
    assert inner_nb.cells[-1].outputs[0]["text"] == "inner ran 1\n"


@pytest.mark.notebook
def test_a_kernel_log_at_shutdown_never_reaches_the_callers_cells(tmp_path, monkeypatch, caplog):
    """Why the test above was flaky: jupyter_client interrupts a kernel before shutting it down,
    and a kernel still busy logs "KeyboardInterrupt caught in kernel" to its process stderr,
    which the inner kernel inherited from the outer one (so it landed in 06's cell output).
    Here the inner kernel writes that line (and one other) to its stderr at exit, every time."""
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    inner = _write_notebook(
        tmp_path / "inner.ipynb", "value = 1",
        "import atexit, os\n"
        "atexit.register(os.write, 2, b'[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel\\n'"
        " b'another kernel line\\n')\n"
        "print('inner ran', value)")
    outer = _write_notebook(
        tmp_path / "outer.ipynb", "inner = None",
        "import logging\nlogging.getLogger('deqlib.notebooks').setLevel(logging.ERROR)\n"
        "from deqlib.notebooks import execute_notebook\n"
        f"print('executed', execute_notebook(inner, output_dir={str(tmp_path / 'inner-out')!r}).name)")
    executed = notebooks.execute_notebook(outer, parameters={"inner": inner}, output_dir=tmp_path / "out")
    texts = ["".join(output.get("text", "")) for cell in nbformat.read(executed, as_version=4).cells
             for output in cell.get("outputs", [])]
    assert texts == ["executed inner.ipynb\n"]
    # nothing is lost: run directly, the kernel's own lines reach deqlib's log
    with caplog.at_level(logging.DEBUG, logger="deqlib.notebooks"):
        notebooks.execute_notebook(inner, output_dir=tmp_path / "direct")
    relayed = {(r.levelno, r.getMessage()) for r in caplog.records if r.getMessage().startswith("kernel of")}
    assert relayed == {(logging.DEBUG, "kernel of inner.ipynb: [IPKernelApp] ERROR | KeyboardInterrupt caught in kernel"),
                       (logging.WARNING, "kernel of inner.ipynb: another kernel line")}
    assert sorted(p.name for p in (tmp_path / "direct").iterdir()) == ["inner.ipynb"]


@pytest.mark.notebook
def test_missing_or_stale_figures_fail_the_main_job(tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    _write_notebook(project / "notebooks" / "05_quiet.ipynb", "output_dir = None", "print('no figure written')")
    monkeypatch.setenv("DEQ_PROJECT_ROOT", str(project))
    figures = tmp_path / "figures"
    figures.mkdir()
    stale = figures / "old.png"
    stale.write_bytes(b"stale")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    with pytest.raises(notebooks.MissingFigureError, match=r"new\.png \(missing\), old\.png \(not rewritten\)"):
        notebooks.regenerate_figures(figures_dir=figures, build_dir=tmp_path / "build",
                                     registry={"05_quiet": ("new.png", "old.png")})


def test_notebook_names_resolve_by_number_name_or_path():
    assert notebooks.resolve_notebook("90").name == "90_paper_results.ipynb"
    assert notebooks.resolve_notebook("01_generalized_focal_loss").name == "01_generalized_focal_loss.ipynb"
    assert notebooks.resolve_notebook(NOTEBOOKS[0]) == NOTEBOOKS[0].resolve()
    with pytest.raises(FileNotFoundError, match="available: .*90_paper_results"):
        notebooks.resolve_notebook("77")
    with pytest.raises(ValueError, match="not one notebook of the main job"):
        notebooks.regenerate_figures(notebooks=["77"])


def test_kernel_falls_back_to_python3_and_says_so(monkeypatch, caplog):
    from jupyter_client import kernelspec

    monkeypatch.setattr(kernelspec.KernelSpecManager, "find_kernel_specs", lambda self: {"python3": "/x"})
    with caplog.at_level(logging.WARNING, logger="deqlib.notebooks"):
        assert notebooks.resolve_kernel() == "python3"
    assert "'deqlib' is not registered" in caplog.text and "ipykernel install" in caplog.text
    with pytest.raises(ValueError, match="ipykernel install --sys-prefix --name nope"):
        notebooks.resolve_kernel("nope")


def test_the_deqlib_kernel_is_used_when_registered():
    assert notebooks.resolve_kernel() == "deqlib"


def test_environment_versions_name_the_stack():
    versions = notebooks.environment_versions()
    assert versions["deqlib"] == __version__
    assert {"python", "torch", "numpy", "pandas", "papermill"} <= set(versions)
    json.dumps(versions)  # recorded in notebook metadata: must be JSON


@pytest.mark.notebook
def test_cli_figures_and_notebook_commands(tmp_path, capsys):
    assert main(["figures", "--list"]) == 0
    assert "90_paper_results: figure5_dd3d_bev_ap.png" in capsys.readouterr().out
    assert main(["figures", "--only", "90", "--output-dir", str(tmp_path / "figs"),
                 "--build-dir", str(tmp_path / "build")]) == 0
    assert "90_paper_results" in capsys.readouterr().out
    _assert_png(tmp_path / "figs" / paper_plots.FIGURE5_FILENAME)
    assert main(["notebook", "run", "77"]) == 2
    assert "no notebook '77'" in capsys.readouterr().err


def test_cli_parameter_values_are_read_as_json_when_they_parse():
    assert parse_value("[0, 0.5]") == [0, 0.5]
    assert parse_value("3") == 3 and parse_value("true") is True and parse_value("null") is None
    assert parse_value("figures/run-1") == "figures/run-1"
