"""Fault injection: bad file names, symlink loops, unreadable folders, wrong layouts, degenerate data.

Nothing may be dropped or read silently: every case either works with the right answer
(computed here from the tree that was built) or raises / warns with a message naming the file
and the fix. Real-layout trees come from tests/layouts.py.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from deqlib.cluster import DBSCANClusterer
from deqlib.reduce import OpenTSNEReducer, SklearnTSNEReducer
from deqlib.sources import DatasetLayoutError, FolderSource, KittiSource, nuscenes_split_scenes, open_source
from layouts import (
    appearance_image,
    bdd100k_attributes,
    bdd100k_name,
    make_bdd100k_tree,
    make_folder_tree,
    make_kitti_tree,
    make_nuscenes_tree,
    make_waymo_parquet_tree,
)

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- folders (item 10)
def _expected_ids(root: Path) -> list[str]:
    """Every image make_folder_tree wrote, listed from its own parameters (not by walking)."""
    ids = []
    for c, name in enumerate(("cats", "dogs", "rare")):
        sub = f"{name}/nested" if c == 2 else name
        ids += [f"{sub}/{name}_{k}.{'png' if k % 2 == 0 else 'jpg'}" for k in range(4)]
    return ids


def test_symlinked_subfolder_is_followed_and_a_loop_is_reported(tmp_path):
    root = make_folder_tree(tmp_path / "imgs")
    outside = tmp_path / "outside"
    outside.mkdir()
    appearance_image(3, (20, 20)).save(outside / "extra.png")
    (root / "linked").symlink_to(outside, target_is_directory=True)   # was silently skipped
    (root / "cats" / "loop").symlink_to(root, target_is_directory=True)  # a loop back to the root
    with pytest.warns(UserWarning, match=r"1 entries under .* left out: .*loop \(symlink loop\)"):
        source = FolderSource(root)
    assert source.sample_ids == sorted(_expected_ids(root) + ["linked/extra.png"])
    assert source.skipped == [(str(root / "cats" / "loop"), "symlink loop")]


def test_second_link_to_the_same_folder_is_listed_once(tmp_path):
    root = make_folder_tree(tmp_path / "imgs")
    (root / "zz_again").symlink_to(root / "dogs", target_is_directory=True)
    with pytest.warns(UserWarning, match="same folder as"):
        source = FolderSource(root)
    assert source.sample_ids == sorted(_expected_ids(root))


def test_unreadable_subfolder_is_refused_naming_it(tmp_path, monkeypatch):
    root = make_folder_tree(tmp_path / "imgs")
    locked = root / "dogs"
    real_scandir = os.scandir

    def scandir(path="."):  # chmod 000 does not stop root, so the denial is injected
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(DatasetLayoutError, match=r"cannot read folder .*dogs .*Permission denied.*chmod"):
        FolderSource(root)


def test_folder_named_like_an_image_and_special_files(tmp_path):
    root = make_folder_tree(tmp_path / "imgs")
    odd = root / "x.jpg"  # a folder with an image's name: walked into, not skipped
    odd.mkdir()
    appearance_image(5, (20, 20)).save(odd / "inner.png")
    (root / "gone.png").symlink_to(tmp_path / "nowhere.png")  # broken link: kept, fails when decoded
    os.mkfifo(root / "pipe.jpg")  # reading a pipe would block forever
    with pytest.warns(UserWarning, match=r"pipe\.jpg \(not a regular file"):
        source = FolderSource(root)
    assert source.sample_ids == sorted(_expected_ids(root) + ["x.jpg/inner.png", "gone.png"])
    from deqlib.sources import ImageLoadError

    with pytest.raises(ImageLoadError, match="gone.png"):
        source.load(source.sample_ids.index("gone.png"))


# ----------------------------------------------------------------------------- KITTI (item 10)
@pytest.mark.parametrize("entry", ["../../outside/secret", "/etc/passwd", "sub/000001", ".."])
def test_kitti_split_entries_outside_the_root_are_refused(tmp_path, entry):
    root = make_kitti_tree(tmp_path / "kitti", n_images=6)
    (tmp_path / "outside").mkdir()
    appearance_image(1, (20, 20)).save(tmp_path / "outside" / "secret.png")
    split_file = root / "ImageSets" / "train.txt"
    split_file.write_text("000000\n" + entry + "\n")
    with pytest.raises(DatasetLayoutError, match=r"train\.txt, line 2: .* is not an image id.*Fix that line"):
        KittiSource(root, split="train")


# -------------------------------------------------------------------------- nuScenes (item 15)
def test_nuscenes_names_the_version_it_found(tmp_path):
    root = make_nuscenes_tree(tmp_path / "nus")  # v1.0-mini only
    with pytest.raises(DatasetLayoutError, match=r"found v1.0-mini; pass version='v1.0-mini'"):
        open_source("nuscenes", root=root, version="v1.0-trainval", split="train")
    assert len(open_source("nuscenes", root=root, split="train")) > 0  # version=None finds it


@pytest.mark.parametrize("split", ["mini-val", "validation", "all"])
def test_unknown_nuscenes_split_lists_the_valid_ones(tmp_path, split):
    root = make_nuscenes_tree(tmp_path / "nus")
    with pytest.raises(ValueError, match=r"unknown nuScenes split .*valid: \['train', 'val', 'mini_train', "
                                         r"'mini_val'\]") as caught:
        open_source("nuscenes", root=root, version="v1.0-mini", split=split)
    assert "nuscenes-devkit" not in str(caught.value)
    with pytest.raises(ValueError, match=r"valid: \['train', 'val', 'train_detect', 'train_track'\]"):
        nuscenes_split_scenes("v1.0-trainval", split)


# --------------------------------------------------------------------------- BDD100K (item 16)
def test_bdd100k_without_labels_warns_before_embedding(tmp_path):
    root = make_bdd100k_tree(tmp_path / "bdd", n_images=4, label_format=None)
    with pytest.warns(UserWarning, match=r"no label file.*det_20/det_train\.json.*labels_file=False"):
        source = open_source("bdd100k", root=root, split="train")
    assert source.metadata()["weather"].isna().all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        open_source("bdd100k", root=root, split="train", labels_file=False)  # on purpose: no warning


def test_bdd100k_label_file_of_another_split_is_refused(tmp_path):
    root = make_bdd100k_tree(tmp_path / "bdd", n_images=4, split="val")
    make_bdd100k_tree(tmp_path / "other", n_images=4, split="train", seed=1)
    # labels of 'val' images, pointed at the 'train' image folder of a tree whose names differ
    (tmp_path / "other" / "images" / "100k" / "train").rename(tmp_path / "train_imgs")
    for i, path in enumerate(sorted((tmp_path / "train_imgs").iterdir())):
        path.rename(tmp_path / "train_imgs" / f"train{i:04d}.jpg")
    (root / "images" / "100k" / "train").parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "train_imgs").rename(root / "images" / "100k" / "train")
    with pytest.raises(DatasetLayoutError, match=r"det_val\.json label none of the 4 images.*another split"):
        open_source("bdd100k", root=root, split="train", labels_file=root / "labels" / "det_20" / "det_val.json")


def test_bdd100k_fills_det20_gaps_from_the_2018_file(tmp_path):
    root = make_bdd100k_tree(tmp_path / "bdd", n_images=5)  # det_20 lacks the last image
    last = bdd100k_name(4)
    full = [{"name": bdd100k_name(i), "attributes": bdd100k_attributes(i)} for i in range(5)]
    (root / "labels" / f"bdd100k_labels_images_train.json").write_text(json.dumps(full))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every image is labelled now: no warning
        source = open_source("bdd100k", root=root, split="train")
    table = source.metadata().set_index("sample_id")
    assert table.loc[Path(last).stem, "weather"] == bdd100k_attributes(4)["weather"]
    assert table.loc[Path(bdd100k_name(0)).stem, "scene"] == bdd100k_attributes(0)["scene"]


# ---------------------------------------------------------------- Waymo camera names (item 17)
def test_waymo_parquet_camera_name_as_text(tmp_path):
    root = make_waymo_parquet_tree(tmp_path / "waymo", n_segments=1, frames=3)
    expected = open_source("waymo-parquet", root=root).sample_ids
    for path in (root / "training" / "camera_image").glob("*.parquet"):
        table = pq.read_table(path)
        names = {1: "FRONT", 2: "FRONT_LEFT", 3: "FRONT_RIGHT", 4: "SIDE_LEFT", 5: "SIDE_RIGHT"}
        text = pa.array([names[v] for v in table["key.camera_name"].to_pylist()])
        index = table.schema.get_field_index("key.camera_name")
        pq.write_table(table.set_column(index, "key.camera_name", text), path)
    source = open_source("waymo-parquet", root=root)
    assert source.sample_ids == expected and len(expected) == 3
    assert np.asarray(source.load(0)).shape[2] == 3


# --------------------------------------------------------------------- degenerate data (8, 17)
@pytest.mark.slow
def test_reference_tsne_refuses_identical_embeddings_in_a_subprocess():
    # scikit-learn's TSNE segfaulted (exit 139) on 200 identical vectors.
    code = textwrap.dedent("""
        import numpy as np
        from deqlib.reduce import SklearnTSNEReducer
        try:
            SklearnTSNEReducer().fit_transform(np.ones((200, 16)))
        except ValueError as exc:
            print("REFUSED", exc)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, (done.returncode, done.stderr[-500:])
    assert "REFUSED all 200 embeddings are the same vector" in done.stdout
    assert "drop the duplicates" in done.stdout


def test_default_tsne_on_identical_embeddings_names_the_duplicates_not_the_learning_rate():
    with pytest.raises(ValueError, match="same vector") as caught:
        OpenTSNEReducer(n_jobs=1).fit_transform(np.ones((200, 16), dtype=np.float32))
    assert "learning_rate" not in str(caught.value)


@pytest.mark.parametrize("n", [5, 10])
def test_official_eps_scale_at_ten_samples_or_fewer_names_the_fix(n):
    points = np.random.default_rng(0).normal(size=(n, 3))
    with pytest.raises(ValueError, match=r"needs more than 10 samples; got %d\. Use eps_scale='raw'" % n):
        DBSCANClusterer(eps=1.0, min_samples=2).fit(points)
    labels = DBSCANClusterer(eps=10.0, min_samples=2, eps_scale="raw").fit(points).labels_
    assert (labels == 0).all()  # the suggested fix works: all points within eps form one cluster


# ------------------------------------------------------------------------ CLI source options (18)
def test_source_options_parse_to_typed_values():
    from deqlib.commands import parse_source_options

    assert parse_source_options(["version=v1.0-mini", "max-images=5", "camera=FRONT", "labels_file=false",
                                 "seed=1.5"]) == {"version": "v1.0-mini", "max_images": 5, "camera": "FRONT",
                                                  "labels_file": False, "seed": 1.5}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_source_options(["version"])


def test_cli_passes_source_options_and_reports_unknown_ones(tmp_path, capsys):
    from deqlib.cli import main

    root = make_nuscenes_tree(tmp_path / "nus")
    code = main(["analyze", "--source", "nuscenes", "--root", str(root), "--source-option", "version=v1.0-trainval",
                 "--no-progress"])
    assert code == 2
    assert "found v1.0-mini; pass version='v1.0-mini'" in capsys.readouterr().err
    code = main(["analyze", "--source", "nuscenes", "--root", str(root), "--source-option", "colour=red",
                 "--no-progress"])
    assert code == 2
    assert "has no option(s) ['colour']" in capsys.readouterr().err


def test_deq_embed_takes_source_options_too(tmp_path, capsys):
    """Case 18 for deq embed: it had no --source-option (argparse: unrecognized arguments)."""
    from deqlib.cli import main

    root = make_nuscenes_tree(tmp_path / "nus")
    base = ["embed", "--source", "nuscenes", "--root", str(root), "--output", str(tmp_path / "emb"), "--device", "cpu",
            "--precision", "fp32", "--no-progress", "--workers", "0"]
    assert main(base + ["--source-option", "version=v1.0-trainval"]) == 2
    assert "found v1.0-mini; pass version='v1.0-mini'" in capsys.readouterr().err
    assert main(base + ["--source-option", "colour=red"]) == 2
    assert "has no option(s) ['colour']" in capsys.readouterr().err
    assert main(base + ["--source-option", "version=v1.0-mini", "--split", "mini_val", "--max-images", "2"]) == 0
    assert "2 samples: 2 embedded" in capsys.readouterr().out


# ------------------------------------------------ reference precision, failed images (items 12, 14)
def test_reference_mode_embeds_in_float32_and_failed_images_reach_the_export(tmp_path):
    from test_pipeline import DigitImages, tiny_encoder

    from deqlib.bank import BankFormatError
    from deqlib.pipeline import analyze, build_stages

    options = {"cache_dir": tmp_path / "emb", "num_workers": 0, "device": "cpu", "precision": "auto"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the failed image's warning and a degenerate clustering of 59 digits
        result = analyze(source=DigitImages(n=60), encoder=tiny_encoder(), stages=build_stages("reference"),
                         cache=tmp_path / "cache", embed_options=options)
    assert result.params["embedding"]["precision"] == "fp32"  # 'fp32' asked for here, and 'auto' on a CPU
    assert result.bank.metadata["missing_sample_ids"] == ["digit017"]
    path = tmp_path / "official.pkl"
    with pytest.raises(BankFormatError, match="1 training sample.*digit017"):
        result.export_official(path)
    result.export_official(path, missing="rarest")
    raw = pickle.loads(path.read_bytes())
    assert len(raw) == 60 and raw["digit017"]["cluster_size"] == 1 and raw["digit017"]["cluster_id"] == -1
    assert result.bank.metadata["official_export"]["n_missing"] == 1
    with pytest.raises(ValueError, match="float32"):
        analyze(source=DigitImages(n=60), encoder=tiny_encoder(), stages=build_stages("reference"),
                cache=tmp_path / "cache", embed_options={**options, "precision": "bf16"})


def test_cli_analyze_and_export_with_a_non_utf8_file_name(tmp_path, monkeypatch, capsys):
    """Case 7 end to end: before, ``deq analyze`` crashed building the source's table
    (UnicodeEncodeError: surrogates not allowed), and the fingerprint and the bank too."""
    import shutil

    from deqlib.bank import read_bank
    from deqlib.cli import main
    from deqlib.embed import sample_stamps

    monkeypatch.setenv("DEQ_DATA_DIR", str(tmp_path / "data"))
    root = make_folder_tree(tmp_path / "imgs")
    latin1 = os.path.join(os.fsencode(root / "cats"), b"caf\xe9.png")
    shutil.copy(root / "cats" / "cats_0.png", latin1)
    with pytest.warns(UserWarning, match=r"not valid UTF-8.*caf\\\\xe9.*convmv"):
        source = FolderSource(root)
    assert "cats/caf\\xe9.png" in source.sample_ids and len(source.fingerprint()) == 16
    stamps = sample_stamps(source)
    assert all(stamps), "every file, the Latin-1 one included, has a size:mtime stamp"
    bank, official = tmp_path / "bank.parquet", tmp_path / "official.pkl"
    command = ["analyze", "--source", "folder", "--root", str(root), "--device", "cpu", "--precision", "fp32",
               "--perplexity", "3", "--min-samples", "2", "--output", str(bank), "--export-official", str(official),
               "--no-progress"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(command) == 0, capsys.readouterr().err
    table = read_bank(bank).table
    assert len(table) == 13 and "cats/caf\\xe9.png" in set(table["sample_id"])
    raw = pickle.loads(official.read_bytes())
    assert set(raw) == set(table["sample_id"])
    likelihood = table.set_index("sample_id")["likelihood"]
    for key, record in raw.items():  # the forks' p = cluster_size / largest_cluster_size, for any signal
        assert record["cluster_size"] / record["largest_cluster_size"] == pytest.approx(likelihood[key], abs=1e-6)
    # an image with that name replaced in place changes its stamp (the cache re-embeds it)
    os.utime(latin1, ns=(0, 0))
    with pytest.warns(UserWarning, match="not valid UTF-8"):
        replaced = FolderSource(root)
    position = source.sample_ids.index("cats/caf\\xe9.png")
    assert sample_stamps(replaced)[position] != stamps[position]


@pytest.mark.slow
def test_cli_export_with_an_undecodable_image_asks_what_to_do(tmp_path, monkeypatch, capsys):
    from deqlib.bank import read_bank
    from deqlib.cli import main

    monkeypatch.setenv("DEQ_DATA_DIR", str(tmp_path / "data"))
    root = make_folder_tree(tmp_path / "imgs")
    (root / "cats" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    bank, official = tmp_path / "bank.parquet", tmp_path / "official.pkl"
    command = ["analyze", "--source", "folder", "--root", str(root), "--device", "cpu", "--precision", "fp32",
               "--perplexity", "3", "--min-samples", "2", "--output", str(bank), "--export-official", str(official),
               "--no-progress"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(command) == 2
        captured = capsys.readouterr()
        assert "1 training sample(s) have no likelihood" in captured.err and "--missing rarest|median" in captured.err
        assert not official.exists() and read_bank(bank).metadata["missing_sample_ids"] == ["cats/broken.png"]
        assert main(command + ["--missing", "median"]) == 0
    raw = pickle.loads(official.read_bytes())
    sizes = [record["cluster_size"] for key, record in raw.items() if key != "cats/broken.png"]  # the export's sizes
    assert len(raw) == 13 and raw["cats/broken.png"]["cluster_id"] == -1
    assert raw["cats/broken.png"]["cluster_size"] == int(np.quantile(sizes, 0.5, method="lower"))
    assert read_bank(bank).metadata["official_export"]["missing"] == "median"


def test_bf16_cosine_claim_in_resolve_precision_matches_the_measurement():
    """Case 14: the docstring claimed cosine >= 0.988; 3,000 images measured a minimum of 0.985."""
    from deqlib.embed import resolve_precision

    results = sorted((Path(__file__).parents[1] / "benchmarks" / "embedding" / "results").glob("fmnist-knn-*.json"))
    measured = max((json.loads(p.read_text())["result"] for p in results), key=lambda r: r["n_images"])
    doc = " ".join(resolve_precision.__doc__.split())
    assert f"mean {measured['bf16_vs_fp32_cosine_mean']:.3f}" in doc
    assert f"minimum {measured['bf16_vs_fp32_cosine_min']:.3f}" in doc and ">= 0.988" not in doc


def test_every_notebook_that_exports_official_lets_the_user_choose_missing_samples():
    """Case 12 in the notebooks: 00 and 02 called export_official without missing=, so a run with
    one undecodable image stopped there with no parameter to choose 'rarest' or 'median'.

    The dataset notebooks export through ``DatasetReport.write_banks``, which writes the forks'
    pickle for the datasets a fork reads (``bank.OFFICIAL_BANK_FILENAMES``), and for any dataset with
    ``official=True`` (notebook 00): those calls count as exports."""
    import ast

    from deqlib.bank import OFFICIAL_BANK_FILENAMES

    exporting = []
    for path in sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        code = [("".join(c["source"]), c.get("metadata", {}).get("tags", [])) for c in cells if c["cell_type"] == "code"]
        parameters = [source for source, tags in code if "parameters" in tags]
        assert len(parameters) == 1, path.name
        defaults = {}
        exec(parameters[0], {}, defaults)  # the parameters cell is plain assignments
        exporters = {"export_official"} | ({"write_banks"} if defaults.get("source_kind") in OFFICIAL_BANK_FILENAMES
                                           else set())
        calls = [node for source, _ in code for node in ast.walk(ast.parse(source))
                 if isinstance(node, ast.Call) and (getattr(node.func, "attr", None) in exporters or (
                     getattr(node.func, "attr", None) == "write_banks"
                     and any(k.arg == "official" and getattr(k.value, "value", None) is True for k in node.keywords)))]
        if not calls:
            continue
        exporting.append(path.name)
        assert defaults.get("missing_samples") == "error", f"{path.name}: no missing_samples='error' parameter"
        for call in calls:
            keywords = {k.arg: k.value for k in call.keywords}
            assert isinstance(keywords.get("missing"), ast.Name) and keywords["missing"].id == "missing_samples", \
                f"{path.name}: export_official(...) does not pass missing=missing_samples"
    assert {"00_quickstart.ipynb", "02_kitti.ipynb", "03_nuscenes.ipynb"} <= set(exporting)


def test_bdd100k_relative_labels_file_is_read_from_the_dataset_root(tmp_path, monkeypatch):
    """The help's example ``--source-option labels_file=labels/det_20/det_train.json`` (issue 19):
    a relative path was resolved from the current folder, so the example failed as written."""
    root = make_bdd100k_tree(tmp_path / "bdd", n_images=4)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    source = open_source("bdd100k", root=root, split="train", labels_file="labels/det_20/det_train.json")
    assert source.labels_file == root / "labels" / "det_20" / "det_train.json"
    assert source.metadata()["weather"].notna().sum() == 3  # the tree labels every image but the last
    # a path relative to the current folder still works when the root has no such file
    (elsewhere / "mine.json").write_bytes((root / "labels" / "det_20" / "det_train.json").read_bytes())
    assert open_source("bdd100k", root=root, split="train", labels_file="mine.json").labels_file == Path("mine.json")
    with pytest.raises(DatasetLayoutError, match=r"nope\.json not found.*in the dataset root .*bdd.* nor in the current folder"):
        open_source("bdd100k", root=root, split="train", labels_file="labels/nope.json")


@pytest.mark.parametrize("n_distinct", [1, 2])
def test_deq_analyze_on_copies_leads_with_the_duplicates(tmp_path, capsys, n_distinct):
    """From outside (issue 19 re-run): since the reducer is fitted on the distinct vectors only,
    `deq analyze` on 200 identical vectors said "X has 1 sample(s) (shape=(1, 16)) while a minimum of
    2 is required" (scikit-learn's words, not row 11's "all 200 embeddings are the same vector"), and
    on 2 distinct vectors "... got 2; lower perplexity below 0.7": the duplicates came last."""
    from deqlib.cli import main as deq

    base = np.random.default_rng(0).normal(size=(n_distinct, 16)).astype(np.float32)
    np.savez(tmp_path / "copies.npz", vectors=np.repeat(base, 200 // n_distinct, axis=0),
             sample_ids=np.asarray([f"s{i}" for i in range(200)]))
    for mode in ("default", "reference"):
        rc = deq(["analyze", "--embeddings", str(tmp_path / "copies.npz"), "--mode", mode, "--no-cache",
                  "--no-progress", "--output", str(tmp_path / "bank.parquet")])
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("deq analyze: error:")]
        assert rc == 2 and len(lines) == 1, err
        lead = ("all 200 embeddings are the same vector" if n_distinct == 1
                else "only 2 distinct vectors among 200 samples (198 are copies)")
        assert lines[0].startswith(f"deq analyze: error: {lead}"), lines[0]
        assert "drop the duplicates" in lines[0] and "X has 1 sample" not in lines[0], lines[0]
        assert not (tmp_path / "bank.parquet").exists()
