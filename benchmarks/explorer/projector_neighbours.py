"""How well the Projector export's tensors keep the real embedding space's neighbours.

EfficientNet-Lite0 vectors (1280-d, float32, CPU) of N Fashion-MNIST training images (seeded, class-stratified);
for each tensor the projector could be given (a PCA to k dimensions with ``deqlib.export.projector.pca_project``,
or the run's 3-D t-SNE map from ``OpenTSNEReducer`` defaults), the mean share of each image's 10 nearest
neighbours (Euclidean) that are also its 10 nearest in the full 1280-d space, and the share of variance kept.
The embedding cache goes to a temporary folder unless ``--cache`` is given. Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/explorer/projector_neighbours.py --images 2000
"""

import argparse
import json
import os
import platform
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks/_host.py
from _host import cpu_model  # noqa: E402


def overlap(reference: np.ndarray, points: np.ndarray, k: int = 10) -> float:
    from sklearn.neighbors import NearestNeighbors

    near = NearestNeighbors(n_neighbors=k + 1).fit(points).kneighbors(points, return_distance=False)[:, 1:]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(reference, near)]))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--dims", type=int, nargs="+", default=[3, 50, 100, 200])
    parser.add_argument("--cache", default=None)
    args = parser.parse_args()
    import torch
    from sklearn.neighbors import NearestNeighbors

    from deqlib.embed import embed_source
    from deqlib.export.projector import pca_project
    from deqlib.reduce import OpenTSNEReducer
    from deqlib.sources import open_source

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        source = open_source("fashion-mnist", split="train", max_images=args.images, seed=0)
        vectors = embed_source(source, "efficientnet-lite0", cache_dir=args.cache or tmp, precision="fp32",
                               device="cpu", progress=False).vectors
    X = vectors.astype(np.float64)
    reference = NearestNeighbors(n_neighbors=11).fit(X).kneighbors(X, return_distance=False)[:, 1:]
    rows = []
    for dims in args.dims:
        projected, kept = pca_project(X, dims)
        rows.append({"tensor": f"PCA-{dims}", "variance_kept": round(kept, 3),
                     "knn10_overlap": round(overlap(reference, projected), 3)})
        print(rows[-1], flush=True)
    tsne = OpenTSNEReducer(n_jobs=1).fit_transform(vectors)
    rows.append({"tensor": "t-SNE 3-D map (OpenTSNEReducer defaults)", "knn10_overlap": round(overlap(reference, tsne), 3)})
    print(rows[-1])
    record = {"machine": {"platform": platform.platform(), "cores": os.cpu_count(), "cpu": cpu_model()},
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "load_average": os.getloadavg(),
              "data": f"{args.images} Fashion-MNIST training images (seed 0), EfficientNet-Lite0 fp32, 1280-d",
              "rows": rows}
    out = Path(__file__).parent / "results" / f"projector-neighbours-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(record, indent=1))
    print(out)


if __name__ == "__main__":
    main()
