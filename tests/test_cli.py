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
