"""The dataset notebooks 02-05 are their template's rendering, byte for byte; the flow is written once."""

import shutil
from pathlib import Path

import nbformat
import pytest

from deqlib import notebook_templates
from deqlib.cli import main
from deqlib.notebook_templates import TemplateError, generate, generated_notebooks, parse, render

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "notebooks" / "templates"
DATASET_NOTEBOOKS = ["02_kitti", "03_nuscenes", "04_waymo", "05_bdd100k"]


def test_the_dataset_notebooks_are_generated():
    assert generated_notebooks() == DATASET_NOTEBOOKS


@pytest.mark.parametrize("name", DATASET_NOTEBOOKS)
def test_committed_notebook_is_its_template_rendered_byte_for_byte(name):
    committed = (ROOT / "notebooks" / f"{name}.ipynb").read_bytes()
    assert render(name).encode("utf-8") == committed, (
        f"notebooks/{name}.ipynb differs from notebooks/templates/dataset_notebook.cells + {name}.cells: edit the "
        "templates (not the notebook), then run `deq notebook generate`")


def _code_lines(blocks):
    return [line for b in blocks if b.kind == "code" for line in b.text.splitlines()
            if line.strip() and not line.lstrip().startswith("#") and "{{" not in line]


def test_the_flow_is_written_once():
    """Every code line of the template's flow is in each notebook, and in none of the datasets' own files."""
    flow = _code_lines(parse((TEMPLATES / "dataset_notebook.cells").read_text()))
    assert len(flow) > 40  # the shared flow lives in the template
    for name in DATASET_NOTEBOOKS:
        own = parse((TEMPLATES / f"{name}.cells").read_text())
        assert not set(_code_lines(own)) & set(flow), f"{name}.cells repeats lines of the template's flow"
        notebook = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
        code = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
        assert all(line in code for line in flow)
        tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1 and "source_kind = " in tagged[0].source and "encoder = " in tagged[0].source


def test_each_dataset_keeps_its_own_cells():
    texts = {name: (ROOT / "notebooks" / f"{name}.ipynb").read_text() for name in DATASET_NOTEBOOKS}
    assert "kitti_class_counts" in texts["02_kitti"] and all("kitti_class_counts" not in texts[n]
                                                            for n in DATASET_NOTEBOOKS[1:])
    assert '[\\"timeofday\\", \\"weather\\"]' in texts["05_bdd100k"]
    assert all("timeofday\\\", \\\"weather" not in texts[n] for n in DATASET_NOTEBOOKS[:3])


def _project_copy(tmp_path, monkeypatch):
    """The notebooks folder (templates and generated notebooks) under a scratch project root."""
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    monkeypatch.setenv("DEQ_PROJECT_ROOT", str(tmp_path))
    return tmp_path / "notebooks"


def test_a_change_to_the_flow_reaches_every_notebook_and_drift_is_caught(tmp_path, monkeypatch, capsys):
    notebooks = _project_copy(tmp_path, monkeypatch)
    assert main(["notebook", "generate", "--check"]) == 0
    template = notebooks / "templates" / "dataset_notebook.cells"
    template.write_text(template.read_text().replace("report.galleries()", "report.galleries()  # changed once"))
    assert generate(check=True) == dict.fromkeys(DATASET_NOTEBOOKS, True)
    assert main(["notebook", "generate", "--check"]) == 1
    assert "edit notebooks/templates/*.cells" in capsys.readouterr().out
    assert main(["notebook", "generate"]) == 0
    for name in DATASET_NOTEBOOKS:
        assert "report.galleries()  # changed once" in (notebooks / f"{name}.ipynb").read_text()
    assert generate(check=True) == dict.fromkeys(DATASET_NOTEBOOKS, False)
    # an edit made in the generated notebook itself is drift
    kitti = notebooks / "02_kitti.ipynb"
    kitti.write_text(kitti.read_text().replace("report.galleries()", "report.galleries(); 1"))
    assert generate(check=True)["02_kitti"] is True


@pytest.mark.parametrize("edit, message", [
    (lambda t, p: (t.replace("{{title}}", "{{titel}}"), p), r"\{\{titel\}\}.*add '# %% value titel'"),
    (lambda t, p: (t, p + "\n# %% value unused\nx\n"), r"uses no placeholder \['unused'\]"),
    (lambda t, p: (t, p + "\n# %% code in nowhere\nx = 1\n"), "no slot 'nowhere'; its slots: after_images, "),
    (lambda t, p: (t, p + "\n# %% code\nx = 1\n"), "must say which slot"),
    (lambda t, p: (t, p + "\n# %% code tagz=parameters\nx = 1\n"), "cannot read 'tagz=parameters'"),
    (lambda t, p: (t, p + "\n# %% value title\nagain\n"), "value 'title' is given twice"),
])
def test_template_mistakes_name_the_file_line_and_fix(tmp_path, monkeypatch, edit, message):
    notebooks = _project_copy(tmp_path, monkeypatch)
    template, parts = notebooks / "templates" / "dataset_notebook.cells", notebooks / "templates" / "04_waymo.cells"
    new_template, new_parts = edit(template.read_text(), parts.read_text())
    template.write_text(new_template)
    parts.write_text(new_parts)
    with pytest.raises(TemplateError, match=message) as caught:
        render("04_waymo")
    assert ".cells" in str(caught.value)


def test_generate_refuses_an_unknown_notebook():
    with pytest.raises(TemplateError, match="generated notebooks: 02_kitti"):
        notebook_templates.generate(["00_quickstart"], check=True)
