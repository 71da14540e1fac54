"""The dataset notebooks (02 KITTI ... 05 BDD100K) generated from one template.

Their shared flow (open the dataset, build the stages, analyze, figures, explorer, stability,
banks, run summary) is written once, in ``notebooks/templates/dataset_notebook.cells``; each
dataset's own part (its narrative, its parameters and its cells: KITTI's Table 1, BDD100K's time
of day and weather) is ``notebooks/templates/<notebook>.cells``. :func:`generate` renders
``notebooks/<notebook>.ipynb`` from the two (``deq notebook generate``), and the tests fail when a
committed notebook differs from its rendering by one byte (``deq notebook generate --check``),
so a change to the flow is made once, in the template.

The ``.cells`` format (plain text, one cell after each marker line)::

    # %% markdown                 a markdown cell (both files)
    # %% code                     a code cell; "# %% code tags=parameters" tags it
    # %% slot NAME                (template) where a notebook's cells named NAME go, in order
    # %% value NAME               (notebook) text for the template's {{NAME}} placeholders
    # %% markdown in NAME         (notebook) a cell for the template's slot NAME
    # %% code in NAME

A cell's text is the lines up to the next marker, blank lines at both ends dropped. Lines before
the first marker are a comment for the reader. Every placeholder needs a value, every value and
every slot named by a notebook must exist in the template: a typo is an error naming the file and
line, never a silently empty cell.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["TEMPLATE", "TemplateError", "templates_dir", "generated_notebooks", "render", "generate"]

#: The template every ``notebooks/templates/<notebook>.cells`` is rendered with.
TEMPLATE = "dataset_notebook"
_MARKER = re.compile(r"^# %% (markdown|code|slot|value)\b(.*)$")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
KERNELSPEC = {"display_name": "Python 3 (deqlib)", "language": "python", "name": "deqlib"}


class TemplateError(ValueError):
    """A ``.cells`` file that cannot be rendered; the message names the file, the line and the fix."""


@dataclass
class Block:
    """One marker and the text after it."""

    kind: str                 # 'markdown', 'code', 'slot' or 'value'
    text: str = ""
    name: str | None = None   # the slot or value name; for a notebook's cell, the slot it goes to
    tags: list[str] = field(default_factory=list)
    where: str = ""           # "file:line", for messages


def templates_dir() -> Path:
    """``<project root>/notebooks/templates``."""
    from deqlib.notebooks import notebooks_dir

    return notebooks_dir() / "templates"


def _parse_marker(kind: str, rest: str, where: str) -> Block:
    words = rest.split()
    if kind in ("slot", "value"):
        if len(words) != 1 or not _NAME.match(words[0]):
            raise TemplateError(f"{where}: '# %% {kind}' takes one name (letters, digits, _), got {rest.strip()!r}")
        return Block(kind, name=words[0], where=where)
    block = Block(kind, where=where)
    while words:
        word = words.pop(0)
        if word == "in" and words and _NAME.match(words[0]):
            block.name = words.pop(0)
        elif word.startswith("tags=") and kind == "code":
            block.tags = [tag for tag in word[len("tags="):].split(",") if tag]
        else:
            raise TemplateError(f"{where}: cannot read {word!r} after '# %% {kind}'; write '# %% {kind}', "
                                f"'# %% {kind} in SLOT'{' or tags=a,b' if kind == 'code' else ''}")
    return block


def parse(text: str, source: str = "<text>") -> list[Block]:
    """The blocks of a ``.cells`` file (see the module docstring)."""
    blocks: list[Block] = []
    lines: list[str] = []

    def close():
        if blocks:
            body = list(lines)
            while body and not body[0].strip():
                body.pop(0)
            while body and not body[-1].strip():
                body.pop()
            blocks[-1].text = "\n".join(body)
        lines.clear()

    for number, line in enumerate(text.splitlines(), start=1):
        match = _MARKER.match(line)
        if match:
            close()
            blocks.append(_parse_marker(match.group(1), match.group(2), f"{source}:{number}"))
        else:
            lines.append(line)
    close()
    return blocks


def _fill(text: str, values: dict[str, str], used: set[str], where: str) -> str:
    def replace(match):
        name = match.group(1)
        if name not in values:
            raise TemplateError(f"{where}: the template asks for {{{{{name}}}}}, which the notebook's .cells file does "
                                f"not give; add '# %% value {name}' to it")
        used.add(name)
        return values[name]

    return _PLACEHOLDER.sub(replace, text)


def render(notebook: str | Path, template: str | Path | None = None) -> str:
    """The ``.ipynb`` text (nbformat 4, no outputs) of a notebook's ``.cells`` file rendered with the template.

    Parameters
    ----------
    notebook : str or path
        ``notebooks/templates/<notebook>.cells``, or the notebook's name (``'02_kitti'``).
    template : str or path, optional
        The template's ``.cells`` file; default ``notebooks/templates/dataset_notebook.cells``.

    Raises
    ------
    TemplateError
        A placeholder without a value, a value or slot the template does not have, a cell of the
        notebook outside a slot, a slot or value given twice.
    """
    import nbformat

    parts_path = Path(notebook) if str(notebook).endswith(".cells") else templates_dir() / f"{notebook}.cells"
    template_path = Path(template) if template is not None else templates_dir() / f"{TEMPLATE}.cells"
    flow = parse(template_path.read_text(encoding="utf-8"), template_path.name)
    parts = parse(parts_path.read_text(encoding="utf-8"), parts_path.name)

    slots = [b.name for b in flow if b.kind == "slot"]
    if len(set(slots)) != len(slots):
        raise TemplateError(f"{template_path.name}: a slot is named twice in {slots}")
    values: dict[str, str] = {}
    cells_for: dict[str, list[Block]] = {name: [] for name in slots}
    for block in parts:
        if block.kind == "value":
            if block.name in values:
                raise TemplateError(f"{block.where}: the value {block.name!r} is given twice")
            values[block.name] = block.text
        elif block.kind == "slot":
            raise TemplateError(f"{block.where}: slots belong in the template ({template_path.name}); a notebook's "
                                "cells say where they go: '# %% code in SLOT'")
        elif block.name is None:
            raise TemplateError(f"{block.where}: a notebook's cell must say which slot of the template it fills "
                                f"('# %% {block.kind} in SLOT'; slots: {', '.join(slots)})")
        elif block.name not in cells_for:
            raise TemplateError(f"{block.where}: the template has no slot {block.name!r}; its slots: {', '.join(slots)}")
        else:
            cells_for[block.name].append(block)

    used: set[str] = set()
    cells = []
    for block in flow:
        if block.kind == "value":
            raise TemplateError(f"{block.where}: values belong in a notebook's .cells file, not in the template")
        if block.name is not None and block.kind != "slot":
            raise TemplateError(f"{block.where}: a template cell fills no slot; drop 'in {block.name}'")
        for cell in cells_for[block.name] if block.kind == "slot" else [block]:
            text = _fill(cell.text, values, used, cell.where)
            if cell.kind == "markdown":
                cells.append(nbformat.v4.new_markdown_cell(text))
            else:
                cells.append(nbformat.v4.new_code_cell(text, metadata={"tags": cell.tags} if cell.tags else {}))
    unused = sorted(set(values) - used)
    if unused:
        raise TemplateError(f"{parts_path.name}: the template uses no placeholder {unused}; drop the value or add "
                            f"{{{{{unused[0]}}}}} to {template_path.name}")
    for index, cell in enumerate(cells):
        cell["id"] = f"cell-{index:02d}"  # stable ids: the same rendering gives the same bytes
    nb = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": dict(KERNELSPEC),
                                                         "language_info": {"name": "python"}})
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def generated_notebooks() -> list[str]:
    """The notebooks made from the template: every ``notebooks/templates/<notebook>.cells`` but the template."""
    return sorted(p.stem for p in templates_dir().glob("*.cells") if p.stem != TEMPLATE)


def generate(names=None, check: bool = False) -> dict[str, bool]:
    """Render the generated notebooks into ``notebooks/<name>.ipynb``.

    Parameters
    ----------
    names : list of str, optional
        Which (default: :func:`generated_notebooks`).
    check : bool, default=False
        Write nothing; only say which committed notebooks differ from their rendering.

    Returns
    -------
    dict
        ``{name: True}`` for each notebook that differed (and was rewritten unless ``check``).
    """
    from deqlib._atomic import write_bytes_atomic
    from deqlib.notebooks import notebooks_dir

    known = generated_notebooks()
    names = known if names is None else list(names)
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise TemplateError(f"no notebooks/templates/<name>.cells for {unknown}; generated notebooks: {', '.join(known)}")
    changed = {}
    for name in names:
        target = notebooks_dir() / f"{name}.ipynb"
        text = render(name)
        changed[name] = not target.is_file() or target.read_bytes() != text.encode("utf-8")
        if changed[name] and not check:
            write_bytes_atomic(target, text.encode("utf-8"))
    return changed
