"""How much two full openTSNE fits that differ only in the seed agree (a yardstick for ARI values).

    .venv/bin/python benchmarks/analysis/seed_agreement.py [--data effnet] [--n 20000]

Clusters both maps with the settings of bench_subsample.py's comparison (DBSCAN 3.0 x d9,
HDBSCAN min_cluster_size 25: the best of the grid on the full fit) and reports the ARI.
"""

from __future__ import annotations

import argparse

from sklearn.metrics import adjusted_rand_score

from common import load_embeddings, machine, write_result
from deqlib.cluster import DBSCANClusterer, HDBSCANClusterer
from deqlib.reduce import OpenTSNEReducer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=("effnet", "pixels"), default="effnet")
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    vectors, _ = load_embeddings(args.data, args.n)
    maps = {seed: OpenTSNEReducer(random_state=seed).fit_transform(vectors) for seed in (33, 34)}
    out = {}
    for name, clusterer in (("dbscan_3.0xd9", DBSCANClusterer(eps=3.0, min_samples=10, eps_scale="knn")),
                            ("hdbscan_mcs25", HDBSCANClusterer(min_cluster_size=25))):
        a, b = (clusterer.fit(maps[s]).labels_ for s in (33, 34))
        out[name] = adjusted_rand_score(a, b)
    print(out)
    write_result(f"seed_agreement-{args.data}-{args.n}", {"machine": machine(), "n": args.n, "ari_seed33_vs_34": out})


if __name__ == "__main__":
    main()
