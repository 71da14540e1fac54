"""``deq embed`` started as a child process, for the interrupt and stop-signal tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start_deq_embed(folder: Path, output: Path, *, workers: int = 0, shard_size: int = 8,
                    sigint=signal.SIG_DFL, new_session: bool = False) -> subprocess.Popen:
    """``deq embed`` of an image folder on one CPU thread, its SIGINT disposition set to ``sigint``.

    A background job (``nohup ... &``) inherits SIGINT ignored; the default here is what a terminal
    gives, and ``signal.SIG_IGN`` is the background job. ``new_session`` puts the child and its
    DataLoader workers in their own process group, so a test can signal the whole group.
    """
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "deqlib.cli", "embed", "--source", "folder", "--root", str(folder),
           "--output", str(output), "--workers", str(workers), "--threads", "1", "--device", "cpu",
           "--precision", "fp32", "--batch-size", "4", "--shard-size", str(shard_size), "--no-progress"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, sigint), start_new_session=new_session)


def wait_for_shard(output: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Wait until the run has written its first complete shard (it is then mid-run)."""
    deadline = time.monotonic() + timeout
    while not list(output.glob("*/*/shards/*.npz")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no shard appeared"
        time.sleep(0.05)
