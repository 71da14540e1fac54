"""Do the analysis paths give bit-identical results at another revision of deqlib? (issue 11's refactor check)

    .venv/bin/python benchmarks/analysis/check_default_path_unchanged.py [--base 5fc3158]

Exports ``deqlib/`` of ``--base`` (git archive) to a temporary folder and runs the same script under
it and under this working tree, each in its own process with ``OMP_NUM_THREADS=1``, on 1,270 seeded
64-D blob vectors (8 blobs of 20-400): ``analyze`` default, ``preset='kitti'``, reference mode,
notebook 00's and 02's stage calls (``get_reducer``/``get_clusterer``, seed 0) and ``deq analyze``
(default with ``--seed 33``, its default before issue 19, and hdbscan with ``--seed 5``). Prints, per path, whether coordinates, labels,
likelihoods and weights (and the CLI's bank tables) are identical, and the bank parameters that
differ. Exit status 1 if any result differs. Not a speed measurement.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

RUN = r'''
import sys, warnings
from pathlib import Path
import numpy as np
warnings.simplefilter("ignore")
import deqlib
from deqlib.cli import main
from deqlib.cluster import get_clusterer
from deqlib.pipeline import analyze
from deqlib.reduce import get_reducer
out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)
centers = rng.normal(scale=6, size=(8, 64))
sizes = [400, 300, 200, 150, 100, 60, 40, 20]
X = np.vstack([c + rng.normal(size=(n, 64)) for c, n in zip(centers, sizes)]).astype(np.float32)
ids = [f"s{i}" for i in range(len(X))]
runs = {
    "default": dict(), "kitti": dict(preset="kitti"), "reference": dict(mode="reference", preset="waymo"),
    "notebook00": dict(reducer=get_reducer("opentsne", perplexity=30.0, random_state=0), seed=0,
                       clusterer=get_clusterer("hdbscan", preset=None, eps=None, min_samples=10, min_cluster_size=25)),
    "notebook02": dict(reducer=get_reducer("opentsne", perplexity=30.0, random_state=0), preset="kitti", seed=0,
                       clusterer=get_clusterer("dbscan", preset="kitti", eps=None, min_samples=None,
                                               min_cluster_size=None)),
}
import inspect
STAGE_KEYWORDS = ("mode", "reducer", "clusterer", "noise_policy", "preset", "seed", "eta", "gamma")
def run_analysis(**kw):
    # since issue 18 the parts, mode and seed are build_stages' (analyze takes stages=); before, analyze's keywords
    if "stages" in inspect.signature(analyze).parameters and "mode" not in inspect.signature(analyze).parameters:
        from deqlib.stages import build_stages
        stages = build_stages(**{k: kw.pop(k) for k in STAGE_KEYWORDS if k in kw})
        return analyze(embeddings=X, sample_ids=ids, cache=False, stages=stages, **kw)
    return analyze(embeddings=X, sample_ids=ids, cache=False, **kw)
for name, kw in runs.items():
    s = run_analysis(**kw).samples
    np.savez(out / f"{name}.npz", coords=s[["x", "y", "z"]].to_numpy(), labels=s["raw_cluster_id"].to_numpy(),
             likelihood=s["likelihood"].to_numpy(), weight=s["weight"].to_numpy())
np.savez(out / "emb.npz", vectors=X, sample_ids=np.array(ids))
common = ["analyze", "--embeddings", str(out / "emb.npz"), "--no-cache", "--no-progress"]
# --seed 33: the CLI's default before issue 19 (now 0, as the notebooks'), so both sides run the same analysis
main([*common, "--output", str(out / "cli.parquet"), "--seed", "33"])
main([*common, "--output", str(out / "cli_hdb.parquet"), "--clusterer", "hdbscan", "--min-cluster-size", "15",
      "--seed", "5"])
'''


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="5fc3158", help="git revision to compare with (default: before issue 11)")
    args = parser.parse_args()
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "base").mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.base, "deqlib"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp / "base")], input=archive, check=True)
        for name, code_root in (("base", tmp / "base"), ("new", ROOT)):
            env = {**os.environ, "PYTHONPATH": str(code_root), "OMP_NUM_THREADS": "1"}
            # cwd outside both trees: `python -c` puts the working directory first on sys.path
            done = subprocess.run([sys.executable, "-c", RUN + "\nprint(deqlib.__file__)", str(tmp / name / "out")],
                                  env=env, check=True, capture_output=True, text=True, cwd=tmp)
            print(f"{name}: {done.stdout.strip().splitlines()[-1]}")
        from deqlib.bank import read_bank

        same = True
        for name in ("default", "kitti", "reference", "notebook00", "notebook02"):
            a, b = (np.load(tmp / side / "out" / f"{name}.npz") for side in ("base", "new"))
            equal = all(np.array_equal(a[k], b[k]) for k in a.files)
            same &= equal
            print(f"analyze {name}: {'identical' if equal else 'DIFFERENT'}")
        for name in ("cli", "cli_hdb"):
            a, b = (read_bank(tmp / side / "out" / f"{name}.parquet") for side in ("base", "new"))
            equal = a.table.equals(b.table)
            same &= equal
            ka, kb = a.metadata["cluster"], b.metadata["cluster"]
            changed = {k: (ka.get(k), kb.get(k)) for k in sorted(set(ka) | set(kb))
                       if k != "key" and ka.get(k) != kb.get(k)}
            print(f"deq analyze {name}: bank table {'identical' if equal else 'DIFFERENT'}; "
                  f"cluster params changed: {changed}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
