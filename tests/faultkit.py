"""Helpers of the fault-injection tests (tests/test_faults_cache.py), importable by their subprocesses.

:class:`PixelEncoder` is an encoder whose vector is the image's 4x4 normalised pixels: exact and
instant, so a test can check that every vector belongs to its sample id (a wrong vector is a
wrong colour). :class:`ColourSource` is a synthetic source whose sample ``i`` is a solid colour
unique to ``i`` (no files); :func:`expected_vector` is the vector its sample must get.

Run as a script it is one writer/reader of the concurrency stress test:
``python faultkit.py CACHE SECONDS SEED PROCESSES`` waits until PROCESSES of them are ready, embeds
random subsets of a shared pool into one cache for ``SECONDS`` and exits 1 (printing the ids) if
any vector was not its sample's.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from deqlib.encoders import Encoder

POOL = 4000  # samples the stress test's processes draw from


def colour(index: int) -> tuple[int, int, int]:
    """A colour unique to ``index`` (< 2**21)."""
    return (index % 128 * 2, (index // 128) % 128 * 2, (index // 16384) % 128 * 2)


def expected_vector(index: int) -> np.ndarray:
    """The :class:`PixelEncoder` vector of :class:`ColourSource` sample ``index`` (16 equal pixels)."""
    pixel = (np.asarray(colour(index), dtype=np.float32) / 255.0 - 0.5) / 0.5
    return np.tile(pixel[:, None], (1, 16)).reshape(-1)  # CHW flattened: 16 R, 16 G, 16 B


@dataclass
class PixelEncoder(Encoder):
    """4x4 pixels, normalised: a 48-d vector that identifies a solid-colour image exactly."""

    name = "pixels-test"
    family = "convnet"
    dim = 48
    image_size = (4, 4)
    default_preprocessing = "reference"

    def _default_weights_identity(self) -> str:
        return "none"

    def _build_backbone(self) -> torch.nn.Module:
        return torch.nn.Identity()


class ColourSource:
    """Samples ``indices`` of the colour pool: id ``c00042`` is a 4x4 image of ``colour(42)``."""

    name = "colours"
    root = None
    split = None

    def __init__(self, indices):
        self.indices = [int(i) for i in indices]
        self.sample_ids = [f"c{i:05d}" for i in self.indices]

    def __len__(self):
        return len(self.indices)

    def load(self, index, draft=None):
        return Image.new("RGB", (4, 4), colour(self.indices[index]))

    def metadata(self):
        return pd.DataFrame({"sample_id": self.sample_ids, "location": [""] * len(self)})


def wrong_vectors(result) -> list[str]:
    """Ids of ``result`` (an EmbeddingResult over a ColourSource) whose vector is not theirs."""
    bad = []
    for sample_id, vector in zip(result.sample_ids, result.vectors):
        if not np.array_equal(vector, expected_vector(int(sample_id[1:]))):
            bad.append(sample_id)
    return bad


def stress(cache: str, seconds: float, seed: int, processes: int = 1) -> int:
    """Embed random subsets of the pool into ``cache`` until ``seconds`` pass; count wrong vectors."""
    import time

    from deqlib.embed import embed_source

    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    # Start together (imports take seconds on a busy machine): each says it is ready, then waits
    # for the others, so the runs really overlap on the cache.
    ready = Path(f"{cache}.ready")
    ready.mkdir(parents=True, exist_ok=True)
    (ready / str(seed)).touch()
    give_up = time.monotonic() + 120
    while len(list(ready.iterdir())) < processes and time.monotonic() < give_up:
        time.sleep(0.02)
    deadline = time.monotonic() + seconds
    runs = wrong = 0
    while time.monotonic() < deadline:
        indices = np.sort(rng.choice(POOL, size=int(rng.integers(20, 200)), replace=False))
        result = embed_source(ColourSource(indices), PixelEncoder(), cache_dir=cache, device="cpu",
                              precision="fp32", num_workers=0, num_threads=1, batch_size=64,
                              shard_size=int(rng.integers(5, 40)), progress=False)
        bad = wrong_vectors(result)
        if bad or result.sample_ids != ColourSource(indices).sample_ids:
            print(f"seed {seed}: {len(bad)} wrong vectors, e.g. {bad[:5]}", flush=True)
            wrong += 1
        runs += 1
    print(f"seed {seed}: {runs} runs, {wrong} wrong", flush=True)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(stress(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
