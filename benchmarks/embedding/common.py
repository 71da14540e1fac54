"""Shared helpers for the embedding benchmarks: machine facts, load average, a folder source."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks/_host.py
from _host import cpu_model  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def uptime() -> str:
    """``uptime``'s line: other engineers share these 2 cores, so every number carries the load."""
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def machine() -> dict:
    return {
        "node": platform.node(),
        "cpu": cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads_default": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def open_folder(root: Path, limit: int | None = None):
    """deqlib's folder source over ``root``, restricted to its first ``limit`` files."""
    from deqlib.sources import SubsetSource, open_source

    source = open_source("folder", root=root)
    if limit is not None and limit < len(source):
        source = SubsetSource(source, range(limit))
    return source, "deqlib.sources.folder"


def save_result(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{name}-{stamp}.json"
    path.write_text(json.dumps(payload, indent=1, default=str))
    return path
