"""Shared helpers for the embedding benchmarks: machine facts, load average, a file source."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
from pathlib import Path

import pandas as pd
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def uptime() -> str:
    """``uptime``'s line: other engineers share these 2 cores, so every number carries the load."""
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "node": platform.node(),
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads_default": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


class FileSource:
    """Minimal ImageSource over the files of one folder (used when deqlib.sources is absent)."""

    name = "bench-files"
    split = None

    def __init__(self, root: Path):
        self.root = Path(root)
        self.files = sorted(p for p in self.root.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        self.sample_ids = [p.stem for p in self.files]

    def __len__(self):
        return len(self.files)

    def load(self, index, draft=None):
        with Image.open(self.files[index]) as image:
            if draft is not None and image.format == "JPEG":
                image.draft("RGB", draft)
            return image.convert("RGB")

    def metadata(self):
        return pd.DataFrame({"sample_id": self.sample_ids, "location": [str(p) for p in self.files]})

    def fingerprint(self):
        return str(len(self.files))


def open_folder(root: Path, limit: int | None = None):
    """deqlib.sources' folder source when it exists, else :class:`FileSource`; first ``limit`` files."""
    try:
        from deqlib.sources import open_source

        source = open_source("folder", root=root)
        kind = "deqlib.sources.folder"
    except ImportError:
        source, kind = FileSource(root), "benchmarks FileSource"
    if limit is not None and limit < len(source):
        from deqlib.commands.embed import FirstImages

        source = FirstImages(source, limit)
    return source, kind


def save_result(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{name}-{stamp}.json"
    path.write_text(json.dumps(payload, indent=1, default=str))
    return path
