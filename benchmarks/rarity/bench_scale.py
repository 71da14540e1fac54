"""How long the rarity signals take as N grows, up to the whole of Fashion-MNIST (N = 70,000).

    .venv/bin/python benchmarks/rarity/bench_scale.py                      # embeds 70,000 images once (cached)
    .venv/bin/python benchmarks/rarity/bench_scale.py --sizes 2000 5000    # a quick look
    .venv/bin/python benchmarks/rarity/bench_scale.py --signals multi-granularity+lof knn-cosine
    .venv/bin/python benchmarks/rarity/bench_scale.py --vectors jittered     # no embedding: see below

The vectors are the default encoder's (EfficientNet-Lite0, fp32, one thread per process) for the
train and test splits of Fashion-MNIST, embedded once through ``embed_source``'s shard cache
(``data/interim/rarity-bench/embeddings``). Each signal is fitted on the first N rows of a seeded
permutation, in this process, one at a time, on one BLAS/OpenMP thread (the signals' own
setting), and timed with ``time.perf_counter``. Also measured at each N: the Spearman between the
signal fitted on the rows as drawn and on the rows reversed (the row-order effect), and for the
multi-granularity signals at N above ``MAX_TREE_POINTS``, against the exact tree where N allows
(``--exact-up-to``). ``--vectors jittered`` skips the 70,000-image embedding (about 10 minutes on 2
idle cores, hours on a loaded machine): the rarity benchmark's 11,200 real Lite0 vectors (its universe,
embedded by ``bench_rarity.py embed``), each repeated with Gaussian jitter at 30% of the median
nearest-neighbour distance per coordinate scale, up to the largest N: the same dimension and a
realistic spread, for timing only (its likelihoods say nothing about rarity). Results: ``results/scale-<UTC stamp>.json`` and ``.md`` with machine, load
and date.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import universe as U  # noqa: E402
from _host import cpu_model  # noqa: E402

from deqlib._atomic import write_text_atomic  # noqa: E402

DEFAULT_SIZES = (5000, 20000, 70000)
DEFAULT_SIGNALS = ("multi-granularity+lof", "multi-granularity", "knn-cosine", "lof", "knn-density")


def all_vectors(threads: int) -> np.ndarray:
    """Lite0 vectors of the 70,000 Fashion-MNIST images (train then test), cached as one .npz."""
    from deqlib.embed import embed_source, get_encoder
    from deqlib.sources import FashionMNISTSource

    target = U.ROOT / "fashion-mnist-70k-efficientnet-lite0.npz"
    if target.exists():
        return np.load(target)["X"]
    parts = []
    for split in ("train", "test"):
        source = FashionMNISTSource(split=split)
        result = embed_source(source, get_encoder("efficientnet-lite0"), cache_dir=U.EMBED_CACHE, precision="fp32",
                              device="cpu", num_threads=threads, num_workers=0, batch_size=32, progress=True)
        if len(result.sample_ids) != len(source):
            raise RuntimeError(f"{len(result.failures)} of {len(source)} images failed to embed")
        parts.append(np.asarray(result.vectors, dtype=np.float32))
    X = np.vstack(parts)
    from deqlib._atomic import atomic_path

    with atomic_path(target) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, X=X)
    return X


def jittered_vectors(n: int, seed: int = 0) -> np.ndarray:
    """The benchmark universe's real vectors, repeated with jitter up to ``n`` rows (timing only)."""
    from sklearn.neighbors import NearestNeighbors

    base = np.load(U.gathered_path(U.FULL, "efficientnet-lite0"))
    X = np.vstack([base["X"]] + [base[k] for k in base.files if k.startswith("altered/")]).astype(np.float32)
    rng = np.random.default_rng(seed)
    distance = np.median(NearestNeighbors(n_neighbors=2).fit(X[:2000]).kneighbors(X[:2000])[0][:, 1])
    scale = 0.3 * distance / np.sqrt(X.shape[1])
    rows = [X] + [X + rng.normal(0.0, scale, X.shape).astype(np.float32) for _ in range(n // len(X))]
    return np.vstack(rows)[:n]


def fit_seconds(name: str, X: np.ndarray) -> tuple[np.ndarray, float]:
    from deqlib.likelihood import RarityContext, get_rarity_signal

    started = time.perf_counter()
    likelihood = get_rarity_signal(name).fit(RarityContext(embeddings=X)).likelihood_
    return likelihood, time.perf_counter() - started


def main(argv=None) -> None:
    from scipy.stats import spearmanr

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--signals", nargs="+", default=list(DEFAULT_SIGNALS))
    parser.add_argument("--row-order-up-to", type=int, default=20000,
                        help="also fit on the reversed rows (the row-order Spearman) up to this N")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the one-off embedding")
    parser.add_argument("--vectors", choices=("fashion-mnist", "jittered"), default="fashion-mnist",
                        help="the 70,000 real images (embedded once) or the universe's vectors jittered (timing only)")
    args = parser.parse_args(argv)

    X_all = all_vectors(args.threads) if args.vectors == "fashion-mnist" else jittered_vectors(max(args.sizes))
    order = np.random.default_rng(0).permutation(len(X_all))
    rows = []
    for n in args.sizes:
        X = X_all[order[:n]]
        for name in args.signals:
            likelihood, seconds = fit_seconds(name, X)
            row = {"signal": name, "n": n, "seconds": round(seconds, 2),
                   "distinct_levels": int(np.unique(likelihood).size), "load_average": list(os.getloadavg())}
            if n <= args.row_order_up_to:
                reversed_likelihood, _ = fit_seconds(name, X[::-1])
                row["spearman_row_order"] = float(spearmanr(likelihood, reversed_likelihood[::-1]).statistic)
            rows.append(row)
            print(json.dumps(row), flush=True)

    import platform

    stamp = dt.datetime.now(dt.timezone.utc)
    info = {"date": stamp.strftime("%Y-%m-%d %H:%M UTC"), "cpu": cpu_model(), "cores": os.cpu_count(),
            "python": platform.python_version(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "data": ("Fashion-MNIST train+test, EfficientNet-Lite0 fp32 vectors, first N of a seed-0 permutation"
                     if args.vectors == "fashion-mnist" else "the rarity benchmark's 11,200 real Lite0 vectors, "
                     "repeated with Gaussian jitter (30% of the median 1-NN distance) up to N; first N of a "
                     "seed-0 permutation; timing only")}
    out = HERE / "results" / f"scale-{args.vectors}-{stamp.strftime('%Y%m%dT%H%M%SZ')}"
    write_text_atomic(out.with_suffix(".json"), json.dumps({"run": info, "rows": rows}, indent=1))
    lines = [f"# Rarity signals at scale ({info['date']}, {info['cpu']}, {info['cores']} cores)", "",
             f"Data: {info['data']}. One process, one thread per signal (OMP_NUM_THREADS={info['omp_num_threads']}); "
             "the load average is the machine's at the end of each fit.", "",
             "| signal | N | seconds | distinct levels | Spearman, rows reversed | load |", "|---|---|---|---|---|---|"]
    for row in rows:
        spearman = f"{row['spearman_row_order']:.4f}" if "spearman_row_order" in row else "-"
        lines.append(f"| {row['signal']} | {row['n']:,} | {row['seconds']:.1f} | {row['distinct_levels']:,} | "
                     f"{spearman} | {row['load_average'][0]:.1f} |")
    write_text_atomic(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print(f"wrote {out}.json and .md")


if __name__ == "__main__":
    main()
