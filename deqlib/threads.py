"""Thread limits for the small CPU steps (tiny training loops, t-SNE on a few thousand points).

Why: torch and the BLAS/OpenMP pools default to one thread per core. On a busy 2-core machine a tiny
training loop with two threads spends its time spinning in OpenMP barrier waits for a thread that is
not scheduled: the training experiment once made no progress for 25 minutes that way, while one thread
finished normally. For such small work one thread is also about as fast as two on an idle machine
(``benchmarks/training/threads.json``), so the experiment runs its training and t-SNE steps under
:func:`limit_threads` with :data:`SMALL_STEP_THREADS` threads.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from threadpoolctl import threadpool_limits

__all__ = ["SMALL_STEP_THREADS", "limit_threads"]

#: Threads for small training loops and small t-SNE runs (measured: benchmarks/training/threads.json).
SMALL_STEP_THREADS = 1


@contextlib.contextmanager
def limit_threads(n_threads: int = SMALL_STEP_THREADS) -> Iterator[int]:
    """Run the block with at most ``n_threads`` torch, BLAS and OpenMP threads; restore them after.

    Parameters
    ----------
    n_threads : int, default=SMALL_STEP_THREADS (1)
        Threads for torch intra-op work and for every native pool threadpoolctl finds
        (OpenBLAS, MKL, OpenMP as used by numpy, scikit-learn and openTSNE).

    Yields
    ------
    int
        The thread count in force inside the block.
    """
    n_threads = int(n_threads)
    if n_threads < 1:
        raise ValueError(f"n_threads must be at least 1, got {n_threads}")
    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        with threadpool_limits(limits=n_threads):
            yield n_threads
    finally:
        torch.set_num_threads(previous)
