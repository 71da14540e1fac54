#!/bin/bash
# Re-run all the issue-10 cases (docs/robustness.md) with real `deq` commands: the cache/embedding/CLI
# cases here, then the shard race and the pickle/bank/loader cases (rerun_bank_loader_cases.py).
#   bash benchmarks/robustness/rerun_cases.sh CLONE WORKDIR
# CLONE: a checkout with .venv (e.g. a fresh `git clone` with a `.venv` made by `bash workbook.sh setup` or linked from another checkout); WORKDIR is
# wiped. Needs root for the tmpfs mounts (full and read-only disks). Not part of the test suite:
# tests/test_faults_cache.py keeps the same cases with injected faults.
set -u
CLONE=$1; W=$2
rm -rf $W; mkdir -p $W; cd $W
export PYTHONPATH=$CLONE OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
PY=$CLONE/.venv/bin/python
DEQ="$PY -m deqlib.cli"
E="--workers 0 --threads 1 --device cpu --precision fp32 --no-progress"
say() { echo; echo "=== $*"; }
$PY - <<'PY'
import numpy as np, os
from PIL import Image
rng = np.random.default_rng(0)
for d, n in (("imgs", 5), ("many", 24)):
    os.makedirs(d, exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(f"{d}/img{i:02d}.png")
os.makedirs("latin", exist_ok=True)
for i, raw in enumerate([b"caf\xe9.png", b"plain.png"]):
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(os.path.join(b"latin", raw), format="PNG")
import timm, torch
torch.manual_seed(0)
torch.save(timm.create_model("efficientnet_lite0", num_classes=1000).state_dict(), "mymodel.ckpt")
c = rng.normal(size=(10, 64)) * 5
X = (c[rng.integers(0, 10, 1000)] + rng.normal(size=(1000, 64))).astype(np.float32)
np.savez("vectors.npz", vectors=X, sample_ids=np.asarray([f"s{i}" for i in range(1000)]))
PY
say "2 weights: default run, then --weights mymodel.ckpt"
$DEQ embed --source folder --root imgs --output out $E 2>&1 | tail -1
$DEQ embed --source folder --root imgs --output out $E --weights mymodel.ckpt 2>&1 | tail -2; echo "rc=$?"
say "3 image replaced in place (img02.png), same command again"
$PY -c "
from PIL import Image; Image.new('RGB', (32, 32), (200, 10, 10)).save('imgs/img02.png')
import os; s = os.stat('imgs/img02.png'); os.utime('imgs/img02.png', ns=(s.st_atime_ns, s.st_mtime_ns + 5_000_000_000))"
$DEQ embed --source folder --root imgs --output out $E 2>&1 | tail -1
say "7 non-UTF-8 file name (caf\\xe9.png): twice"
for k in 1 2; do $DEQ embed --source folder --root latin --output out $E 2>&1 | tail -2 | cut -c1-300; echo "rc=${PIPESTATUS[0]}"; done
say "9a truncated shard"
$DEQ embed --source folder --root many --output out $E --shard-size 4 2>&1 | tail -1
rm -rf sh; $DEQ embed --source folder --root many --output sh $E --shard-size 4 > /dev/null 2>&1
S=$(ls sh/*/*/shards/*.npz | head -n 3 | tail -n 1 ); head -c 3000 $S > t && mv t $S
$DEQ embed --source folder --root many --output sh $E --shard-size 4 2>&1 | tail -2 | cut -c1-400; echo "rc=${PIPESTATUS[0]}"
say "9b damaged t-SNE cache (emptied), deq analyze again"
A="analyze --embeddings vectors.npz --cache-dir acache --no-progress --output bank.parquet"
$DEQ $A > /dev/null 2>&1; echo "first rc=$?"
for f in acache/reduce/*.npz; do : > $f; done
$DEQ $A 2>&1 | grep -v "^likelihood\|^time per\|^alignment\|clusters, noise" | cut -c1-300; echo "rc=${PIPESTATUS[0]}"
say "9c read-only cache (tmpfs remounted ro): fully cached, then one new image"
mkdir -p ro; mount -t tmpfs -o size=8m tmpfs ro
$DEQ embed --source folder --root imgs --output ro $E 2>&1 | tail -1
mount -o remount,ro ro
$DEQ embed --source folder --root imgs --output ro $E 2>&1 | tail -2 | cut -c1-300; echo "rc=${PIPESTATUS[0]}"
cp imgs/img00.png imgs/img99.png
$DEQ embed --source folder --root imgs --output ro $E 2>&1 | tail -2 | cut -c1-400; echo "rc=${PIPESTATUS[0]}"
rm imgs/img99.png; umount ro
say "11 disk full (tmpfs 64k), then the disk grows to 8m and the same command resumes"
mkdir -p full; mount -t tmpfs -o size=64k tmpfs full
$DEQ embed --source folder --root many --output full $E --shard-size 4 2>&1 | tail -2 | cut -c1-400; echo "rc=${PIPESTATUS[0]}"
mount -o remount,size=8m full
$DEQ embed --source folder --root many --output full $E --shard-size 4 2>&1 | tail -1; echo "rc=$?"
$PY - <<'PY'
import glob, numpy as np
from deqlib.embed import embed_source
from deqlib.sources import open_source
kw = dict(device="cpu", precision="fp32", num_workers=0, num_threads=1, progress=False, shard_size=4)
a = embed_source(open_source("folder", root="many"), "efficientnet-lite0", cache_dir="full", **kw)
b = embed_source(open_source("folder", root="many"), "efficientnet-lite0", cache_dir="clean", **kw)
print("resumed after disk full == clean run, byte for byte:", a.stats["n_embedded"] == 0 and a.vectors.tobytes() == b.vectors.tobytes())
PY
umount full
say "11 --output pointing at a folder (deq analyze)"
mkdir -p banks; $DEQ analyze --embeddings vectors.npz --cache-dir acache --no-progress --output banks 2>&1 | tail -2 | cut -c1-300; echo "rc=${PIPESTATUS[0]}"
say "11 Ctrl-C mid-run (SIGINT after the first shard), then the same command"
rm -rf ci; $PY - <<'PY'
import glob, signal, subprocess, sys, time
cmd = [sys.executable, "-m", "deqlib.cli", "embed", "--source", "folder", "--root", "many", "--output", "ci",
       "--workers", "0", "--threads", "1", "--device", "cpu", "--precision", "fp32", "--no-progress",
       "--shard-size", "4", "--batch-size", "4"]
p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
while not glob.glob("ci/*/*/shards/*.npz"):
    time.sleep(0.02)
p.send_signal(signal.SIGINT)
out, err = p.communicate()
print("rc", p.returncode, "shards", len(glob.glob("ci/*/*/shards/*.npz")))
print("\n".join(err.strip().splitlines()[-3:])[:600])
PY
$DEQ embed --source folder --root many --output ci $E --shard-size 4 --batch-size 4 2>&1 | tail -1
say "4 thread count: deq analyze --no-cache with OMP_NUM_THREADS=1 and =2, 2,000 clustered 256-d vectors"
$PY -c "
import numpy as np
rng = np.random.default_rng(0)
c = rng.normal(size=(10, 256)) * 3
X = (c[rng.integers(0, 10, 2000)] + rng.normal(size=(2000, 256))).astype(np.float32)
np.savez('vectors2k.npz', vectors=X, sample_ids=np.asarray([f's{i}' for i in range(2000)]))"
for t in 1 2; do OMP_NUM_THREADS=$t $DEQ analyze --embeddings vectors2k.npz --no-cache --no-progress --output t$t.parquet > /dev/null 2>&1; done
$PY -c "
import pandas as pd, numpy as np
a, b = pd.read_parquet('t1.parquet'), pd.read_parquet('t2.parquet')
print('likelihoods changed by the thread count:', int((a.likelihood != b.likelihood).sum()), 'of', len(a),
      '; max coordinate difference', float(np.abs(a[['x','y','z']].to_numpy() - b[['x','y','z']].to_numpy()).max()))"
say "1, 5-8, 10-18: the shard race and the pickle / bank / loader / degenerate-data cases"
$PY $CLONE/benchmarks/robustness/rerun_bank_loader_cases.py $CLONE $W/bank-loader
