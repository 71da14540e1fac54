import sys
from pathlib import Path

# tests/layouts.py builds dataset trees; make it importable from every test module and notebook test.
sys.path.insert(0, str(Path(__file__).parent))
