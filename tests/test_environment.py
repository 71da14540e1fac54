"""environment.yml (conda users) must list the same packages as pyproject.toml (pip users)."""

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def _normalise(requirement: str) -> tuple[str, str]:
    parsed = Requirement(requirement)
    return parsed.name.lower().replace("_", "-"), str(parsed.specifier)


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_deps = project["dependencies"] + project["optional-dependencies"]["test"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict) and "pip" in item)
    conda_deps = [entry for entry in pip_section if not entry.startswith("-e")]
    assert sorted(map(_normalise, conda_deps)) == sorted(map(_normalise, pip_deps))
    assert "python=3.11" in env["dependencies"]


def test_torch_pins_follow_the_verified_pair():
    deps = dict(map(_normalise, tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]))
    assert deps["torch"] == "==2.14.1" and deps["torchvision"] == "==0.29.1"


def test_design_card_packages_are_dependencies():
    deps = {name for name, _ in map(_normalise, tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])}
    card = {"jupyterlab", "torch", "open-clip-torch", "opentsne", "hdbscan", "plotly", "matplotlib", "papermill", "pandas"}
    assert card <= deps, card - deps
