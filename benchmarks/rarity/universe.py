"""The rarity benchmark's data: a clean universe embedded once per encoder, altered candidates, and
each seed's pool drawn from them.

* Universe: ``per_class`` Fashion-MNIST training images of each class (a fixed seeded selection).
* Candidates: the first ``candidates_per_class`` of each class's universe images; every driving
  condition of :mod:`deqlib.conditions` is applied to all of them (default strength, condition seed
  0, per-image seeds from the image id), and the altered copies are embedded too.
* A task's pool for a seed: ``N`` images drawn from the universe (and, for a condition task,
  ``round(p N)`` altered candidates whose clean originals are left out), in a seeded row order.

Embeddings are made by :func:`deqlib.embed.embed_source` (its atomic shard cache under
``data/interim/rarity-bench/embeddings``, precision fp32 explicitly so that no CPU's bf16 path changes
them), then gathered into one ``.npz`` per encoder and universe (written atomically).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deqlib import paths
from deqlib._atomic import atomic_path
from deqlib.conditions import CONDITIONS, DRIVING_CONDITIONS, ConditionSource
from deqlib.embed import embed_source, get_encoder
from deqlib.sources import FashionMNISTSource, SubsetSource

#: Caches (embeddings, gathered universes, cells); RARITY_BENCH_CACHE moves them (the tests use a temporary folder).
ROOT = Path(os.environ.get("RARITY_BENCH_CACHE") or paths.interim_dir() / "rarity-bench")
EMBED_CACHE = ROOT / "embeddings"


@dataclass(frozen=True)
class UniverseSpec:
    """What the universe is; its ``tag`` names the gathered file (quick and full never mix)."""

    per_class: int = 720  # a pool of 5,000 with 3 rare classes takes up to 710 of each of the 7 others
    candidates_per_class: int = 40  # 400 altered candidates per condition; a 3 % task draws 150
    seed: int = 0
    conditions: tuple[str, ...] = DRIVING_CONDITIONS
    condition_seed: int = 0

    @property
    def tag(self) -> str:
        return f"u{self.per_class}-c{self.candidates_per_class}-s{self.seed}-cs{self.condition_seed}"

    def strengths(self) -> dict[str, float]:
        return {name: float(CONDITIONS.entry(name).extra["default_strength"]) for name in self.conditions}


QUICK = UniverseSpec(per_class=16, candidates_per_class=2)  # for --quick (N = 100) and the tests
FULL = UniverseSpec()


@dataclass
class Universe:
    """Gathered vectors: ``X`` (universe, in universe order), ``labels``, ``ids``, ``candidates``
    (positions in the universe), ``altered[condition]`` (vectors of the altered candidates)."""

    spec: UniverseSpec
    encoder: str
    X: np.ndarray
    labels: np.ndarray
    ids: list[str]
    candidates: np.ndarray
    altered: dict[str, np.ndarray] = field(default_factory=dict)
    info: dict = field(default_factory=dict)


def universe_positions(spec: UniverseSpec, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(positions in the training split, candidate positions in the universe)``: class by class."""
    rng = np.random.default_rng(spec.seed)
    positions = [rng.permutation(np.flatnonzero(labels == c))[: spec.per_class] for c in range(10)]
    candidates = [c * spec.per_class + np.arange(spec.candidates_per_class) for c in range(10)]
    return np.concatenate(positions), np.concatenate(candidates)


def gathered_path(spec: UniverseSpec, encoder: str) -> Path:
    return ROOT / f"universe-{encoder}-{spec.tag}.npz"


def _embed(source, encoder, progress: bool, threads: int) -> np.ndarray:
    result = embed_source(source, encoder, cache_dir=EMBED_CACHE, precision="fp32", device="cpu",
                          num_threads=threads, num_workers=0, batch_size=16, progress=progress)
    if len(result.sample_ids) != len(source):
        raise RuntimeError(f"{len(result.failures)} of {len(source)} images failed to embed; see {result.cache_path}")
    return np.asarray(result.vectors, dtype=np.float32)


def embed_universe(spec: UniverseSpec, encoder_name: str, progress: bool = True, threads: int = 1) -> Path:
    """Embed the universe and every condition's candidates with ``encoder_name``; gather them atomically."""
    target = gathered_path(spec, encoder_name)
    if target.exists():
        return target
    started = time.perf_counter()
    split = FashionMNISTSource(split="train")
    positions, candidates = universe_positions(spec, split.labels)
    encoder = get_encoder(encoder_name)
    clean = SubsetSource(split, positions)
    if progress:
        print(f"[{encoder_name}] universe: {len(clean):,} clean images", flush=True)
    X = _embed(clean, encoder, progress, threads)
    altered = {}
    candidate_source = SubsetSource(split, positions[candidates])
    for name in spec.conditions:
        if progress:
            print(f"[{encoder_name}] condition {name}: {len(candidates)} altered candidates", flush=True)
        source = ConditionSource(candidate_source, np.ones(len(candidates), bool), name,
                                 strength=spec.strengths()[name], seed=spec.condition_seed)
        altered[name] = _embed(source, encoder, progress, threads)
    info = {"encoder": encoder_name, "encoder_key": encoder.cache_key(), "precision": "fp32",
            "spec": {**spec.__dict__, "conditions": list(spec.conditions)}, "strengths": spec.strengths(),
            "seconds": round(time.perf_counter() - started, 1), "n_images": len(X) + len(candidates) * len(altered)}
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, X=X, labels=split.labels[positions], ids=np.array(clean.sample_ids),
                     candidates=candidates, info=np.array(json.dumps(info, default=str)),
                     **{f"altered/{name}": vectors for name, vectors in altered.items()})
    if progress:
        print(f"[{encoder_name}] gathered into {target} ({info['seconds']} s)", flush=True)
    return target


def load_universe(spec: UniverseSpec, encoder_name: str) -> Universe:
    """The gathered vectors; a clear error when the embed step has not run."""
    path = gathered_path(spec, encoder_name)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run `bench_rarity.py embed --encoders {encoder_name}` first")
    with np.load(path) as data:
        altered = {key.split("/", 1)[1]: data[key] for key in data.files if key.startswith("altered/")}
        return Universe(spec, encoder_name, data["X"], data["labels"], [str(i) for i in data["ids"]],
                        data["candidates"], altered, json.loads(str(data["info"])))


# ------------------------------------------------------------------------------------------ tasks
@dataclass(frozen=True)
class Task:
    """One planted rare subpopulation: ``kind`` 'classes' (the last ``n_rare_classes`` of a seeded
    class order) or 'condition' (altered candidates), at ``prevalence`` of the pool."""

    kind: str
    prevalence: float
    condition: str | None = None
    n_rare_classes: int = 3

    @property
    def name(self) -> str:
        what = "rare-classes" if self.kind == "classes" else self.condition
        return f"{what}@{self.prevalence * 100:g}%"


def all_tasks(conditions=DRIVING_CONDITIONS, class_prevalences=(0.005, 0.015, 0.03),
              condition_prevalences=(0.01, 0.03)) -> list[Task]:
    tasks = [Task("classes", p) for p in class_prevalences]
    return tasks + [Task("condition", p, c) for c in conditions for p in condition_prevalences]


def draw_pool(universe: Universe, task: Task, seed: int, n: int) -> dict:
    """One seed's pool: ``X`` (n, D) float32, ``rare`` (n,) bool, ``labels``, ``source`` (universe
    position, or -1 - candidate index for an altered copy), in a seeded row order."""
    rng = np.random.default_rng([seed, zlib_name(task.name)])
    labels = universe.labels
    n_rare = max(1, int(round(task.prevalence * n)))
    if task.kind == "classes":
        order = rng.permutation(10)
        rare_classes = order[-task.n_rare_classes:]
        common = order[: -task.n_rare_classes]
        rare_counts = np.full(task.n_rare_classes, n_rare // task.n_rare_classes)
        rare_counts[: n_rare % task.n_rare_classes] += 1
        common_counts = np.full(len(common), (n - n_rare) // len(common))
        common_counts[: (n - n_rare) % len(common)] += 1
        picks = [rng.choice(np.flatnonzero(labels == c), k, replace=False)
                 for c, k in zip(list(rare_classes) + list(common), list(rare_counts) + list(common_counts))]
        source = np.concatenate(picks)
        rare = np.isin(labels[source], rare_classes)
        X = universe.X[source]
        extra = {"rare_classes": sorted(int(c) for c in rare_classes)}
    else:
        altered = universe.altered[task.condition]
        chosen = rng.choice(len(universe.candidates), n_rare, replace=False)
        excluded = np.zeros(len(labels), bool)
        excluded[universe.candidates[chosen]] = True
        counts = np.full(10, (n - n_rare) // 10)
        counts[rng.permutation(10)[: (n - n_rare) % 10]] += 1
        clean = np.concatenate([rng.choice(np.flatnonzero((labels == c) & ~excluded), k, replace=False)
                                for c, k in enumerate(counts)])
        X = np.concatenate([altered[chosen], universe.X[clean]])
        source = np.concatenate([-1 - chosen, clean])
        rare = np.concatenate([np.ones(n_rare, bool), np.zeros(len(clean), bool)])
        labels_pool = np.concatenate([labels[universe.candidates[chosen]], labels[clean]])
        extra = {"condition": task.condition}
    order = rng.permutation(len(source))
    pool_labels = labels[source] if task.kind == "classes" else labels_pool
    return {"X": np.ascontiguousarray(X[order], dtype=np.float32), "rare": rare[order], "labels": pool_labels[order],
            "source": source[order], "n_rare": int(rare.sum()), **extra}


def zlib_name(text: str) -> int:
    import zlib

    return zlib.crc32(text.encode("utf-8"))
