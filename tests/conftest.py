import pytest
import sys
from pathlib import Path

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
