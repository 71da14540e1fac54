"""Re-run the issue-10 pickle / bank / loader / degenerate-data cases (5, 6, 7 via analyze, 8, 10-18)
and the shard race (1) as a careless or hostile user would: real ``deq`` commands where the issue
used them, each in its own process with a time limit, so a crash (negative exit code) or a hang
(past the limit) shows as such. Prints one verdict line per case and exits 1 if any case is wrong.

    python benchmarks/robustness/rerun_bank_loader_cases.py CLONE WORKDIR

CLONE: a checkout with .venv; WORKDIR is wiped. The hostile pickles and dataset layouts are the
test suite's own builders (tests/test_faults_pickle.py, tests/layouts.py). Run by
benchmarks/robustness/rerun_cases.sh after the cache cases.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

CLONE, WORK = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
sys.path.insert(0, str(CLONE / "tests"))
shutil.rmtree(WORK, ignore_errors=True)
WORK.mkdir(parents=True)
os.chdir(WORK)
ENV = {**os.environ, "PYTHONPATH": str(CLONE), "DEQ_DATA_DIR": str(WORK / "data"), "OMP_NUM_THREADS": "2"}
PY = str(CLONE / ".venv" / "bin" / "python")
EMBED = ["--device", "cpu", "--precision", "fp32", "--no-progress"]
FAILED: list[str] = []


def run(args, timeout=300):
    started = time.perf_counter()
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=ENV, cwd=WORK)
        return done.returncode, done.stdout + done.stderr, time.perf_counter() - started
    except subprocess.TimeoutExpired:
        return "HANG", "", time.perf_counter() - started


def deq(*args, timeout=300):
    return run([PY, "-m", "deqlib.cli", *map(str, args)], timeout)


def python(code, timeout=120):
    return run([PY, "-c", textwrap.dedent(code)], timeout)


def case(name, result, ok, *needles):
    """``ok``: the exit codes that are right; every needle must be in the output (file and fix)."""
    rc, out, seconds = result
    good = rc in ok and all(n in out for n in needles)
    line = next((l for l in reversed(out.strip().splitlines()) if l.strip() and "Warning" not in l[:40]), "")
    print(f"{'OK  ' if good else 'BAD '} {name} | rc={rc} | {seconds:.1f}s | {line.strip()[:230]}", flush=True)
    if not good:
        FAILED.append(name)
        print("     missing:", [n for n in needles if n not in out], "| tail:", out.strip()[-600:], flush=True)


import numpy as np  # noqa: E402
from layouts import (make_bdd100k_tree, make_folder_tree, make_kitti_tree, make_nuscenes_tree,  # noqa: E402
                     make_waymo_parquet_tree)
from test_faults_pickle import CONFUSED, _deep, _entry, _hash_bomb, _list_bomb, _scalar  # noqa: E402

# ---- 1: shard race, 4 concurrent writers/readers for 5 s (tests/faultkit.py's stress loop)
procs = [subprocess.Popen([PY, "-c", f"import sys; sys.path.insert(0, {str(CLONE / 'tests')!r}); import faultkit; "
                                     f"sys.exit(faultkit.stress('race', 5.0, {s}, processes=4))"],
                          env=ENV, cwd=WORK, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
         for s in range(4)]
outs = [p.communicate(timeout=300)[0] for p in procs]
case("1 shard race: 4 processes, 5 s", (max(p.returncode for p in procs), " ".join(o.strip().splitlines()[-1] for o in outs), 5),
     {0}, " 0 wrong")

# ---- 5: crafted numpy scalars, each in a fresh interpreter (the old reader segfaulted)
for name, (opcodes, why) in [*CONFUSED.items(), ("object_pointer", (_scalar("O8", b"\x41" * 8), "O8"))]:
    Path(f"{name}.pkl").write_bytes(_entry(opcodes))
    case(f"5 crafted scalar {name}", python(f"""
        from deqlib.bank import import_official_pickle
        import_official_pickle('{name}.pkl')"""), {1}, "UnsafePickleError", f"{name}.pkl", why)
labels = np.array([0, 0, 1, -1, 0])
official = {f"{i:06d}": {"cluster_id": labels[i], "cluster_size": np.sum(labels == labels[i]),
                         "largest_cluster_size": np.int64(3)} for i in range(5)}
Path("kitti_training_cluster_info.pkl").write_bytes(pickle.dumps(official))
case("5 official numpy pickle via load_bank and BankLookup", python("""
    from deqlib.training import BankLookup, load_bank
    bank = load_bank('kitti_training_cluster_info.pkl')
    print('likelihood', round(float(BankLookup(bank).likelihood('000002')[0]), 3))"""), {0}, "likelihood 0.333")

# ---- 6: bombs
for name, payload in (("list_bomb", _list_bomb(40)), ("hash_bomb", _hash_bomb(60)), ("deep", _deep(100_000))):
    Path(f"{name}.pkl").write_bytes(payload)
    case(f"6 {name} ({len(payload)} bytes)", python(f"""
        from deqlib.training import load_bank
        load_bank('{name}.pkl')""", timeout=30), {1}, "UnsafePickleError", f"{name}.pkl")

# ---- hostile weights file (torch.load must not run it; the refusal names the file)
python("""
    import os, torch
    class RunsCode:
        def __reduce__(self):
            return (os.system, ("touch RAN",))
    torch.save({"conv.weight": RunsCode()}, "evil.ckpt")""")
case("hostile weights file (deq embed --weights evil.ckpt)", deq(
    "embed", "--source", "folder", "--root", str(make_folder_tree(WORK / "few", per_class=1)), "--weights", "evil.ckpt",
    "--output", "emb", *EMBED), {2}, "evil.ckpt was refused", "state_dict")
if Path("RAN").exists():
    FAILED.append("hostile weights file ran code")

# ---- 11: wrong keys, broken metadata, integer ids, one string id
Path("wrong_keys.pkl").write_bytes(pickle.dumps({"000000": {"cluster": 1, "size": 2}}))
case("11 pickle entry with the wrong keys", python("""
    from deqlib.training import load_bank
    load_bank('wrong_keys.pkl')"""), {1}, "wrong_keys.pkl", "lacks")
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
table = pa.table({"sample_id": ["000001", "000002"], "cluster_id": [0, 1], "cluster_size": [1, 1], "largest_cluster_size": [1, 1],
                  "likelihood": [1.0, 1.0], "weight": [1.0, 1.0]})
pq.write_table(table.replace_schema_metadata({b"deqlib": b"{not json"}), "broken_meta.parquet")
case("11 bank with broken metadata JSON", python("""
    from deqlib.bank import read_bank
    read_bank('broken_meta.parquet')"""), {1}, "broken_meta.parquet")
pq.write_table(table.set_column(0, "sample_id", pa.array([1, 2])).replace_schema_metadata(
    {b"deqlib": json.dumps({"n_samples": 2}).encode()}), "int_ids.parquet")
case("11 bank with an integer sample_id column", python("""
    from deqlib.bank import read_bank
    read_bank('int_ids.parquet')"""), {1}, "int_ids.parquet", "leading zeros")
ids3 = {"012": {"cluster_id": 0, "cluster_size": 1, "largest_cluster_size": 1},
        **{c: {"cluster_id": 1, "cluster_size": 1, "largest_cluster_size": 1} for c in "012"}}
Path("ids3.pkl").write_bytes(pickle.dumps(ids3))
case("11 likelihood_of('012') is one id", python("""
    from deqlib.training import load_bank
    print('values', load_bank('ids3.pkl').likelihood_of('012').tolist())"""), {0}, "values [1.0]")

# ---- 13: Waymo integer keys
folder = Path("waymo_listing")
folder.mkdir()
for n in ("seg_b_2.jpg", "seg_a_1.jpg", "seg_c_3.jpg"):
    (folder / n).write_bytes(b"")
Path("waymo.pkl").write_bytes(pickle.dumps({np.int64(i): {"cluster_id": np.int64(i), "cluster_size": np.int64(s),
                                                          "largest_cluster_size": np.int64(3)}
                                            for i, s in enumerate([3, 1, 2])}))
case("13 Waymo integer keys, no listing", python("""
    from deqlib.training import load_bank
    load_bank('waymo.pkl')"""), {1}, "waymo.pkl", "key_listing")
case("13 Waymo integer keys with key_listing=folder (refused since issue 19, row 34)", python("""
    from deqlib.training import load_bank
    load_bank('waymo.pkl', key_listing='waymo_listing')"""), {1}, "waymo.pkl", "position alone", "record_key_listing")
case("13 Waymo integer keys through a recorded listing", python("""
    import os
    from deqlib.bank import record_key_listing
    from deqlib.training import load_bank
    record_key_listing('waymo_listing', 'listing.tsv')
    bank = load_bank('waymo.pkl', key_listing='listing.tsv', images='waymo_listing')
    names = [n.rsplit('.', 1)[0] for n in os.listdir('waymo_listing')]
    print('mapped', bank.table['sample_id'].tolist() == names)"""), {0}, "mapped True")

# ---- 8: degenerate data through deq analyze
ids = np.asarray([f"s{i}" for i in range(200)])
np.savez("identical.npz", vectors=np.ones((200, 16), np.float32), sample_ids=ids)
case("8 reference mode, 200 identical vectors", deq("analyze", "--embeddings", "identical.npz", "--mode", "reference",
                                                   "--no-cache", "--no-progress", "--output", "i.parquet"),
     {1, 2}, "same vector", "duplicates")
case("8 default mode, 200 identical vectors", deq("analyze", "--embeddings", "identical.npz", "--no-cache",
                                                 "--no-progress", "--output", "i.parquet"), {1, 2}, "same vector")
# ---- 17: ten samples, default eps_scale
rng = np.random.default_rng(0)
np.savez("ten.npz", vectors=rng.normal(size=(10, 8)).astype(np.float32), sample_ids=ids[:10])
case("17 ten samples, default eps_scale", deq("analyze", "--embeddings", "ten.npz", "--no-cache", "--no-progress",
                                             "--perplexity", "3", "--clusterer", "dbscan", "--eps", "1",
                                             "--min-samples", "2", "--output", "ten.parquet"), {1, 2}, "raw")

# ---- 10: folder walk and KITTI split entries
root = make_folder_tree(WORK / "imgs")
outside = WORK / "outside"
outside.mkdir()
shutil.copy(root / "cats" / "cats_0.png", outside / "extra.png")
(root / "linked").symlink_to(outside, target_is_directory=True)
(root / "cats" / "loop").symlink_to(root, target_is_directory=True)
(root / "x.jpg").mkdir()
shutil.copy(root / "cats" / "cats_0.png", root / "x.jpg" / "inner.png")
os.mkfifo(root / "pipe.jpg")
case("10 folder: symlinked folder, loop, folder x.jpg, named pipe (deq embed)",
     deq("embed", "--source", "folder", "--root", root, "--output", "emb", *EMBED, timeout=600),
     {0}, "symlink loop", "pipe.jpg", "14 now")
kitti = make_kitti_tree(WORK / "kitti", n_images=6)
split_file = next((kitti / "ImageSets").glob("train.txt"))
split_file.write_text(split_file.read_text() + "../../outside/extra\n")
case("10 KITTI split entry '../' (deq embed)", deq("embed", "--source", "kitti", "--root", kitti, "--split", "train",
                                                 "--output", "emb", *EMBED), {1, 2}, "train.txt", "../")

# ---- 12: undecodable image, official export
(root / "cats" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
analyze = ["analyze", "--source", "folder", "--root", root, *EMBED, "--perplexity", "3", "--min-samples", "2",
           "--output", "bank.parquet", "--export-official", "official.pkl"]
case("12 undecodable image, --export-official", deq(*analyze, timeout=600), {2}, "have no likelihood",
     "--missing rarest|median")
case("12 ... then --missing median", deq(*analyze, "--missing", "median", timeout=600), {0}, "official pickle written")
(root / "cats" / "broken.png").unlink()

# ---- 7: non-UTF-8 file name through deq analyze and the export
latin = make_folder_tree(WORK / "latin")
shutil.copy(latin / "cats" / "cats_0.png", os.path.join(os.fsencode(latin / "cats"), b"caf\xe9.png"))
case("7 non-UTF-8 name, deq analyze --export-official", deq(
    "analyze", "--source", "folder", "--root", latin, *EMBED, "--perplexity", "3", "--min-samples", "2",
    "--output", "latin.parquet", "--export-official", "latin.pkl", timeout=600), {0}, "official pickle written")
case("7 ... its id in the bank and the pickle", python("""
    import pickle
    from deqlib.bank import read_bank
    ids = set(read_bank('latin.parquet').table['sample_id'])
    print('escaped id in both', 'cats/caf\\\\xe9.png' in ids and ids == set(pickle.load(open('latin.pkl', 'rb'))))"""),
     {0}, "escaped id in both True")

# ---- 14: reference mode precision
case("14 --mode reference --precision bf16", deq("analyze", "--source", "folder", "--root", latin, "--mode",
                                                "reference", "--precision", "bf16", "--device", "cpu",
                                                "--no-progress", "--output", "r.parquet"), {1, 2}, "float32")

# ---- 15: nuScenes
mini = make_nuscenes_tree(WORK / "nuscenes")
case("15 nuScenes: only v1.0-mini present, no version given (deq embed)", deq(
    "embed", "--source", "nuscenes", "--root", mini, "--output", "emb", *EMBED), {0}, "8 samples")
case("15 nuScenes: unknown split 'validation'", deq("embed", "--source", "nuscenes", "--root", mini, "--split",
                                                   "validation", "--source-option", "version=v1.0-mini",
                                                   "--output", "emb", *EMBED), {1, 2}, "validation", "mini_train")
# ---- 18: source options from the CLI
case("18 --source-option version=v1.0-mini", deq("embed", "--source", "nuscenes", "--root", mini, "--split", "mini_train",
                                                "--source-option", "version=v1.0-mini", "--output", "emb", *EMBED,
                                                timeout=600), {0}, "now")
case("18 unknown --source-option", deq("embed", "--source", "nuscenes", "--root", mini, "--source-option", "verison=x",
                                      "--output", "emb", *EMBED), {1, 2}, "verison", "version")

# ---- 16: BDD100K labels
bdd = make_bdd100k_tree(WORK / "bdd", n_images=4, label_format=None)
case("16 BDD100K without labels", python(f"""
    import warnings
    from deqlib.sources import open_source
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        open_source('bdd100k', root={str(bdd)!r}, split='train')
    print([str(w.message) for w in caught])"""), {0}, "det_train.json", "labels_file")
bdd_val = make_bdd100k_tree(WORK / "bdd_val", n_images=4, split="val")
shutil.copytree(make_bdd100k_tree(WORK / "bdd_other", n_images=4, seed=1) / "images" / "100k" / "train",
                bdd_val / "images" / "100k" / "train")
for i, p in enumerate(sorted((bdd_val / "images" / "100k" / "train").iterdir())):
    p.rename(p.with_name(f"train{i:04d}.jpg"))
case("16 BDD100K with another split's labels (deq embed --source-option)", deq(
    "embed", "--source", "bdd100k", "--root", bdd_val, "--split", "train", "--source-option",
    f"labels_file={bdd_val / 'labels' / 'det_20' / 'det_val.json'}", "--output", "emb", *EMBED),
     {1, 2}, "det_val.json", "another split")

# ---- 17: Waymo Parquet camera names as text
wp = make_waymo_parquet_tree(WORK / "waymo", n_segments=1, frames=3)
for path in (wp / "training" / "camera_image").glob("*.parquet"):
    t = pq.read_table(path)
    names = {1: "FRONT", 2: "FRONT_LEFT", 3: "FRONT_RIGHT", 4: "SIDE_LEFT", 5: "SIDE_RIGHT"}
    i = t.schema.get_field_index("key.camera_name")
    pq.write_table(t.set_column(i, "key.camera_name", pa.array([names[v] for v in t["key.camera_name"].to_pylist()])), path)
case("17 Waymo Parquet key.camera_name as text (deq embed)", deq("embed", "--source", "waymo-parquet", "--root", wp,
                                                                "--output", "emb", *EMBED, timeout=600), {0}, "now")

print(f"\n{len(FAILED)} case(s) wrong: {FAILED}" if FAILED else "\nevery case: right result, or a refusal naming the file and the fix")
sys.exit(1 if FAILED else 0)
