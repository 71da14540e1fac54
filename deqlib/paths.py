"""Where things live, following Cookiecutter Data Science.

``data/raw`` is immutable input, ``data/interim`` holds caches (embeddings,
t-SNE coordinates), ``data/processed`` holds likelihood banks, ``figures``
holds regenerated figures. Every location can be moved with an environment
variable so that tests and sweeps can write elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The workbook's root: ``$DEQ_PROJECT_ROOT``, else the repository holding this package."""
    env = os.environ.get("DEQ_PROJECT_ROOT")
    if env:
        return Path(env).expanduser().resolve()
    return Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """``$DEQ_DATA_DIR`` or ``<root>/data``."""
    return Path(os.environ.get("DEQ_DATA_DIR") or project_root() / "data")


def raw_dir() -> Path:
    return data_dir() / "raw"


def interim_dir() -> Path:
    return data_dir() / "interim"


def processed_dir() -> Path:
    return data_dir() / "processed"


def figures_dir() -> Path:
    """``$DEQ_FIGURES_DIR`` or ``<root>/figures``."""
    return Path(os.environ.get("DEQ_FIGURES_DIR") or project_root() / "figures")


def build_dir() -> Path:
    """Executed notebooks and other throw-away outputs: ``$DEQ_BUILD_DIR`` or ``<root>/build``."""
    return Path(os.environ.get("DEQ_BUILD_DIR") or project_root() / "build")
