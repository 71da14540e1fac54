import pytest
import sys
from pathlib import Path

# What a test costs, by marker (declared in pyproject.toml; README, "Tests"):
#   notebook  executes a notebook in a real Jupyter kernel (papermill)
#   browser   drives Debian's headless chromium
#   slow      a kernel, a browser, a subprocess running the pipeline, torchrun or a busy core:
#             `pytest -m "not slow"` leaves them out. Every notebook and browser test is slow too (below),
#             so a new one cannot be forgotten.

# tests/layouts.py builds dataset trees; make it importable from every test module and notebook test.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module's CPU embedding runs: on a busy shared machine OpenMP threads
    spinning for a descheduled sibling made them 20x slower."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("notebook") or item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.slow)

