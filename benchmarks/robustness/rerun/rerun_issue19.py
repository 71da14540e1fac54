"""Re-run issue 19's cases (and the runnable rows of docs/robustness.md) from outside, with real
``deq`` commands, as a user would. Prints one line per case:

    CASE | COMMAND | EXPECTED | OBSERVED | VERDICT

VERDICT is ``handled`` (right result, or a one-line refusal naming the file/fix), ``partly``
(right exit code and no silent wrong result, but the message lacks what it should name) or
``FAILED`` (a silent wrong result, a traceback, a crash or a hang). Ends with the counts and exits 1
if any case FAILED.

    nice -n 10 .venv/bin/python benchmarks/robustness/rerun/rerun_issue19.py [WORKDIR] [--only ID,ID]

WORKDIR (default /tmp/deq-rerun19) is wiped. Run from the repository root; ``deq`` is this
checkout's ``.venv/bin/deq``. Inputs are small (Fashion-MNIST from Debian's dataset-fashion-mnist:
at most a few hundred images; synthetic vectors: at most 2,000), so each case takes seconds. Root
is needed only for the read-only and full-disk cases (tmpfs mounts); without root they are skipped.
Fixture layouts (BDD100K, a folder tree) come from tests/layouts.py, the test suite's builders.
"""
from __future__ import annotations

import glob
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
_args = [a for a in sys.argv[1:]]
ONLY = set(_args.pop(_args.index("--only") + 1).split(",")) if "--only" in _args else None
_args = [a for a in _args if a != "--only"]
WORK = Path(_args[0] if _args else "/tmp/deq-rerun19").resolve()
DEQ = str(REPO / ".venv" / "bin" / "deq")
PY = str(REPO / ".venv" / "bin" / "python")
ENV = {**os.environ, "DEQ_DATA_DIR": str(WORK / "data"), "PYTHONPATH": str(REPO)}
ENV.pop("OMP_NUM_THREADS", None)
EMB = ["--device", "cpu", "--no-progress"]
COUNTS = {"handled": 0, "partly": 0, "FAILED": 0, "not run": 0}
ROWS: list[str] = []
sys.path.insert(0, str(REPO / "tests"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def run(cmd, timeout=300, cwd=None, env=None, **kw):
    """(rc, stdout+stderr, seconds); rc 'HANG' past the limit."""
    started = time.perf_counter()
    try:
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
                              cwd=cwd or WORK, env=env or ENV, **kw)
        return done.returncode, done.stdout, time.perf_counter() - started
    except subprocess.TimeoutExpired:
        return "HANG", "", time.perf_counter() - started


def deq(*args, timeout=300, cwd=None, env=None, prefix=()):
    return run([*prefix, DEQ, *map(str, args)], timeout=timeout, cwd=cwd, env=env)


def python(code, timeout=300):
    return run([PY, "-c", textwrap.dedent(code)], timeout=timeout)


def last_line(out: str) -> str:
    lines = [l.strip() for l in out.strip().splitlines() if l.strip()]
    return lines[-1] if lines else ""


def report(case, command, expected, observed, verdict):
    COUNTS[verdict] += 1
    row = f"{case} | {command} | {expected} | {observed} | {verdict}"
    ROWS.append(row)
    print(row, flush=True)


def wanted(case: str) -> bool:
    return ONLY is None or case in ONLY


def extra_lines(out: str) -> list[str]:
    """Lines of a refusal beyond deq's warnings and summaries: the error line itself and anything
    else (library chatter such as "INFO root: ...", a second message). A one-line refusal has 1."""
    return [l for l in out.strip().splitlines() if l.strip() and not l.startswith(("WARNING ", " "))
            and "Warning: " not in l and not (l.startswith("deq ") and ": error:" not in l)]


def check(case, command, expected, result, ok_rc, needles=(), one_line=False, extra_ok=True, extra_obs="",
          api=None):
    """The common verdict: right exit code, no traceback, no hang; needles all present (else partly).

    ``api``: a Python API call (not a ``deq`` command) expected to raise this exception class: its
    traceback is how Python reports it, so the verdict reads only the final line."""
    rc, out, seconds = result
    if api and last_line(out).startswith(api):
        out = last_line(out)
    obs = f"rc={rc}, {seconds:.0f}s: {last_line(out)[:200]}" + (f"; {extra_obs}" if extra_obs else "")
    if rc == "HANG" or (isinstance(rc, int) and rc < 0) or "Traceback" in out or rc not in ok_rc or not extra_ok:
        verdict = "FAILED"
        if "Traceback" in out:
            obs += " [TRACEBACK]"
    elif not all(n in out for n in needles) or (one_line and rc != 0 and len(extra_lines(out)) > 1):
        verdict = "partly"
        obs += f" [missing: {[n for n in needles if n not in out]}]"
    else:
        verdict = "handled"
    report(case, command, expected, obs, verdict)
    return out


def vectors(n, d=64, k=10, seed=0, scale=5.0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * scale
    return (centres[rng.integers(0, k, n)] + rng.normal(size=(n, d))).astype(np.float32)


def save_npz(name, X, prefix="s"):
    np.savez(WORK / name, vectors=X, sample_ids=np.asarray([f"{prefix}{i:05d}" for i in range(len(X))]))
    return name


def bank(path):
    from deqlib.bank import read_bank
    return read_bank(WORK / path).table


shutil.rmtree(WORK, ignore_errors=True)
WORK.mkdir(parents=True)
os.chdir(WORK)
print(f"# re-run of issue 19 from outside: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
      f"{os.uname().nodename}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, commit "
      f"{subprocess.run(['git', '-C', str(REPO), 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout.strip()}",
      flush=True)
print("CASE | COMMAND | EXPECTED | OBSERVED | VERDICT", flush=True)

# ================================================================== silent wrong results (issue 19 / rows 30-35, B6)
if wanted("S1"):  # core count
    save_npz("v2k.npz", vectors(2000))
    outs = {}
    for cores in ("0", "0,1"):
        outs[cores] = deq("analyze", "--embeddings", "v2k.npz", "--no-cache", "--no-progress", "--output",
                          f"cores{cores.replace(',', '')}.parquet", prefix=("taskset", "-c", cores), timeout=600)
    if all(o[0] == 0 for o in outs.values()):
        a, b = bank("cores0.parquet"), bank("cores01.parquet")
        changed = int((a.likelihood.to_numpy() != b.likelihood.to_numpy()).sum())
        obs = f"{changed} of {len(a)} likelihoods changed; clusters {a.cluster_id.nunique()} vs {b.cluster_id.nunique()}"
        report("S1 core count (row 30)", "taskset -c 0 / -c 0,1 deq analyze --embeddings v2k.npz (2,000 x 64) --no-cache",
               "0 likelihoods changed", obs, "handled" if changed == 0 else "FAILED")
    else:
        check("S1 core count (row 30)", "taskset -c 0 / -c 0,1 deq analyze --embeddings v2k.npz --no-cache",
              "rc 0 both", outs["0"] if outs["0"][0] else outs["0,1"], {0})

if wanted("S2"):  # identical vectors
    two = np.repeat(np.random.default_rng(1).normal(size=(2, 16)).astype(np.float32), 100, axis=0)
    save_npz("two.npz", two)
    check("S2a identical vectors only (row 31)", "deq analyze --embeddings two.npz (2 distinct x 100 copies)",
          "refused: rc 2, '2 distinct vectors ... drop the duplicates'",
          deq("analyze", "--embeddings", "two.npz", "--no-cache", "--no-progress", "--output", "two.parquet"),
          {2}, ("2 distinct vectors", "duplicates"), one_line=True)
    rng = np.random.default_rng(2)
    blobs = np.concatenate([rng.normal(size=(60, 16)) + 8 * rng.normal(size=16) for _ in range(3)]).astype(np.float32)
    mixed = np.concatenate([two, blobs])
    save_npz("mixed.npz", mixed)
    from deqlib.likelihood import RARITY_SIGNALS  # noqa: E402
    signals = [n for n in sorted(RARITY_SIGNALS) if not n.startswith("consensus")]  # deq analyze --rarity choices
    bad, warned, failed_runs = [], 0, []
    for name in signals:
        extra = ["--clusterer", "hdbscan"] if name == "glosh" else []
        rc, out, _ = deq("analyze", "--embeddings", "mixed.npz", "--rarity", name, *extra, "--no-progress",
                         "--cache-dir", "mcache", "--output", f"mixed-{name}.parquet")
        if rc != 0 or "Traceback" in out:
            failed_runs.append(f"{name}: rc={rc} {last_line(out)[:120]}")
            continue
        warned += "DuplicateEmbeddingsWarning" in out or "copies" in out
        t = bank(f"mixed-{name}.parquet")
        for g in (slice(0, 100), slice(100, 200)):
            if t.likelihood.iloc[g].nunique() != 1:
                bad.append(f"{name}: {t.likelihood.iloc[g].nunique()} values in one group")
    n = len(signals)
    obs = f"{n - len(failed_runs)} of {n} signals ran; groups with >1 likelihood: {bad or 'none'}; warned {warned} of {n}"
    if failed_runs:
        obs += f"; failed: {failed_runs}"
    report("S2b identical vectors beside blobs (row 31)",
           f"deq analyze --embeddings mixed.npz --rarity R, for each of the {n} signals",
           "one likelihood per group of copies under every signal; a duplicate warning", obs,
           "FAILED" if bad or failed_runs else ("handled" if warned == n else "partly"))

if wanted("S3"):  # Waymo key listing
    from deqlib.bank import record_key_listing  # noqa: E402,F401
    folder = WORK / "waymo_imgs"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i in range(30):
        (folder / f"seg{rng.integers(1e6):06d}_{i:02d}.jpg").write_bytes(os.urandom(200 + i))
    listing = os.listdir(folder)
    sizes = {name: int(rng.integers(1, 50)) for name in listing}
    Path("waymo.pkl").write_bytes(pickle.dumps({np.int64(i): {"cluster_id": np.int64(i), "cluster_size": np.int64(sizes[n]),
                                                              "largest_cluster_size": np.int64(50)}
                                                for i, n in enumerate(listing)}))
    python(f"from deqlib.bank import record_key_listing; record_key_listing({str(folder)!r}, 'listing.tsv')")
    shutil.copytree(folder, WORK / "waymo_copy")  # the images moved (another file system's order)
    check("S3a Waymo keys, a sorted listing (row 34)", "load_bank('waymo.pkl', key_listing=sorted(names))",
          "refused: 'position alone ... record_key_listing'", api="deqlib.bank.BankFormatError", result=python("""
            import os
            from deqlib.training import load_bank
            load_bank('waymo.pkl', key_listing=sorted(os.listdir('waymo_copy')))"""), ok_rc={1}, needles=("record_key_listing", "waymo.pkl"))
    check("S3b Waymo keys, the copied folder listed again (row 34)", "load_bank('waymo.pkl', key_listing='waymo_copy')",
          "refused", api="deqlib.bank.BankFormatError", result=python("""
            from deqlib.training import load_bank
            load_bank('waymo.pkl', key_listing='waymo_copy')"""), ok_rc={1}, needles=("record_key_listing",))
    rc, out, s = python(f"""
        import json
        from deqlib.training import load_bank
        b = load_bank('waymo.pkl', key_listing='listing.tsv', images='waymo_copy')
        truth = {json.dumps({n.rsplit('.', 1)[0]: v for n, v in sizes.items()})}
        t = b.table
        print('right', sum(int(truth.get(str(i)) == int(c)) for i, c in zip(t.sample_id, t.cluster_size)), 'of', len(t))""")
    check("S3c Waymo keys through a recorded listing, images moved (row 34)",
          "record_key_listing(folder); load_bank(pkl, key_listing='listing.tsv', images=copy)", "30 of 30 right",
          (rc, out, s), {0}, ("right 30 of 30",))

if wanted("S4"):  # CSV with hostile names
    from PIL import Image  # noqa: E402
    hostile = WORK / "hostile"
    hostile.mkdir()
    rng = np.random.default_rng(4)
    names = ["cr\rname", "lf\nname", 'quote"d', "com,ma", "caf\u00e9 \u2603", "NA", "000123", " lead space"]
    for i in range(60):
        base = names[i] if i < len(names) else f"img{i:03d}"
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(hostile / f"{base}.png")
    rc, out, s = deq("analyze", "--source", "folder", "--root", "hostile", *EMB, "--perplexity", "5", "--min-samples", "3",
                     "--output", "hostile.parquet", "--samples-csv", "hostile.csv", timeout=600)
    extra, obs = False, ""
    if rc == 0:
        import csv
        read = pd.read_csv("hostile.csv", dtype={"sample_id": str}, keep_default_na=False)
        with open("hostile.csv", newline="", encoding="utf-8") as f:
            py_rows = sum(1 for _ in csv.DictReader(f))
        ids_ok = set(read.sample_id) == set(bank("hostile.parquet").sample_id)
        extra = len(read) == 60 and py_rows == 60 and ids_ok
        obs = f"pandas {len(read)} rows, csv module {py_rows} rows, ids equal the bank's: {ids_ok}"
    check("S4 --samples-csv, CR/LF/quotes/commas in names (row 32)",
          "deq analyze --source folder --root hostile --samples-csv hostile.csv", "60 rows read back, ids equal",
          (rc, out, s), {0}, extra_ok=extra, extra_obs=obs)

if wanted("S5"):  # non-finite coordinate in the t-SNE cache
    save_npz("v500.npz", vectors(500))
    A = ["analyze", "--embeddings", "v500.npz", "--cache-dir", "nc", "--no-progress"]
    deq(*A, "--output", "clean.parquet")
    obs_all, good = [], True
    for value in ("nan", "inf"):
        for f in glob.glob("nc/reduce/*.npz"):
            with np.load(f) as d:
                arrays = {k: d[k] for k in d.files}
            key = next(k for k in arrays if arrays[k].ndim == 2 and arrays[k].shape[0] == 500)
            arrays[key] = arrays[key].copy()
            arrays[key][7, 1] = float(value)
            np.savez(f, **arrays)
        rc, out, s = deq(*A, "--output", f"after-{value}.parquet")
        same = rc == 0 and np.array_equal(bank("clean.parquet").likelihood, bank(f"after-{value}.parquet").likelihood)
        named = "damaged cache file" in out and "recomputing" in out
        good &= same and "Traceback" not in out
        obs_all.append(f"{value}: rc={rc}, warning naming the file: {named}, bank equals the clean run: {same}")
    report("S5 NaN / inf in the t-SNE cache (row 33)", "deq analyze --embeddings v500.npz (twice, cache edited between)",
           "warning naming the file; bank equals the clean run", "; ".join(obs_all), "handled" if good else "FAILED")

if wanted("S6"):  # index.parquet after a subsample run
    E = ["embed", "--output", "emb6", *EMB, "--workers", "0"]
    r1 = deq(*E, "--first", "300", timeout=600)
    r2 = deq(*E, "--max-images", "200", timeout=600)
    idx = glob.glob("emb6/*/*/index.parquet")
    obs, extra = "", False
    if r1[0] == 0 and r2[0] == 0 and idx:
        from deqlib.sources import open_source  # noqa: E402
        union = set(open_source("fashion-mnist").sample_ids[:300]) | set(open_source("fashion-mnist", max_images=200).sample_ids)
        t = pd.read_parquet(idx[0])
        extra = set(t.sample_id) == union and len(t) == len(union)
        obs = f"index {len(t)} rows, union of both runs {len(union)}, same ids: {set(t.sample_id) == union}"
    check("S6 index.parquet after a subsample run (B6)", "deq embed --first 300, then --max-images 200 (same --output)",
          "index holds both runs' samples", r1 if r1[0] else r2, {0}, extra_ok=extra, extra_obs=obs)

if wanted("S7"):  # notebook parameters that no longer exist
    check("S7a deq notebook run -p perplexity 3 (row 35)", "deq notebook run 00_quickstart -p perplexity 3",
          "rc 2 before any kernel, naming the parameter and reducer_params",
          deq("notebook", "run", "00_quickstart", "-p", "perplexity", "3", "--output-dir", WORK / "nb", cwd=REPO, timeout=120),
          {2}, ("perplexity", "reducer_params"), one_line=True)
    check("S7b deq sweep --grid perplexity=3,5 (row 35)", "deq sweep 00_quickstart --grid perplexity=3,5",
          "rc 2 before any run", deq("sweep", "00_quickstart", "--grid", "perplexity=3,5", "--output-root", WORK / "sw",
                                     cwd=REPO, timeout=120), {2}, ("perplexity", "reducer_params"), one_line=True)

# ================================================================== fragile (F1-F9)
if wanted("F1"):
    M = 2**61 - 1
    Path("colliding.pkl").write_bytes(pickle.dumps({k * M: {"cluster_id": 0, "cluster_size": 1, "largest_cluster_size": 1}
                                                    for k in range(1, 80_001)}, protocol=2))
    check("F1 80,000 integer keys that hash alike", "load_bank('colliding.pkl', key_listing=[...])",
          "refused fast (< 30 s), naming the file", api="deqlib.bank.UnsafePickleError", result=python("""
            from deqlib.training import load_bank
            load_bank('colliding.pkl', key_listing=[f'{i}.png' for i in range(80000)])""", timeout=60),
          ok_rc={1}, needles=("colliding.pkl", "outside [0, 2**32)"))

if wanted("F2"):
    from layouts import make_folder_tree  # noqa: E402
    few = make_folder_tree(WORK / "few", per_class=1)
    python("""
        import os, warnings, numpy as np, torch
        class RunsCode:
            def __reduce__(self):
                return (os.system, ("touch RAN",))
        torch.save({"w": RunsCode()}, "runs_code.pt")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.jit.save(torch.jit.trace(torch.nn.Linear(2, 2), torch.zeros(1, 2)), "torchscript.pt")
        np.savez("plain.npz", w=np.zeros(3, np.float32))
        np.savez("objects.npz", w=np.array([{"x": 1}], dtype=object))""")
    for enc, f in [("clip:ViT-B-32", "runs_code.pt"), ("clip:ViT-B-32", "torchscript.pt"), ("clip:ViT-B-32", "plain.npz"),
                   ("clip:ViT-B-32", "objects.npz"), ("efficientnet-lite0", "torchscript.pt"),
                   ("efficientnet-lite0", "runs_code.pt"), ("resnet101", "torchscript.pt")]:
        r = deq("embed", "--source", "folder", "--root", few, "--encoder", enc, "--weights", f, "--output", "embw", *EMB)
        check(f"F2 weights {f} for {enc}", f"deq embed --encoder {enc} --weights {f}",
              "rc 2, one line naming the file and the safe alternative, nothing runs", r, {2},
              (f, "state_dict"), one_line=True, extra_ok=not Path("RAN").exists() and "weights_only" not in r[1],
              extra_obs="code ran!" if Path("RAN").exists() else "")

if wanted("F5"):
    X = vectors(300)
    X[7, 3] = 5e30
    save_npz("huge.npz", X)
    check("F5 embeddings of 5e30", "deq analyze --embeddings huge.npz", "rc 2 before the t-SNE, 'Scale the vectors'",
          deq("analyze", "--embeddings", "huge.npz", "--no-cache", "--no-progress", "--output", "h.parquet"),
          {2}, ("Scale the vectors",), one_line=True)
    save_npz("oned.npz", np.random.default_rng(5).normal(size=(300, 1)).astype(np.float32))
    check("F6 1-d embeddings", "deq analyze --embeddings oned.npz", "one line naming the fix (or a right bank)",
          deq("analyze", "--embeddings", "oned.npz", "--no-cache", "--no-progress", "--output", "o.parquet"),
          {0, 1, 2}, one_line=True)
    save_npz("three.npz", vectors(3))
    check("F6 3 samples", "deq analyze --embeddings three.npz", "rc 1/2, one line naming the fix",
          deq("analyze", "--embeddings", "three.npz", "--no-cache", "--no-progress", "--output", "3.parquet"),
          {1, 2}, one_line=True)

if wanted("F7"):
    save_npz("twelve.npz", vectors(12, k=3))
    check("F7 stability K=5 at N=12", "deq stability --embeddings twelve.npz -K 5 --perplexity 3 --min-samples 2",
          "rc 0: the 5 runs and the consensus complete",
          deq("stability", "--embeddings", "twelve.npz", "-K", "5", "--perplexity", "3", "--min-samples", "2",
              "--eps-scale", "raw", "--no-progress", "--output", "st12.parquet", "--report", "st12.json"), {0})

if wanted("F7b"):  # the same through the notebook, as issue 19 met it
    check("F7b notebook 00 at N=12 with its default stability_k=5",
          "deq notebook run 00_quickstart -p max_images 12 -p reducer_params '{\"perplexity\": 3}' "
          "-p clusterer_params '{\"min_cluster_size\": 2, \"min_samples\": 2}' -p device cpu -p output_dir figs",
          "rc 0: analysis, 5 stability runs and the consensus complete",
          deq("notebook", "run", "00_quickstart", "-p", "max_images", "12", "-p", "reducer_params", '{"perplexity": 3}',
              "-p", "clusterer_params", '{"min_cluster_size": 2, "min_samples": 2}', "-p", "device", "cpu",
              "-p", "output_dir", WORK / "figs", "--output-dir", WORK / "nb", cwd=REPO, timeout=900), {0})

if wanted("F8"):  # signals: background job (SIGINT inherited ignored), parent-only SIGINT; SIGTERM to the group
    E = ["embed", "--first", "192", "--workers", "2", "--shard-size", "16", "--batch-size", "16", *EMB]
    for label, sig, group, expect in [("SIGINT to the parent only, started with nohup &", signal.SIGINT, False, 130),
                                      ("SIGTERM to the process group", signal.SIGTERM, True, 143)]:
        out_dir = f"sig{int(sig)}"
        started = time.perf_counter()
        if not group:  # a real background job: bash's `&` starts it with SIGINT ignored (nohup: SIGHUP too)
            cmd = (f"nohup {DEQ} {' '.join(E)} --output {out_dir} > {out_dir}.log 2>&1 & echo $! > {out_dir}.pid; "
                   f"wait $!; echo $? > {out_dir}.rc")
            shell = subprocess.Popen(["bash", "-c", cmd], cwd=WORK, env=ENV, start_new_session=True)
        else:  # deq leads its own process group (as under a scheduler); the signal goes to the whole group
            log_file = open(f"{out_dir}.log", "w")
            shell = subprocess.Popen([DEQ, *E, "--output", out_dir], cwd=WORK, env=ENV, start_new_session=True,
                                     stdout=log_file, stderr=subprocess.STDOUT)
        while not glob.glob(f"{out_dir}/*/*/shards/*.npz") and shell.poll() is None and time.perf_counter() - started < 300:
            time.sleep(0.05)
        if group:
            os.killpg(shell.pid, sig)
        else:
            os.kill(int(Path(f"{out_dir}.pid").read_text()), sig)
        try:
            shell.wait(timeout=120)
            rc = shell.returncode if group else int(Path(f"{out_dir}.rc").read_text())
        except (subprocess.TimeoutExpired, ValueError, FileNotFoundError):
            rc = "HANG"
        log = Path(f"{out_dir}.log").read_text(errors="replace")
        shards = len(glob.glob(f"{out_dir}/*/*/shards/*.npz"))
        again = deq(*E, "--output", out_dir, timeout=600)
        resumed = again[0] == 0 and "from cache" in again[1] and " 0 from cache" not in again[1]
        check(f"F8 {label}", (f"setsid deq {' '.join(E)}; kill -TERM -PGID; run again" if group else
                                 f"nohup deq {' '.join(E)} &; kill -INT PID; run again"),
              f"exit {expect}, one line, no worker traceback; the rerun resumes",
              (rc, log, time.perf_counter() - started), {expect},
              ("run the same command again",), extra_ok=resumed and "BrokenPipe" not in log,
              extra_obs=f"{shards} shards at the stop; rerun: {last_line(again[1])[:140]}")
    report("F9 bash workbook.sh test as a background job", "nohup bash workbook.sh test &",
           "passes", "not re-run here: it is the whole suite (727 s on this machine), which this session may not run; "
           "F8 runs the same background-job disposition from outside", "not run")

if wanted("F10"):  # --source-option example from the help, relative to the dataset root
    from layouts import make_bdd100k_tree  # noqa: E402
    bdd = make_bdd100k_tree(WORK / "bdd", n_images=6)
    other = WORK / "elsewhere"
    other.mkdir()
    r = deq("embed", "--source", "bdd100k", "--root", bdd, "--split", "train", "--source-option",
            "labels_file=labels/det_20/det_train.json", "--output", WORK / "embb", *EMB, cwd=other)
    check("F10 help's --source-option labels_file=labels/det_20/... from another folder",
          "cd elsewhere; deq embed --source bdd100k --root ../bdd --source-option labels_file=labels/det_20/det_train.json",
          "rc 0, labels read from the dataset root", r, {0}, ("now",), extra_ok="no label file" not in r[1])

# ================================================================== banks and seeds (B1-B8)
if wanted("B1"):
    X = vectors(300)
    save_npz("n300.npz", X)
    save_npz("n200.npz", X[:200])
    own = {**ENV, "DEQ_DATA_DIR": str(WORK / "dataB1")}  # a data folder of its own: other cases write banks too
    r1 = deq("analyze", "--embeddings", "n300.npz", "--no-progress", env=own)
    first = sorted(glob.glob("dataB1/processed/*.parquet"))
    r2 = deq("analyze", "--embeddings", "n200.npz", "--no-progress", env=own)
    r3 = deq("analyze", "--embeddings", "n200.npz", "--no-progress", "--seed", "1", env=own)
    r4 = deq("analyze", "--embeddings", "n200.npz", "--no-progress", env=own)
    files = sorted(glob.glob("dataB1/processed/*.parquet"))
    rows = sorted(len(pd.read_parquet(f, columns=["sample_id"])) for f in files)
    ok = len(files) == 3 and rows == [200, 200, 300] and first[0] in files and len(pd.read_parquet(first[0])) == 300
    check("B1/B2 default bank paths: N 300, N 200, seed 1, N 200 again",
          "deq analyze --embeddings n300.npz; ... n200.npz; ... --seed 1; ... n200.npz (no --output)",
          "3 distinct files (300, 200, 200 rows); the same run writes the same path", r4, {0},
          extra_ok=ok and all(r[0] == 0 for r in (r1, r2, r3)),
          extra_obs=f"{len(files)} files, rows {rows}: {[Path(f).name for f in files]}")

if wanted("B5"):
    r = deq("analyze", "--max-images", "300", *EMB, "--output", "fm300.parquet", timeout=600)
    meta = {}
    if r[0] == 0:
        from deqlib.bank import read_bank  # noqa: E402
        meta = read_bank(WORK / "fm300.parquet").metadata
    check("B8 precision auto on a CPU", "deq analyze --max-images 300 --device cpu", "float32 recorded in the bank",
          r, {0}, extra_ok="float32" in json.dumps(meta.get("embedding", meta)) or "fp32" in json.dumps(meta),
          extra_obs=f"embedding precision in the bank: {[v for k, v in (meta.get('embedding') or {}).items() if 'precision' in k]}")
    r = deq("explore", "fm300.parquet", "--output", "explore/fm300.html", "--no-progress", timeout=600)
    html = Path("explore/fm300.html")
    thumbs = [p for p in html.parent.rglob("*") if p.suffix in (".png", ".jpg", ".webp") and p.is_file()]
    check("B5 deq explore writes its HTML", "deq explore fm300.parquet --output explore/fm300.html",
          "rc 0, the page and its thumbnails", r, {0}, extra_ok=html.is_file() and html.stat().st_size > 10_000,
          extra_obs=f"page {html.stat().st_size if html.is_file() else 0} bytes, {len(thumbs)} image files beside it")

if wanted("B7"):
    outs = {c: deq(c, "--help", cwd=REPO)[1] for c in ("analyze", "stability", "explore", "rarity-check", "train-demo")}
    import re
    missing = []
    for c, text in outs.items():
        for m in re.finditer(r"\n  (--seeds?\b[^\n]*)\n((?:\s{20,}[^\n]*\n)*)", text):
            if "default" not in (m.group(1) + m.group(2)).lower():
                missing.append(f"{c} {m.group(1).split()[0]}")
    nb = json.loads((REPO / "notebooks" / "00_quickstart.ipynb").read_text())
    nb_seed = re.search(r"^seed = (\S+)", "".join("".join(c["source"]) for c in nb["cells"]), re.M)
    cli_seed = "0, as the notebooks" in " ".join(outs["analyze"].split())
    report("B7 seeds shown in --help, notebook and CLI agree",
           "deq {analyze,stability,explore,rarity-check,train-demo} --help; notebooks/00 parameters",
           "every seed option names its default; deq analyze 0 = notebook 00's seed",
           f"seed options without a default: {missing or 'none'}; notebook 00 seed = {nb_seed.group(1) if nb_seed else '?'}; "
           f"deq analyze help says 0 as the notebooks: {cli_seed}",
           "handled" if not missing and cli_seed and nb_seed and nb_seed.group(1) == "0" else "FAILED")

# ================================================================== rows 2-17 of docs/robustness.md (cache, CLI)
if wanted("R"):
    from PIL import Image  # noqa: E402
    rng = np.random.default_rng(0)
    for d, n in (("imgs", 5), ("many", 24)):
        os.makedirs(d, exist_ok=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(f"{d}/img{i:02d}.png")
    python("""
        import timm, torch
        torch.manual_seed(0)
        torch.save(timm.create_model("efficientnet_lite0", num_classes=1000).state_dict(), "mymodel.ckpt")""")
    E = [*EMB, "--workers", "0", "--threads", "1"]
    deq("embed", "--source", "folder", "--root", "imgs", "--output", "out", *E)
    check("R2 --weights mymodel.ckpt after a default run", "deq embed --source folder --root imgs --weights mymodel.ckpt",
          "'5 now, 0 from cache'", deq("embed", "--source", "folder", "--root", "imgs", "--output", "out", *E,
                                       "--weights", "mymodel.ckpt"), {0}, ("5 now, 0 from cache",))
    Image.new("RGB", (32, 32), (200, 10, 10)).save("imgs/img02.png")
    st = os.stat("imgs/img02.png")
    os.utime("imgs/img02.png", ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    check("R3 image replaced in place", "deq embed --source folder --root imgs (img02.png replaced)", "'1 now, 4 from cache'",
          deq("embed", "--source", "folder", "--root", "imgs", "--output", "out", *E), {0}, ("1 now, 4 from cache",))
    save_npz("v1k.npz", vectors(1000))
    res = {t: deq("analyze", "--embeddings", "v1k.npz", "--no-cache", "--no-progress", "--output", f"omp{t}.parquet",
                  env={**ENV, "OMP_NUM_THREADS": t}) for t in ("1", "2")}
    changed = (int((bank("omp1.parquet").likelihood.to_numpy() != bank("omp2.parquet").likelihood.to_numpy()).sum())
               if all(r[0] == 0 for r in res.values()) else -1)
    check("R4 OMP_NUM_THREADS=1 vs 2", "OMP_NUM_THREADS=1|2 deq analyze --embeddings v1k.npz --no-cache",
          "0 likelihoods changed", res["2"], {0}, extra_ok=changed == 0, extra_obs=f"{changed} of 1000 changed")
    A = ["analyze", "--embeddings", "v1k.npz", "--cache-dir", "acache", "--no-progress", "--output", "b13.parquet"]
    deq(*A)
    for f in glob.glob("acache/reduce/*.npz"):
        Path(f).write_bytes(b"")
    check("R13 emptied t-SNE cache", "deq analyze --embeddings v1k.npz (reduce cache emptied)",
          "warning naming the file, recomputed", deq(*A), {0}, ("damaged cache file", "recomputing"))
    deq("embed", "--source", "folder", "--root", "many", "--output", "sh", *E, "--shard-size", "4")
    S = sorted(glob.glob("sh/*/*/shards/*.npz"))[2]
    Path(S).write_bytes(Path(S).read_bytes()[:3000])
    check("R12 truncated shard", "deq embed --source folder --root many --shard-size 4 (one shard truncated)",
          "warning naming the shard, its 4 samples embedded again",
          deq("embed", "--source", "folder", "--root", "many", "--output", "sh", *E, "--shard-size", "4"), {0},
          (Path(S).name, "4 now, 20 from cache"))
    os.makedirs("banks", exist_ok=True)
    check("R17 --output is a folder", "deq analyze --embeddings v1k.npz --output banks", "rc 2 before any work, one line",
          deq("analyze", "--embeddings", "v1k.npz", "--no-progress", "--output", "banks"), {2}, ("banks", "pass a file name"),
          one_line=True)
    if os.geteuid() == 0:
        os.makedirs("ro", exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", "ro"], check=True)
        try:
            deq("embed", "--source", "folder", "--root", "imgs", "--output", "ro", *E)
            subprocess.run(["mount", "-o", "remount,ro", "ro"], check=True)
            check("R14a read-only cache, everything cached", "deq embed --output ro (tmpfs remounted ro)", "rc 0, nothing written",
                  deq("embed", "--source", "folder", "--root", "imgs", "--output", "ro", *E), {0}, ("0 now, 5 from cache",))
            shutil.copy("imgs/img00.png", "imgs/img99.png")
            check("R14b read-only cache, one new image", "deq embed --output ro (one image added)",
                  "rc 1, one line naming the folder and the fix",
                  deq("embed", "--source", "folder", "--root", "imgs", "--output", "ro", *E), {1}, ("writable",), one_line=True)
            os.unlink("imgs/img99.png")
        finally:
            subprocess.run(["umount", "ro"])
        os.makedirs("full", exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", "full"], check=True)
        try:
            r = deq("embed", "--source", "folder", "--root", "many", "--output", "full", *E, "--shard-size", "4")
            subprocess.run(["mount", "-o", "remount,size=8m", "full"], check=True)
            again = deq("embed", "--source", "folder", "--root", "many", "--output", "full", *E, "--shard-size", "4")
            deq("embed", "--source", "folder", "--root", "many", "--output", "clean", *E, "--shard-size", "4")
            same = python("""
                import glob, numpy as np, pandas as pd
                def vecs(root):
                    idx = pd.read_parquet(glob.glob(root + '/*/*/index.parquet')[0])
                    sh = sorted(glob.glob(root + '/*/*/shards/*.npz'))
                    out = {}
                    for f in sh:
                        with np.load(f) as d:
                            for i, v in zip(d['sample_ids'] if 'sample_ids' in d.files else d['ids'], d['vectors']):
                                out[str(i)] = v.tobytes()
                    return out
                a, b = vecs('full'), vecs('clean')
                print('identical', a == b, len(a))""")
            check("R15 disk full, then the disk grows", "deq embed --output full (64 KiB tmpfs), grow to 8 MiB, same command",
                  "rc 1 one line naming the shard and the fix; rerun resumes, vectors equal a clean run",
                  r, {1}, ("free disk space",), one_line=True,
                  extra_ok=again[0] == 0 and "identical True" in same[1],
                  extra_obs=f"rerun: {last_line(again[1])[:100]}; {last_line(same[1])[:80]}")
        finally:
            subprocess.run(["umount", "full"])
    else:
        report("R14/R15 read-only and full disk", "(tmpfs mounts)", "-", "skipped: needs root", "not run")

# rows 1, 5-11, 18-29 (shard race, pickles, banks, loaders, degenerate data): the issue-10 runner, one line per case
if wanted("R2x"):
    rc, out, s = run([PY, str(REPO / "benchmarks" / "robustness" / "rerun_bank_loader_cases.py"), str(REPO),
                      str(WORK / "bank-loader")], timeout=1800)
    for line in out.splitlines():
        if line.startswith(("OK  ", "BAD ")):
            parts = [p.strip() for p in line[4:].split("|")]
            report(f"R item {parts[0]}", "rerun_bank_loader_cases.py (issue-10 item)", "right result or a refusal naming file and fix",
                   " | ".join(parts[1:])[:220], "handled" if line.startswith("OK") else "FAILED")
    if rc not in (0, 1):
        report("R rows 1, 5-11, 18-29", "rerun_bank_loader_cases.py", "rc 0", f"rc={rc}: {last_line(out)[:200]}", "FAILED")

print(f"\n# {COUNTS['handled']} handled, {COUNTS['partly']} partly, {COUNTS['FAILED']} failed, {COUNTS['not run']} not run",
      flush=True)
sys.exit(1 if COUNTS["FAILED"] else 0)
