"""Silent wrong results of issue 19, each now fixed or refused with a message naming the fix.

One test (or a few) per case of ``docs/robustness.md``'s issue-19 rows: ``--samples-csv`` with
hostile file names, a NaN in a cached t-SNE, a Waymo key listing in another order, notebook
parameters that do not exist, and large groups of identical vectors. (The core count has its own
module, ``tests/test_core_count.py``; identical vectors across every rarity signal are in
``tests/test_rarity_contracts.py``.)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deqlib.cli import main as deq

#: File names a real folder can hold that break naive CSV: CR, LF, CRLF, quotes, commas, a
#: separator-only name, unicode (combining, right-to-left, emoji), leading zeros and NA words.
HOSTILE_IDS = ["cr\rname.png", "lf\nname.png", "crlf\r\nname.png", 'quote"d.png', "comma,name.png", ",",
               '"', "e\u0301t\u00e9 \u05e9\u05dc\u05d5\u05dd \U0001f600.png", "000123", "NA", "nan", " lead",
               "tab\tname.png", "semi;colon.png"]


def _embeddings_file(tmp_path: Path, ids: list[str]) -> Path:
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 16)) * 6
    vectors = (centers[np.arange(len(ids)) % 3] + rng.normal(size=(len(ids), 16))).astype(np.float32)
    path = tmp_path / "vectors.npz"
    np.savez(path, vectors=vectors, sample_ids=np.array(ids))
    return path


def _small_analysis_args() -> list[str]:
    return ["--perplexity", "5", "--reducer-param", "early_exaggeration_iter=25", "--reducer-param", "n_iter=25",
            "--eps-scale", "raw", "--eps", "3", "--min-samples", "3", "--no-progress"]


# ------------------------------------------------------------------------------------ --samples-csv
def test_samples_csv_round_trips_hostile_file_names(tmp_path, capsys):
    ids = HOSTILE_IDS + [f"plain-{i:03d}.png" for i in range(60 - len(HOSTILE_IDS))]
    npz = _embeddings_file(tmp_path, ids)
    csv_path = tmp_path / "samples.csv"
    code = deq(["analyze", "--embeddings", str(npz), "--output", str(tmp_path / "bank.parquet"),
                "--samples-csv", str(csv_path), "--cache-dir", str(tmp_path / "cache"), *_small_analysis_args()])
    assert code == 0, capsys.readouterr()
    from deqlib.bank import read_bank
    from deqlib.pipeline import read_samples_csv

    table = read_samples_csv(csv_path)
    assert len(table) == 60  # before: a CR in a name split its row (62 rows for 60 samples)
    assert table["sample_id"].tolist() == read_bank(tmp_path / "bank.parquet").table["sample_id"].tolist()
    assert set(table["sample_id"]) == set(ids)
    bank = read_bank(tmp_path / "bank.parquet").table.set_index("sample_id")
    np.testing.assert_array_equal(table.set_index("sample_id").loc[ids, "likelihood"].to_numpy(),
                                  bank.loc[ids, "likelihood"].to_numpy())
    # any CSV reader sees 60 rows: Python's csv module too, and plain pandas (ids aside)
    import csv

    with open(csv_path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert len(rows) == 61 and {len(r) for r in rows} == {len(table.columns)}
    assert len(pd.read_csv(csv_path)) == 60


# ------------------------------------------------------------------------------------ cached coordinates
@pytest.mark.parametrize("bad_value", [np.nan, np.inf])
def test_a_non_finite_coordinate_in_the_tsne_cache_is_reported_and_recomputed(tmp_path, capsys, caplog, bad_value):
    import logging

    from deqlib.bank import read_bank

    npz = _embeddings_file(tmp_path, [f"s{i:03d}" for i in range(60)])
    command = ["analyze", "--embeddings", str(npz), "--cache-dir", str(tmp_path / "cache"), *_small_analysis_args()]
    assert deq([*command, "--output", str(tmp_path / "clean.parquet")]) == 0
    [tsne_file] = (tmp_path / "cache" / "reduce").glob("*.npz")
    with np.load(tsne_file, allow_pickle=False) as data:
        coords, params = data["coords"].copy(), data["params"]
    coords[17, 1] = bad_value  # a hand-damaged cache: readable, right shape, one bad number
    with open(tsne_file, "wb") as handle:
        np.savez(handle, coords=coords, params=params)
    with caplog.at_level(logging.WARNING, logger="deqlib.pipeline"):
        code = deq([*command, "--output", str(tmp_path / "again.parquet")])
    assert code == 0
    # before: the NaN reached the bank (exit 0, no word); now a warning naming the file and the row
    assert tsne_file.name in caplog.text and "non-finite" in caplog.text and "[17]" in caplog.text
    clean, again = read_bank(tmp_path / "clean.parquet").table, read_bank(tmp_path / "again.parquet").table
    assert np.isfinite(again[["x", "y", "z", "likelihood"]].to_numpy()).all()
    pd.testing.assert_frame_equal(again, clean)
    with np.load(tsne_file, allow_pickle=False) as data:  # repaired on disk
        assert np.isfinite(data["coords"]).all()



# ------------------------------------------------------------------------------------ notebook parameters
def test_deq_notebook_run_refuses_a_parameter_the_notebook_lacks(capsys):
    # before: papermill only warned, and 00 ran with perplexity 30 (it takes reducer_params now)
    assert deq(["notebook", "run", "00_quickstart", "-p", "perplexity", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "has no parameter 'perplexity'" in err and "reducer_params" in err and "max_images" in err
    assert "-p reducer_params '{\"perplexity\": 3}'" in err  # the fix, written out


def test_deq_sweep_refuses_unknown_parameters_before_any_run(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert deq(["sweep", "00_quickstart", "--grid", "perplexity=3,5", "--output-root", str(runs)]) == 2
    assert "has no parameter 'perplexity'" in capsys.readouterr().err
    # a misspelt fixed parameter and a misspelt dict parameter of a dotted axis: the closest name is offered
    assert deq(["sweep", "00_quickstart", "--grid", "clusterr_params.eps=1,2", "-p", "max_image", "50",
                "--output-root", str(runs)]) == 2
    err = capsys.readouterr().err
    assert "'clusterr_params' (did you mean 'clusterer_params'?)" in err
    assert "'max_image' (did you mean 'max_images'?)" in err
    assert not runs.exists()  # refused before the first run, not a table of failed rows


def test_declared_parameters_still_pass_the_check():
    from deqlib.notebooks import check_notebook_parameters
    from deqlib.sweep import notebook_parameters

    declared = check_notebook_parameters("00_quickstart", notebook_parameters(
        {"max_images": 50}, {"clusterer_params.eps": 1.0, "reducer_params.perplexity": 5}))
    assert {"max_images", "clusterer_params", "reducer_params", "output_dir"} <= declared


# ------------------------------------------------------------------------------------ Waymo key listing
def _official_waymo(tmp_path: Path, n: int = 30):
    """An image folder of ``n`` distinct files and the official pickle keyed by os.listdir position."""
    import pickle

    folder = tmp_path / "original" / "training" / "image_0"
    folder.mkdir(parents=True)
    for i in range(n):
        (folder / f"seg_{(i * 7) % n:03d}_{i}.jpg").write_bytes(f"jpeg bytes of frame {i}".encode() * (i + 1))
    names = os.listdir(folder)
    sizes = {name: 1 + i for i, name in enumerate(sorted(names))}  # a distinct cluster size per file
    payload = {np.int64(k): {"cluster_id": np.int64(k), "cluster_size": np.int64(sizes[name]),
                             "largest_cluster_size": np.int64(n)} for k, name in enumerate(names)}
    path = tmp_path / "waymo_training_cluster_info.pkl"
    path.write_bytes(pickle.dumps(payload))
    truth = {Path(name).stem: sizes[name] for name in names}
    return path, folder, names, truth


def test_waymo_keys_by_position_alone_are_refused(tmp_path):
    """Before: a folder listed again elsewhere, or a sorted list, mapped 24-26 of 30 keys to other files."""
    from deqlib.bank import BankFormatError, import_official_pickle

    path, folder, names, _ = _official_waymo(tmp_path)
    copy = tmp_path / "copy" / "image_0"
    copy.mkdir(parents=True)
    for name in sorted(names, reverse=True):  # another order, as another file system would give
        (copy / name).write_bytes((folder / name).read_bytes())
    plain = tmp_path / "sorted.txt"
    plain.write_text("\n".join(sorted(names)) + "\n")
    for listing in (copy, folder, plain, sorted(names)):
        with pytest.raises(BankFormatError, match="record_key_listing") as caught:
            import_official_pickle(path, key_listing=listing)
        assert "position" in str(caught.value)


def test_waymo_keys_map_through_a_recorded_listing_verified_against_the_files(tmp_path):
    import shutil

    from deqlib.bank import BankFormatError, import_official_pickle, record_key_listing

    path, folder, names, truth = _official_waymo(tmp_path)
    listing = record_key_listing(folder, tmp_path / "listing.tsv")  # where the original run listed them
    moved = tmp_path / "elsewhere" / "image_0"
    shutil.copytree(folder, moved)  # the images moved: the recorded order still holds, each file is checked
    for images in (None, moved):
        bank = import_official_pickle(path, key_listing=listing, images=images)
        assert dict(zip(bank.table["sample_id"], bank.table["cluster_size"])) == truth  # 30 of 30 right
    assert bank.metadata["key_images"] == str(moved)
    # a file whose content changed (or that is missing, or unlisted) is refused, naming it
    (moved / names[4]).write_bytes(b"another image")
    with pytest.raises(BankFormatError, match=f"changed content 1 \\(e.g. \\['{names[4]}'\\]\\)"):
        import_official_pickle(path, key_listing=listing, images=moved)
    (moved / names[4]).unlink()
    (moved / "extra.jpg").write_bytes(b"x")
    with pytest.raises(BankFormatError, match="missing 1 .*not listed 1"):
        import_official_pickle(path, key_listing=listing, images=moved)
