"""The `deq` console entry point."""

import subprocess
import sys
from pathlib import Path

import pytest

from deqlib import __version__
from deqlib.cli import build_parser, main

DEQ = Path(sys.executable).with_name("deq")


@pytest.mark.slow  # two subprocesses of the installed `deq` script
def test_version_and_help_from_the_installed_script():
    out = subprocess.run([str(DEQ), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"deq (deqlib) {__version__}"
    helptext = subprocess.run([str(DEQ), "--help"], capture_output=True, text=True, check=True).stdout
    assert "Generalized Focal Loss" in helptext and "not Li et al." in helptext


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "usage: deq" in capsys.readouterr().out


def test_every_command_module_registers_a_subcommand():
    parser = build_parser()
    actions = [a for a in parser._actions if a.dest == "command"]
    commands = set(actions[0].choices) if actions else set()
    modules = {p.stem.replace("_", "-") for p in (Path(__file__).parent.parent / "deqlib" / "commands").glob("*.py")
               if p.stem != "__init__"}
    assert modules <= commands | {m.replace("-", "_") for m in commands}


def _subparsers():
    parser = build_parser()
    (action,) = [a for a in parser._actions if a.dest == "command"]
    return action.choices


def test_every_seed_option_says_its_default_in_help():
    """Issue 19: `deq analyze --seed` defaulted to 33 without a word in --help (the notebooks use 0)."""
    seen = []
    for name, sub in _subparsers().items():
        for action in sub._actions:
            if "seed" not in action.dest:
                continue
            option = action.option_strings[-1]
            text = sub._get_formatter()._get_help_string(action)  # the help as --help prints it
            assert "default" in text, (name, option, text)
            seen.append((name, option))
    assert ("analyze", "--seed") in seen and ("stability", "--seeds") in seen and ("explore", "--seed") in seen
    analyze_help = " ".join(_subparsers()["analyze"].format_help().split())
    assert "(default: 0, as the notebooks; --mode reference: 33" in analyze_help


def test_deq_analyze_seeds_as_the_notebooks_and_reference_mode_as_the_official_code(tmp_path, capsys, monkeypatch):
    """Without --seed: 0 in default mode (notebooks 00-05's default), 33 in reference mode (the official
    np.random.seed(33)); recorded in the bank and in the bank's file name's run id."""
    import re

    import numpy as np

    from deqlib.bank import read_bank

    monkeypatch.setenv("DEQ_DATA_DIR", str(tmp_path / "data"))
    rng = np.random.default_rng(1)
    vectors = np.vstack([rng.normal(loc=5 * k, size=(20, 8)) for k in range(3)]).astype(np.float32)
    np.savez(tmp_path / "blobs.npz", vectors=vectors, sample_ids=np.array([f"s{i}" for i in range(60)]))
    base = ["analyze", "--embeddings", str(tmp_path / "blobs.npz"), "--no-cache", "--no-progress", "--perplexity", "5"]
    seeds = {}
    for name, extra in {"default": [], "seed0": ["--seed", "0"], "seed7": ["--seed", "7"],
                        "reference": ["--mode", "reference"]}.items():
        assert main([*base, *extra, "--output", str(tmp_path / f"{name}.parquet")]) == 0, capsys.readouterr().err
        meta = read_bank(tmp_path / f"{name}.parquet").metadata
        seeds[name] = (meta["seed"], meta["reduce"]["random_state"])
    assert seeds == {"default": (0, 0), "seed0": (0, 0), "seed7": (7, 7), "reference": (33, 33)}
    assert read_bank(tmp_path / "default.parquet").table.equals(read_bank(tmp_path / "seed0.parquet").table)
    # The default output path: one file per run, N and run id in its name; another seed, another file.
    capsys.readouterr()
    written = []
    for extra in ([], ["--seed", "7"]):
        assert main([*base, *extra]) == 0
        written.append(re.search(r"bank written to (\S+)", capsys.readouterr().out).group(1))
    assert written[0] != written[1]
    assert all(re.search(r"/blobs_precomputed_default_multi-granularity-lof_n60_[0-9a-f]{8}\.parquet$", w)
               for w in written)  # the default signal's name (eq. 3's banks carry the noise policy instead)
