"""The README's "Your own images" section: its three commands parse, fit together and run as printed.

The fast tests read the commands out of the README (so the README cannot drift from the CLI) and parse them
with ``deq``'s own parser; the slow one runs them, as printed, on a 120-image digits folder written by
``benchmarks/own_images/make_digits_folder.py`` in a scratch project.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from deqlib.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "own_images" / "make_digits_folder.py"
HEADING = "## Your own images"


def _section() -> str:
    text = (ROOT / "README.md").read_text()
    assert text.count(HEADING) == 1, f"README.md has no single {HEADING!r} section"
    body = text.split(HEADING, 1)[1]
    return body.split("\n## ", 1)[0]


def readme_commands() -> list[list[str]]:
    """The ``deq`` commands of the section's first bash block, as argument lists without ``deq``."""
    block = _section().split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line, comments=True) for line in block.splitlines()]
    commands = [c for c in commands if c]
    assert all(c[0] == "deq" for c in commands), commands
    return [c[1:] for c in commands]


def _load_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_digits_folder", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_section_sits_near_the_top_before_the_long_material():
    text = (ROOT / "README.md").read_text()
    assert text.index(HEADING) < text.index("## What the main job produces")
    assert text.index(HEADING) < text.index("## The CLI")


def test_the_three_commands_parse_and_use_the_defaults():
    commands = readme_commands()
    assert [c[0] for c in commands] == ["analyze", "explore", "rarity-check"]
    parser = build_parser()
    parsed = [parser.parse_args(c) for c in commands]
    analyze, explore, check = parsed
    for args in parsed:
        assert args.func is not None
        assert args.source == "folder"
        assert args.root == analyze.root
    assert explore.bank == analyze.output  # the explorer opens the bank the analysis wrote
    # The default signal and encoder: the section's numbers are those of the defaults.
    assert not any(arg.startswith(("--rarity", "--encoder", "--reducer", "--clusterer")) for c in commands for arg in c)
    assert analyze.rarity == parser.parse_args(["analyze"]).rarity
    # The folder is the one the script writes by default.
    assert analyze.root == _load_script().DEFAULT_OUT
    assert "make_digits_folder.py" in _section()


def test_the_script_writes_class_folders_of_grayscale_pngs_and_the_photos(tmp_path):
    from PIL import Image

    written = _load_script().write_digits_folder(tmp_path / "digits", size=16, max_images=20, photos=True)
    pngs = [p for p in written if p.suffix == ".png"]
    assert len(pngs) == 20 and len({p.parent.name for p in pngs}) == 10  # stratified: every digit twice
    assert {p.name for p in written if p.parent.name == "photos"} == {"china.jpg", "flower.jpg"}
    with Image.open(pngs[0]) as image:
        assert image.size == (16, 16) and image.mode == "L"
    from deqlib.sources import open_source

    source = open_source("folder", root=tmp_path / "digits")
    assert len(source) == 22
    assert set(source.metadata()["folder"]) == {*map(str, range(10)), "photos"}


def test_rarity_check_takes_a_folder_smaller_than_its_default_sample_whole(tmp_path, monkeypatch, capsys):
    """A user's folder of fewer than 1,000 images: no --n-samples needed (it used to fail)."""
    import deqlib.embed
    import deqlib.rarity_check

    _load_script().write_digits_folder(tmp_path / "digits", size=16, max_images=150)
    seen = {}

    class Stop(RuntimeError):
        pass

    def fake_rarity_check(source, encoder, *, n_samples, **kwargs):
        seen["n_samples"], seen["n_source"] = n_samples, len(source)
        raise Stop("stop before the work")

    monkeypatch.setattr(deqlib.embed, "get_encoder", lambda name, weights=None: name)
    monkeypatch.setattr(deqlib.rarity_check, "rarity_check", fake_rarity_check)
    assert main(["rarity-check", "--source", "folder", "--root", str(tmp_path / "digits"), "--no-progress"]) != 0
    assert seen == {"n_samples": 150, "n_source": 150}
    assert main(["rarity-check", "--source", "folder", "--root", str(tmp_path / "digits"), "--n-samples", "120",
                 "--no-progress"]) != 0
    assert seen["n_samples"] == 120


@pytest.mark.slow
def test_the_three_commands_run_as_printed_on_a_small_digits_folder(tmp_path):
    """About 2 minutes on 2 busy cores: 120 images through analyze, explore and rarity-check."""
    env = dict(os.environ, DEQ_PROJECT_ROOT=str(tmp_path), PYTHONPATH=str(ROOT))
    env.pop("DEQ_DATA_DIR", None)
    env.pop("DEQ_FIGURES_DIR", None)
    commands = readme_commands()
    root = Path(build_parser().parse_args(commands[0]).root)
    subprocess.run([sys.executable, str(SCRIPT), str(root), "--max-images", "120", "--size", "32"],
                   cwd=tmp_path, env=env, check=True, capture_output=True)
    before = sorted((tmp_path / root).rglob("*"))
    outputs = []
    for command in commands:
        done = subprocess.run([sys.executable, "-m", "deqlib.cli", *command, "--no-progress"], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, (command, done.stderr[-3000:])
        outputs.append(done.stdout)
    bank = pd.read_parquet(tmp_path / build_parser().parse_args(commands[0]).output)
    assert len(bank) == 120
    assert {"sample_id", "likelihood", "x", "y", "z", "raw_cluster_id"} <= set(bank.columns)  # the default signal
    page = tmp_path / "figures" / f"{Path(build_parser().parse_args(commands[0]).output).stem}_explorer.html"
    assert page.is_file() and page.stat().st_size > 100_000
    results = tmp_path / "data" / "processed" / "rarity-check" / "folder"
    for name in ("rarity_check_auc.csv", "rarity_check_cells.csv", "rarity_check_params.json",
                 "rarity_check_auc.png"):
        assert (results / name).is_file(), name
    assert "best signal here" in outputs[2]
    assert sorted((tmp_path / root).rglob("*")) == before  # nothing written into the image folder
