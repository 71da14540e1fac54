"""Fault injection on the caches and the CLI (issue 10, cache/embedding/CLI half).

Each test reproduces one case of ``docs/robustness.md``: concurrent runs on one shard cache,
weights files named like anything, images replaced in place, thread counts, non-UTF-8 file
names, damaged / read-only / full caches, Ctrl-C and SIGKILL of a real ``deq embed``. Most use
:class:`faultkit.PixelEncoder`, whose vectors identify their image exactly, so "a vector went to
the wrong sample" is an equality check, not a tolerance.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import faultkit as F
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from deqlib import embed as E
from deqlib import pipeline
from deqlib.cli import main as deq
from deq_runs import start_deq_embed, wait_for_shard

ROOT = Path(__file__).resolve().parents[1]
FAST = dict(device="cpu", precision="fp32", num_workers=0, num_threads=1, progress=False)


def small_tsne():
    """A t-SNE quick enough for cache tests (the caching, not the map, is under test)."""
    from deqlib.reduce import OpenTSNEReducer

    return OpenTSNEReducer(perplexity=5, early_exaggeration_iter=25, n_iter=25, n_jobs=1)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py


def embed_colours(cache, indices, **kw):
    return E.embed_source(F.ColourSource(indices), F.PixelEncoder(), cache_dir=cache, **{**FAST, **kw})


def cache_dir_of(cache, indices) -> Path:
    return E.cache_folder(cache, F.ColourSource(indices), F.PixelEncoder(), "fp32")


# -- 1. concurrent runs on one shard cache ------------------------------------------------------
def test_shard_written_between_two_listings_never_shifts_vectors(tmp_path, monkeypatch):
    """Another run adds a shard whose name sorts first every time this run lists the shards.

    Before: the ids were numbered from one listing and the vectors loaded from the next, so
    every vector of a shard went to other ids (or an IndexError).
    """
    cache = tmp_path / "cache"
    embed_colours(cache, range(0, 30), shard_size=10)  # three shards already cached
    shards = cache_dir_of(cache, range(30)) / "shards"
    original_glob = Path.glob
    injected = []

    def glob_then_inject(self, pattern):
        listed = list(original_glob(self, pattern))
        if self == shards:  # another run finishes a shard right after this listing
            n = len(injected)
            others = list(range(1000 + 10 * n, 1010 + 10 * n))
            with open(shards / f"a{n:03d}-other-run.npz", "wb") as handle:
                np.savez(handle, sample_ids=np.asarray([f"c{i:05d}" for i in others]),
                         vectors=np.stack([F.expected_vector(i) for i in others]),
                         stamps=np.asarray([""] * 10))
            injected.append(n)
        return iter(listed)

    monkeypatch.setattr(Path, "glob", glob_then_inject)
    result = embed_colours(cache, range(0, 40), shard_size=10)
    monkeypatch.undo()
    assert injected, "the injection point was never reached"
    assert result.sample_ids == [f"c{i:05d}" for i in range(40)]
    assert F.wrong_vectors(result) == []
    # The index names, for every id, a shard that really holds that id at that row.
    index = pd.read_parquet(result.cache_path / "index.parquet")
    for row in index.itertuples(index=False):
        with np.load(shards / row.shard) as data:
            assert data["sample_ids"][row.row] == row.sample_id


@pytest.mark.slow
def test_concurrent_writers_and_readers_always_get_their_own_vectors(tmp_path):
    """Four processes embed random overlapping subsets of one pool into one cache at once."""
    cache = tmp_path / "cache"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
               OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, str(ROOT / "tests" / "faultkit.py"), str(cache), "3", str(seed), "4"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for seed in range(4)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    report = "\n".join(outputs)
    assert [p.returncode for p in procs] == [0, 0, 0, 0], report
    runs = [int(line.split(": ")[1].split()[0]) for line in report.splitlines() if " runs, " in line]
    assert len(runs) == 4 and min(runs) >= 1 and sum(runs) >= 6, report  # they overlapped on the cache
    final = embed_colours(cache, range(F.POOL))  # and what they left is right, every vector
    assert F.wrong_vectors(final) == []


# -- 2. weights files named like anything ------------------------------------------------------
def test_any_local_weights_file_keys_the_cache_by_its_content(tmp_path, monkeypatch):
    """``--weights mymodel.ckpt`` (no slash, unlisted extension) used the default weights' key."""
    monkeypatch.chdir(tmp_path)
    default = E.get_encoder("efficientnet-lite0").cache_key()["weights"]
    missing = E.get_encoder("efficientnet-lite0", weights="mymodel.ckpt")
    with pytest.raises(FileNotFoundError, match="mymodel.ckpt"):
        missing.cache_key()  # before: silently the default weights' key
    keys = []
    for content in (b"first weights", b"second weights"):
        Path("mymodel.ckpt").write_bytes(content)
        for name in ("efficientnet-lite0", "resnet101"):
            keys.append(E.get_encoder(name, weights="mymodel.ckpt").cache_key()["weights"])
    assert keys[0] == keys[1] != keys[2] == keys[3]  # the content, whatever the family
    assert default not in keys and all(k.startswith("sha256:") for k in keys)
    Path("weights").write_bytes(b"first weights")  # no extension at all: still a file
    assert E.get_encoder("resnet101", weights="weights").cache_key()["weights"] == keys[0]


def test_custom_weights_never_read_the_default_cache(tmp_path, monkeypatch):
    import timm

    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    torch.save(timm.create_model("efficientnet_lite0", num_classes=1000).state_dict(), "mymodel.ckpt")
    cache = tmp_path / "cache"
    kw = dict(FAST, cache_dir=cache, batch_size=5)
    default = E.embed_source(F.ColourSource(range(5)), "efficientnet-lite0", **kw)
    custom = E.embed_source(F.ColourSource(range(5)), E.get_encoder("efficientnet-lite0", weights="mymodel.ckpt"),
                            **kw)
    assert (custom.stats["n_embedded"], custom.stats["n_cached"]) == (5, 0)  # before: 0 now, 5 from cache
    assert not np.allclose(custom.vectors, default.vectors, atol=1e-3)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch RAN",))


@pytest.mark.parametrize("encoder", ["efficientnet-lite0", "resnet101"])
def test_a_weights_file_that_would_run_code_is_refused_naming_it(tmp_path, monkeypatch, capsys, encoder):
    """Hostile weights: torch refused them, but in a traceback that named no file and advised
    loading with weights_only=False, which would run the code."""
    monkeypatch.chdir(tmp_path)
    torch.save({"conv.weight": _RunsCode()}, "evil.ckpt")
    Image.new("RGB", (8, 8)).save("only.png")
    code = deq(["embed", "--source", "folder", "--root", ".", "--encoder", encoder, "--weights", "evil.ckpt",
                "--output", "cache", "--device", "cpu", "--precision", "fp32", "--no-progress", "--workers", "0"])
    err = capsys.readouterr().err
    assert code == 2 and f"weights file {tmp_path / 'evil.ckpt'} was refused" in err and "posix.system" in err
    assert "weights_only=False" not in err and "Traceback" not in err
    assert not (tmp_path / "RAN").exists()


# -- 3. an image replaced in place ---------------------------------------------------------------
def test_image_replaced_in_place_is_embedded_again(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(6):
        Image.new("RGB", (8, 8), F.colour(i)).save(folder / f"img{i}.png")
    files = sorted(folder.glob("*.png"))

    class Files(F.ColourSource):
        def __init__(self):
            self.sample_ids = [f.stem for f in files]

        def load(self, index, draft=None):
            with Image.open(files[index]) as image:
                return image.convert("RGB")

        def metadata(self):
            return pd.DataFrame({"sample_id": self.sample_ids, "location": [str(f) for f in files]})

    cache = tmp_path / "cache"
    E.embed_source(Files(), F.PixelEncoder(), cache_dir=cache, **FAST)
    Image.new("RGB", (8, 8), F.colour(500)).save(files[3])  # same name, new pixels
    stat = files[3].stat()
    os.utime(files[3], ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))  # even on coarse clocks
    again = E.embed_source(Files(), F.PixelEncoder(), cache_dir=cache, **FAST)
    assert (again.stats["n_embedded"], again.stats["n_cached"]) == (1, 5)  # before: (0, 6), old vector
    assert np.array_equal(again.vectors[3], F.expected_vector(500))
    third = E.embed_source(Files(), F.PixelEncoder(), cache_dir=cache, **FAST)
    assert third.stats["n_embedded"] == 0 and np.array_equal(third.vectors, again.vectors)
    assert all(np.array_equal(third.vectors[i], F.expected_vector(i)) for i in (0, 1, 2, 4, 5))


# -- 4. thread counts -----------------------------------------------------------------------------
@pytest.mark.slow
def test_tsne_coordinates_do_not_depend_on_thread_counts():
    """``OMP_NUM_THREADS=1`` against the default moved almost every likelihood (PCA via BLAS). Below 1,000
    points openTSNE's neighbours are exact, so its own n_jobs has no effect here either; above, they are
    Annoy's and depend on it (the default is a constant: tests/test_core_count.py)."""
    from threadpoolctl import threadpool_limits

    from deqlib.reduce import OpenTSNEReducer

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(8, 64)) * 5
    X = (centers[rng.integers(0, 8, 400)] + rng.normal(size=(400, 64))).astype(np.float32)
    coords = []
    for threads in (1, 2):
        with threadpool_limits(limits=threads):
            reducer = OpenTSNEReducer(n_jobs=threads, schedule="fast")
            coords.append(reducer.fit_transform(X))
    assert np.array_equal(coords[0], coords[1])
    assert reducer.params_["blas_threads"] == 1 and reducer.params_["n_jobs"] == 2  # recorded in the bank


def test_embedding_threads_are_recorded_in_the_bank(tmp_path):
    result = pipeline.analyze(F.ColourSource(range(60)), F.PixelEncoder(), pipeline.build_stages(reducer=small_tsne()),
                              cache=tmp_path / "analysis",
                              embed_options={**{k: v for k, v in FAST.items() if k != "progress"},
                                             "cache_dir": tmp_path / "emb"})
    assert result.bank.metadata["embedding"]["torch_threads"] == 1
    assert result.bank.metadata["reduce"]["blas_threads"] == 1


# -- 7. file names that are not UTF-8 -------------------------------------------------------------
def test_non_utf8_file_names_are_embedded_and_cached(tmp_path, caplog):
    folder = tmp_path / "images"
    folder.mkdir()
    raw_names = [b"caf\xe9.png", b"plain.png", b"\xff\xfe.png"]
    for i, raw in enumerate(raw_names):
        Image.new("RGB", (8, 8), F.colour(i)).save(os.path.join(os.fsencode(folder), raw), format="PNG")
    names = sorted(os.listdir(folder))  # str, with surrogate escapes for the Latin-1 bytes
    indices = [raw_names.index(os.fsencode(n)) for n in names]

    class Files(F.ColourSource):
        def __init__(self):
            self.sample_ids = [n[:-4] for n in names]

        def load(self, index, draft=None):
            with Image.open(folder / names[index]) as image:
                return image.convert("RGB")

        def metadata(self):
            return pd.DataFrame({"sample_id": self.sample_ids, "location": [str(folder / n) for n in names]})

    cache = tmp_path / "cache"
    with caplog.at_level(logging.WARNING, logger="deqlib.embed"):
        first = E.embed_source(Files(), F.PixelEncoder(), cache_dir=cache, **FAST)  # before: UnicodeEncodeError
    assert "not valid UTF-8" in caplog.text and "caf\\\\xe9" in caplog.text
    assert first.sample_ids == Files().sample_ids
    assert all(np.array_equal(v, F.expected_vector(i)) for v, i in zip(first.vectors, indices))
    index = pd.read_parquet(first.cache_path / "index.parquet")
    assert sorted(index["sample_id"]) == sorted(["caf\\xe9", "plain", "\\xff\\xfe"])
    again = E.embed_source(Files(), F.PixelEncoder(), cache_dir=cache, **FAST)
    assert again.stats["n_cached"] == 3 and np.array_equal(again.vectors, first.vectors)


# -- 9. damaged, read-only and full caches -----------------------------------------------------
@pytest.mark.parametrize("damage", ["truncated", "empty", "flipped"])
def test_damaged_shard_is_reported_set_aside_and_embedded_again(tmp_path, caplog, damage):
    cache = tmp_path / "cache"
    clean = embed_colours(cache, range(30), shard_size=10)
    shards = sorted((clean.cache_path / "shards").glob("*.npz"))
    victim = shards[1]
    data = victim.read_bytes()
    if damage == "truncated":
        victim.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        victim.write_bytes(b"")
    else:  # one byte of the vectors: the zip's CRC catches it when the vectors are read
        position = data.index(b"vectors.npy") + 200
        victim.write_bytes(data[:position] + bytes([data[position] ^ 0xFF]) + data[position + 1:])
    with caplog.at_level(logging.WARNING, logger="deqlib.embed"):
        again = embed_colours(cache, range(30), shard_size=10)  # before: BadZipFile / EOFError, no file named
    assert victim.name in caplog.text and "damaged" in caplog.text
    assert again.stats["n_embedded"] == 10 and F.wrong_vectors(again) == []
    assert np.array_equal(again.vectors, clean.vectors)
    assert (victim.parent / (victim.name + ".damaged")).is_file()


@pytest.mark.parametrize("damage", [b"", b"PK\x03\x04 not a zip", None])
def test_damaged_tsne_cache_is_reported_and_recomputed(tmp_path, caplog, damage):
    rng = np.random.default_rng(1)
    X = (rng.normal(size=(4, 8))[rng.integers(0, 4, 60)] * 4 + rng.normal(size=(60, 8))).astype(np.float32)
    stages = pipeline.build_stages(reducer=small_tsne())
    first = pipeline.analyze(embeddings=X, stages=stages, cache=tmp_path)
    [tsne_file] = (tmp_path / "reduce").glob("*.npz")
    if damage is None:  # a readable file of the wrong length (e.g. from a bug elsewhere)
        with open(tsne_file, "wb") as handle:
            np.savez(handle, coords=np.zeros((7, 3)), params=np.array("{}"))
    else:
        tsne_file.write_bytes(damage)
    with caplog.at_level(logging.WARNING, logger="deqlib.pipeline"):
        again = pipeline.analyze(embeddings=X, stages=stages, cache=tmp_path)  # before: EOFError
    assert tsne_file.name in caplog.text and again.params["cached"]["reduce"] is False
    assert np.array_equal(again.samples[["x", "y", "z"]].to_numpy(), first.samples[["x", "y", "z"]].to_numpy())
    assert pipeline._load_npz(tsne_file, ("params",), coords=60) is not None  # repaired on disk


def _fail_writes(monkeypatch, error_number, after: int = 0):
    """Every atomic write after the first ``after`` fails with ``error_number`` (at fsync, like a full disk)."""
    real_fsync = os.fsync
    calls = []

    def fsync(fd):
        calls.append(fd)
        if len(calls) > after:
            raise OSError(error_number, os.strerror(error_number))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return calls


def test_fully_cached_run_writes_nothing_and_works_on_a_read_only_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = embed_colours(cache, range(20), shard_size=8)
    before = {p: p.stat().st_mtime_ns for p in first.cache_path.rglob("*") if p.is_file()}
    _fail_writes(monkeypatch, errno.EROFS)
    again = embed_colours(cache, range(20), shard_size=8)  # before: OSError rewriting index.parquet
    assert again.stats["n_cached"] == 20 and again.stats["cache_write_errors"] == []
    assert np.array_equal(again.vectors, first.vectors)
    assert {p: p.stat().st_mtime_ns for p in first.cache_path.rglob("*") if p.is_file()} == before


def test_full_disk_keeps_vectors_in_memory_then_resumes_byte_identical(tmp_path, monkeypatch, caplog, capsys):
    cache = tmp_path / "cache"
    embed_colours(cache, range(10), shard_size=5)
    calls = _fail_writes(monkeypatch, errno.ENOSPC, after=1)  # one more shard fits, then the disk is full
    with caplog.at_level(logging.WARNING, logger="deqlib.embed"):
        full = embed_colours(cache, range(40), shard_size=5)
    assert len(calls) >= 2 and "No space left" in caplog.text and "cache_dir" in caplog.text
    assert F.wrong_vectors(full) == [] and len(full.sample_ids) == 40  # nothing lost in this run
    assert full.stats["cache_write_errors"]
    assert not list(full.cache_path.rglob("*.tmp"))  # no half-written files left behind
    monkeypatch.undo()
    resumed = embed_colours(cache, range(40), shard_size=5)
    assert resumed.stats["n_cached"] == 15 and resumed.stats["n_embedded"] == 25
    clean = embed_colours(tmp_path / "clean", range(40), shard_size=5)
    assert resumed.vectors.tobytes() == clean.vectors.tobytes() == full.vectors.tobytes()


def test_analysis_cache_that_cannot_be_written_is_a_warning(tmp_path, monkeypatch, caplog):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(60, 6)).astype(np.float32)
    _fail_writes(monkeypatch, errno.EACCES)
    with caplog.at_level(logging.WARNING, logger="deqlib.pipeline"):
        result = pipeline.analyze(embeddings=X, stages=pipeline.build_stages(reducer=small_tsne()), cache=tmp_path)
    assert "cannot write the analysis cache" in caplog.text and str(tmp_path / "reduce") in caplog.text
    assert len(result.samples) == 60


# -- 11. the CLI: one line naming the fix, never a traceback --------------------------------------
@pytest.fixture()
def embeddings_file(tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "vectors.npz"
    np.savez(path, vectors=rng.normal(size=(60, 6)).astype(np.float32),
             sample_ids=np.asarray([f"s{i}" for i in range(60)]))
    return path


@pytest.mark.slow
def test_cli_output_folder_disk_full_and_read_only_are_one_line(tmp_path, embeddings_file, monkeypatch, capsys):
    base = ["analyze", "--embeddings", str(embeddings_file), "--cache-dir", str(tmp_path / "c"), "--no-progress",
            "--perplexity", "5"]
    folder = tmp_path / "banks"
    folder.mkdir()
    assert deq(base + ["--output", str(folder)]) != 0
    err = capsys.readouterr().err
    assert "is a folder" in err and str(folder) in err and ".parquet" in err and "Traceback" not in err

    _fail_writes(monkeypatch, errno.ENOSPC)
    bank = tmp_path / "bank.parquet"
    assert deq(base + ["--output", str(bank)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("deq analyze: error: no space left") and str(bank) in err[-1]
    assert not bank.exists() and not list(tmp_path.glob(".bank.parquet.*"))
    monkeypatch.undo()

    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("x")
    assert deq(["embed", "--output", str(not_a_folder), "--source", "folder", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is a file" in err and "--output" in err


def test_deq_embed_fails_when_its_cache_cannot_be_written(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(4):
        Image.new("RGB", (8, 8), F.colour(i)).save(folder / f"img{i}.png")
    argv = ["embed", "--source", "folder", "--root", str(folder), "--output", str(tmp_path / "out"),
            "--workers", "0", "--threads", "1", "--device", "cpu", "--precision", "fp32", "--no-progress"]
    _fail_writes(monkeypatch, errno.ENOSPC, after=1)  # encoder.json fits, the shard does not
    assert deq(argv) == 1
    err = capsys.readouterr().err
    assert "could not be written" in err and "No space left" in err and "--output" in err
    monkeypatch.undo()
    assert deq(argv) == 0  # space freed: the same command completes
    assert "(4 now, 0 from cache)" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_deq_embed_resumes_byte_identical(tmp_path, sig):
    """Ctrl-C (exit 130, one line) or SIGKILL mid-run, then the same command: the same bytes."""
    from deqlib.sources import open_source

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(4)
    for i in range(48):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / f"img{i:02d}.png")
    output = tmp_path / "out"
    proc = start_deq_embed(folder, output)
    wait_for_shard(output, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and "interrupted (SIGINT)" in err and "Traceback" not in err, err
    else:
        assert proc.returncode == -signal.SIGKILL
    [shards] = list(output.glob("*/*/shards"))
    done = len(list(shards.glob("*.npz")))
    assert 1 <= done < 6, "the run was not interrupted mid-way"
    proc = start_deq_embed(folder, output)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert f"({48 - 8 * done} now, {8 * done} from cache)" in out
    source = open_source("folder", root=folder)
    resumed = E.embed_source(source, "efficientnet-lite0", cache_dir=output, batch_size=4, shard_size=8, **FAST)
    assert resumed.stats["n_embedded"] == 0
    clean = E.embed_source(source, "efficientnet-lite0", cache_dir=tmp_path / "clean", batch_size=4, shard_size=8,
                           **FAST)
    assert resumed.sample_ids == clean.sample_ids
    assert resumed.vectors.tobytes() == clean.vectors.tobytes()


# -- index.parquet accumulates over runs (issue 19) --------------------------------------------
def test_index_keeps_every_sample_after_a_subsample_run(tmp_path):
    """A run over 300 samples, then one over a subsample of 174 of them and 6 new ones.

    Before: ``index.parquet`` listed only the latest run's samples (174 + 6 of 306). Now it lists
    the latest run's samples first, in their order, then every other cached sample, each
    pointing at a shard that really holds it at that row.
    """
    cache = tmp_path / "cache"
    full = embed_colours(cache, range(300), shard_size=64)
    rng = np.random.default_rng(0)
    subsample = sorted(rng.choice(300, size=174, replace=False).tolist()) + list(range(300, 306))
    again = embed_colours(cache, subsample, shard_size=64)
    assert again.stats["n_cached"] == 174 and again.stats["n_embedded"] == 6
    folder = again.cache_path
    assert folder == full.cache_path
    index = pd.read_parquet(folder / "index.parquet")
    assert len(index) == 306 and index["sample_id"].is_unique
    assert index["sample_id"].tolist()[:180] == again.sample_ids  # this run's samples first, in its order
    assert set(index["sample_id"]) == {f"c{i:05d}" for i in range(306)}
    for row in index.itertuples(index=False):
        with np.load(folder / "shards" / row.shard) as data:
            assert data["sample_ids"][row.row] == row.sample_id
            assert np.array_equal(data["vectors"][row.row], F.expected_vector(int(row.sample_id[1:])))
    # The same run again changes nothing on disk (an unchanged index is never rewritten).
    before = (folder / "index.parquet").stat().st_mtime_ns
    embed_colours(cache, subsample, shard_size=64)
    assert (folder / "index.parquet").stat().st_mtime_ns == before
    # A deleted shard drops its rows from the index, never leaving rows that point nowhere.
    gone = index["shard"].iloc[-1]
    (folder / "shards" / gone).unlink()
    embed_colours(cache, subsample, shard_size=64)
    rebuilt = pd.read_parquet(folder / "index.parquet")
    assert gone not in set(rebuilt["shard"])
    assert set(again.sample_ids) <= set(rebuilt["sample_id"]) and len(rebuilt) < 306
