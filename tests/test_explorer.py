"""The explorer's Python side: colours, stratified subsets, thumbnail tiles and sprite sheets, the page's data."""

import base64
import colorsys
import json
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deqlib.plots.explorer import (NOISE_COLOR, cluster_palette, stratified_subset, thumbnail_tile, write_explorer,
                                   write_sprite_sheets)
from deqlib.sources import ImageSource


class Numbered(ImageSource):
    """``n`` images of ``size``; image i is a flat grey of value (37 * i) % 256 with a red first column."""

    name = "numbered"

    def __init__(self, n, size=(40, 20)):
        self.n, self.size = n, size

    @property
    def sample_ids(self):
        return [f"img-{i:05d}" for i in range(self.n)]

    def load(self, index, draft=None):
        image = Image.new("RGB", self.size, ((37 * index) % 256,) * 3)
        return image

    def metadata(self):
        return pd.DataFrame({"sample_id": self.sample_ids, "location": self.sample_ids})


def _samples(n, seed=0, n_clusters=12):
    rng = np.random.default_rng(seed)
    cluster = rng.integers(-1, n_clusters, size=n)
    sizes = pd.Series(cluster).map(pd.Series(cluster).value_counts()).to_numpy().copy()
    sizes[cluster < 0] = 1
    return pd.DataFrame({"sample_id": [f"img-{i:05d}" for i in range(n)], "x": rng.normal(size=n),
                         "y": rng.normal(size=n), "z": rng.normal(size=n), "cluster_id": cluster,
                         "cluster_size": sizes, "likelihood": sizes / sizes.max(),
                         "weight": rng.uniform(0.5, 1, n), "camera": rng.choice(["FRONT", "SIDE_LEFT"], n),
                         "location": "nowhere", "is_noise": cluster < 0})


def _page_data(path):
    text = path.read_text()
    match = re.search(r"const DATA = (\{.*?\});\n", text, flags=re.S)
    return text, json.loads(match.group(1))


def external_resources(text):
    """``src``/``href`` attributes of the page's real tags (script bodies are not parsed as HTML)."""
    from html.parser import HTMLParser

    found = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.extend(v for k, v in attrs if k in ("src", "href"))

    Parser().feed(text)
    return found


def _decode(b64, dtype):
    return np.frombuffer(base64.b64decode(b64), dtype=dtype)


# ---------- colours ----------

@pytest.mark.parametrize("n", [1, 20, 409, 1000])
def test_palette_is_distinct_saturated_and_never_grey(n):
    colours = cluster_palette(n).astype(int)
    assert colours.shape == (n, 3)
    assert len({tuple(c) for c in colours}) == n  # no two clusters share a colour
    spread = colours.max(axis=1) - colours.min(axis=1)
    assert spread.min() >= 90  # saturated: far from any grey, the noise colour included
    assert max(NOISE_COLOR) - min(NOISE_COLOR) == 0
    assert np.abs(colours - np.array(NOISE_COLOR)).max(axis=1).min() >= 60


def test_neighbouring_cluster_ids_get_far_apart_hues():
    hues = np.array([colorsys.rgb_to_hsv(*(c / 255))[0] for c in cluster_palette(50)])
    gap = np.abs(np.diff(hues))
    assert np.minimum(gap, 1 - gap).min() > 0.2


# ---------- stratified subset ----------

def test_stratified_subset_keeps_every_cluster_and_the_budget():
    # 409 clusters with heavy-tailed sizes, as the 70,000-image run had; 10,000 points shown.
    rng = np.random.default_rng(0)
    sizes = np.maximum(1, (rng.pareto(1.1, 409) * 40).astype(int))
    labels = np.repeat(np.arange(409), sizes)
    labels[rng.random(len(labels)) < 0.03] = -1
    keep = stratified_subset(labels, 10_000, seed=3)
    assert len(keep) == 10_000 and len(np.unique(keep)) == 10_000 and np.all(np.diff(keep) > 0)
    full = pd.Series(labels).value_counts()
    kept = pd.Series(labels[keep]).value_counts()
    assert set(kept.index) == set(full.index)  # no cluster vanished
    small = full.index[full <= 5]
    assert (kept[small] == full[small]).all()  # clusters of <= 5 members are shown whole
    assert (kept[full.index[full > 5]] >= 5).all()
    # The rest of the budget is shared in proportion to what each cluster has beyond its 5.
    floor = np.minimum(full, 5)
    expected = floor + (full - floor) * (10_000 - floor.sum()) / (full - floor).sum()
    assert (np.abs(kept[full.index] - expected) <= 1).all()
    assert np.array_equal(keep, stratified_subset(labels, 10_000, seed=3))  # seeded


def test_stratified_subset_refuses_a_budget_below_the_cluster_count():
    with pytest.raises(ValueError, match="number of clusters"):
        stratified_subset(np.arange(50), 10)
    assert np.array_equal(stratified_subset(np.zeros(7, int), 100), np.arange(7))


# ---------- thumbnails ----------

def test_tile_follows_the_aspect_ratio_and_never_upscales():
    assert thumbnail_tile([(1242, 375)] * 5) == (238, 72)  # KITTI: wide and readable
    assert thumbnail_tile([(1600, 900)]) == (128, 72)  # nuScenes
    assert thumbnail_tile([(28, 28)]) == (28, 28)  # Fashion-MNIST: native size
    assert thumbnail_tile([(1920, 1280), (1920, 886), (1920, 1280)]) == (108, 72)  # Waymo: median aspect
    with pytest.raises(ValueError):
        thumbnail_tile([])


def test_sprite_sheets_hold_each_image_in_its_slot(tmp_path):
    source = Numbered(700, size=(40, 20))
    layout = write_sprite_sheets((source.load(i) for i in range(700)), tmp_path, (40, 20), quality=95)
    assert layout["cols"] == 32 and layout["per_sheet"] == 32 * 32 and layout["count"] == 700
    assert layout["sheets"] == ["sheet_00000.jpg"]
    sheet = np.asarray(Image.open(tmp_path / "sheet_00000.jpg").convert("L")).astype(int)
    assert sheet.shape == (22 * 20, 32 * 40)  # cropped to the rows used
    for i in (0, 1, 33, 699):
        row, col = divmod(i, 32)
        assert abs(sheet[row * 20 + 10, col * 40 + 20] - (37 * i) % 256) <= 6, i


def test_sprite_sheets_split_across_files(tmp_path):
    layout = write_sprite_sheets((Image.new("RGB", (300, 300), "red") for _ in range(5)), tmp_path, (300, 300))
    assert layout["cols"] == 6 and layout["per_sheet"] == 36
    layout = write_sprite_sheets((Image.new("RGB", (10, 10)) for _ in range(2500)), tmp_path / "b", (10, 10))
    assert layout["sheets"] == ["sheet_00000.jpg", "sheet_00001.jpg", "sheet_00002.jpg"]  # 1024 per sheet


# ---------- the written page ----------

def test_explorer_writes_page_and_sheets_with_every_point(tmp_path):
    samples = _samples(3000)
    samples["likelihood_std"] = np.linspace(0, 0.2, len(samples))
    path = write_explorer(samples, Numbered(3000), tmp_path / "run_explorer.html")
    text, data = _page_data(path)
    assert external_resources(text) == [] and "deck.ScatterplotLayer" in text  # deck.gl inlined: opens offline
    assert data["n"] == data["total"] == 3000
    assert np.allclose(_decode(data["xyz"], np.float32).reshape(-1, 3), samples[["x", "y", "z"]], atol=1e-6)
    assert np.array_equal(_decode(data["cluster"], np.int32), samples.cluster_id)
    assert data["ids"] == samples.sample_id.tolist()
    assert data["known"] == ["likelihood", "weight", "cluster_size", "likelihood_std"]  # colour-by choices
    assert set(data["columns"]) == {"likelihood", "weight", "cluster_size", "likelihood_std", "camera"}
    camera = data["columns"]["camera"]
    assert camera["categories"] == ["FRONT", "SIDE_LEFT"]
    assert [camera["categories"][c] for c in _decode(camera["data"], np.int32)] == samples.camera.tolist()
    assert data["columns"]["likelihood_std"]["max"] == pytest.approx(0.2)
    # Thumbnails live beside the page, each point's slot holds its own image.
    thumbs = data["thumbs"]
    assert thumbs["folder"] == "run_explorer_files" and (thumbs["tile_w"], thumbs["tile_h"]) == (40, 20)
    assert len(thumbs["sheets"]) == 3
    index = _decode(thumbs["index"], np.uint32)
    assert sorted(index) == list(range(3000))
    order = np.argsort(index)
    assert np.all(np.diff(samples.cluster_id.to_numpy()[order]) >= 0)  # sprite order groups clusters
    for point in (0, 1234, 2999):
        sheet, slot = divmod(int(index[point]), thumbs["per_sheet"])
        image = np.asarray(Image.open(tmp_path / thumbs["folder"] / thumbs["sheets"][sheet]).convert("L")).astype(int)
        row, col = divmod(slot, thumbs["cols"])
        assert abs(image[row * 20 + 10, col * 40 + 20] - (37 * point) % 256) <= 8
    assert data["palette"][: len(data["clusterIds"])] == cluster_palette(12).tolist()
    assert data["params"]["thumb_height"] == 72 and data["params"]["deck.gl"] == "9.4.0"  # recorded in the page


def test_explorer_subset_is_stratified_and_rewrites_stale_sheets(tmp_path):
    samples = _samples(3000)
    path = tmp_path / "e.html"
    write_explorer(samples, Numbered(3000), path)
    write_explorer(samples, Numbered(3000), path, max_points=200, seed=1)
    _, data = _page_data(path)
    assert data["n"] == 200 and data["total"] == 3000
    assert set(_decode(data["cluster"], np.int32)) == set(samples.cluster_id)
    assert sorted(p.name for p in (tmp_path / "e_files").iterdir()) == ["sheet_00000.jpg"]


def test_explorer_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match=r"missing column\(s\) \['x', 'y', 'z'\]"):
        write_explorer(_samples(10).drop(columns=["x", "y", "z"]), Numbered(10), tmp_path / "e.html")
    with pytest.raises(ValueError, match="not in the source"):
        write_explorer(_samples(10), Numbered(5), tmp_path / "e.html")
    broken = _samples(10)
    broken.loc[3, "y"] = np.nan
    with pytest.raises(ValueError, match=r"1 samples have non-finite coordinates, e.g. \['img-00003'\]"):
        write_explorer(broken, Numbered(10), tmp_path / "e.html")
    assert not (tmp_path / "e.html").exists()


# ---------- deq explore ----------

def test_deq_explore_writes_page_projector_and_atlas_from_a_bank(tmp_path, capsys):
    from deqlib.bank import bank_from_labels, write_bank
    from deqlib.cli import main
    from deqlib.sources import open_source

    ids = open_source("fashion-mnist", split="train", max_images=300, seed=0).sample_ids
    rng = np.random.default_rng(0)
    labels = rng.integers(-1, 5, size=300)
    bank = bank_from_labels(ids, labels, coords=rng.normal(size=(300, 3)), metadata={"eta": 0.5, "gamma": 2.0})
    bank_path = write_bank(tmp_path / "fm.parquet", bank)
    page = tmp_path / "out" / "fm_explorer.html"
    vectors = rng.normal(size=(300, 24)).astype(np.float32)
    np.savez(tmp_path / "vectors.npz", vectors=vectors[::-1], sample_ids=np.array(ids[::-1]))  # another order
    code = main(["explore", str(bank_path), "--source", "fashion-mnist", "--output", str(page), "--no-progress",
                 "--projector", str(tmp_path / "proj"), "--embeddings", str(tmp_path / "vectors.npz"),
                 "--atlas", str(tmp_path / "fm_atlas.parquet")])
    assert code == 0
    out = capsys.readouterr().out
    assert f"deq explore: {page}: page" in out and "tensorboard --logdir" in out and "embedding-atlas" in out
    assert "24-d embedding vectors and the 3-D map" in out
    exported = np.loadtxt(tmp_path / "proj" / "embedding.tsv", delimiter="\t")
    order = [ids.index(s) for s in pd.read_csv(tmp_path / "proj" / "metadata.tsv", sep="\t").sample_id]
    assert np.allclose(exported, vectors[order], rtol=1e-5, atol=1e-6)  # matched by sample id, not by position
    _, data = _page_data(page)
    assert data["n"] == 300 and sorted(data["ids"]) == sorted(ids)
    assert (data["thumbs"]["tile_w"], data["thumbs"]["tile_h"]) == (28, 28)
    assert "class_name" in data["columns"]  # the source's metadata, merged on sample_id
    weight = _decode(data["columns"]["weight"]["data"], np.float32)
    likelihood = _decode(data["columns"]["likelihood"]["data"], np.float32)
    from deqlib.weights import gfl_weight
    assert np.allclose(weight, gfl_weight(likelihood.astype(float), eta=0.5, gamma=2.0), atol=1e-6)  # the bank's
    assert (tmp_path / "proj" / "projector_config.pbtxt").is_file() and (tmp_path / "fm_atlas.parquet").is_file()


def test_deq_explore_says_what_is_wrong(tmp_path, capsys):
    from deqlib.bank import bank_from_labels, write_bank
    from deqlib.cli import main

    no_coords = write_bank(tmp_path / "b.parquet", bank_from_labels(["train-00001", "train-00002"], [0, 0]))
    assert main(["explore", str(no_coords), "--output", str(tmp_path / "e.html")]) == 2
    assert "no 3-D coordinates" in capsys.readouterr().err
    alien = write_bank(tmp_path / "c.parquet", bank_from_labels(["not-an-id"], [0], coords=np.zeros((1, 3))))
    assert main(["explore", str(alien), "--output", str(tmp_path / "e.html")]) == 2
    assert "not in the source" in capsys.readouterr().err


# ---------- issue 19: progress bar, script-safe data ----------

def test_thumbnail_progress_bar_knows_its_total(tmp_path, capsys):
    write_explorer(_samples(300), Numbered(300), tmp_path / "e.html", progress=True)
    err = capsys.readouterr().err  # tqdm outside a notebook: a text bar on stderr
    assert "explorer thumbnails" in err and "300/300" in err and "/?" not in err  # was "300/?", never full


def test_inlined_data_escapes_markup_and_reads_back_exactly():
    from deqlib.plots.explorer import DECKGL_FILE, script_json

    hostile = ["<!--<script>x.png", "</script>", "a&b", "x > y", "a\u2028b\u2029c", "é\udcff", '"\\']
    text = script_json({"ids": hostile})
    assert not re.search("[<>&\u2028\u2029]", text)
    assert "\\u003c!--\\u003cscript\\u003e" in text
    assert json.loads(text) == {"ids": hostile}
    assert "<!--" not in DECKGL_FILE.read_text(encoding="utf-8")  # the inlined library cannot open a comment either


def test_a_title_or_id_holding_a_placeholder_is_not_substituted(tmp_path):
    samples = _samples(20)
    samples.loc[0, "sample_id"] = "/*__DATA__*/"

    class Renamed(Numbered):
        @property
        def sample_ids(self):
            return ["/*__DATA__*/"] + super().sample_ids[1:]

    path = write_explorer(samples, Renamed(20), tmp_path / "e.html", title="/*__DECKGL__*/ __TITLE__")
    text, data = _page_data(path)
    assert data["ids"][0] == "/*__DATA__*/" and text.count("const DATA = ") == 1
    assert "<title>/*__DECKGL__*/ __TITLE__</title>" in text


@pytest.mark.slow
def test_deq_explore_projector_takes_the_vectors_from_the_embedding_cache(tmp_path, monkeypatch, capsys,
                                                                         one_torch_thread):
    import warnings

    from deqlib.cli import main
    from deqlib.embed import embed_source
    from deqlib.sources import open_source

    monkeypatch.setenv("DEQ_DATA_DIR", str(tmp_path / "data"))
    bank_path = tmp_path / "bank.parquet"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["analyze", "--source", "fashion-mnist", "--max-images", "120", "--precision", "fp32",
                     "--device", "cpu", "--perplexity", "10", "--output", str(bank_path), "--no-progress"]) == 0
    capsys.readouterr()
    code = main(["explore", str(bank_path), "--output", str(tmp_path / "e.html"), "--no-progress",
                 "--projector", str(tmp_path / "proj"), "--pca-dims", "0"])
    assert code == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "projector vectors from the efficientnet-lite0 embedding cache (120 cached, 0 embedded now)" in out
    cached = embed_source(open_source("fashion-mnist", max_images=120), "efficientnet-lite0", progress=False,
                          cache_dir=tmp_path / "data" / "interim" / "embeddings", precision="fp32", device="cpu")
    assert cached.stats["n_embedded"] == 0
    ids = pd.read_csv(tmp_path / "proj" / "metadata.tsv", sep="\t").sample_id.tolist()
    expected = cached.vectors[[cached.sample_ids.index(s) for s in ids]]
    exported = np.loadtxt(tmp_path / "proj" / "embedding.tsv", delimiter="\t")
    assert exported.shape == (120, 1280)  # the encoder's real dimension, not the 3-D map's
    assert np.allclose(exported, expected, rtol=1e-5, atol=1e-6)
    # Default: a PCA-50 of them, named so in the projector.
    assert main(["explore", str(bank_path), "--output", str(tmp_path / "e.html"), "--no-progress",
                 "--projector", str(tmp_path / "pca")]) == 0
    config = (tmp_path / "pca" / "projector_config.pbtxt").read_text()
    assert re.search(r'tensor_name: "deqlib: embedding, PCA-50 of 1280-d \(\d+\.\d% of variance\)"\n  '
                     r'tensor_path: "embedding.tsv"\n  tensor_shape: 120\n  tensor_shape: 50', config)
    # Another encoder's weights than the bank's: refused, naming what differs.
    assert main(["explore", str(bank_path), "--output", str(tmp_path / "e.html"), "--no-progress",
                 "--projector", str(tmp_path / "x"), "--weights", "random"]) == 2
    assert "the bank's vectors came from efficientnet-lite0 with another weights" in capsys.readouterr().err


def _fake_fiftyone(datasets, fail=None):
    """A stand-in ``fiftyone`` module: the three functions load_dataset calls, over ``datasets`` by name."""
    import types

    module = types.ModuleType("fiftyone")

    def check():
        if fail:
            raise fail

    module.list_datasets = lambda: (check(), sorted(datasets))[1]
    module.dataset_exists = lambda name: (check(), name in datasets)[1]
    module.load_dataset = lambda name: (check(), datasets[name])[1]
    return module


def _fashion_bank(tmp_path, n=60):
    from deqlib.bank import bank_from_labels, write_bank
    from deqlib.sources import open_source

    source = open_source("fashion-mnist", split="train", max_images=n, seed=0)
    rng = np.random.default_rng(0)
    bank = bank_from_labels(source.sample_ids, rng.integers(-1, 4, n), coords=rng.normal(size=(n, 3)))
    return write_bank(tmp_path / "fm.parquet", bank), source


def test_deq_explore_fiftyone_adds_the_runs_fields_to_the_dataset(tmp_path, monkeypatch, capsys):
    import sys

    from explorerkit import FakeDataset

    from deqlib.bank import read_bank
    from deqlib.cli import main

    bank_path, source = _fashion_bank(tmp_path)
    locations = source.metadata().set_index("sample_id")["location"]
    picked = source.sample_ids[::7]
    dataset = FakeDataset([locations[s] for s in picked])
    monkeypatch.setitem(sys.modules, "fiftyone", _fake_fiftyone({"fashion": dataset}))
    code = main(["explore", str(bank_path), "--output", str(tmp_path / "e.html"), "--no-progress",
                 "--fiftyone", "fashion"])
    assert code == 0, capsys.readouterr().err
    assert (f"deq explore: FiftyOne dataset 'fashion': wrote deq_cluster_id, deq_cluster_size, deq_likelihood, "
            f"deq_weight, deq_tsne on {len(picked)} samples") in capsys.readouterr().out
    table = read_bank(bank_path).table.set_index("sample_id")
    for row, sample_id in zip(dataset.rows, picked):
        assert row["deq_likelihood"] == pytest.approx(table.likelihood[sample_id])
        assert row["deq_cluster_id"] == table.cluster_id[sample_id]
        assert row["deq_tsne"] == pytest.approx(table.loc[sample_id, ["x", "y", "z"]].tolist())


@pytest.mark.parametrize("case", ["not installed", "cannot start", "no such dataset"])
def test_deq_explore_fiftyone_failures_are_one_line(tmp_path, monkeypatch, capsys, case):
    import sys

    from deqlib.cli import main

    bank_path, _ = _fashion_bank(tmp_path)
    if case == "not installed":
        monkeypatch.setitem(sys.modules, "fiftyone", None)  # import fiftyone raises ImportError
    elif case == "cannot start":  # what fiftyone-db says on these machines (docs: ENVIRONMENT.md)
        error = RuntimeError("MongoDB could not be installed on your system.\nPlease install it yourself")
        monkeypatch.setitem(sys.modules, "fiftyone", _fake_fiftyone({}, fail=error))
    else:
        monkeypatch.setitem(sys.modules, "fiftyone", _fake_fiftyone({"other": None}))
    page = tmp_path / "e.html"
    code = main(["explore", str(bank_path), "--output", str(page), "--no-progress", "--fiftyone", "fashion"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    expected = {"not installed": "deq explore: error: --fiftyone needs the optional package 'fiftyone': pip install fiftyone",
                "cannot start": "deq explore: error: FiftyOne could not start (RuntimeError: MongoDB could not be "
                                "installed on your system.) to open dataset 'fashion'; its database, MongoDB, must be "
                                "able to run on this machine",
                "no such dataset": "deq explore: error: FiftyOne has no dataset 'fashion'; it has ['other']"}[case]
    assert err.startswith(expected)
    assert not page.exists()  # refused before the long work


@pytest.mark.slow
def test_deq_explore_fiftyone_with_the_real_package_fails_in_one_line(tmp_path, capsys):
    """Where fiftyone is installed it cannot start here (no MongoDB); where it is not, the install is named."""
    import importlib.util
    import subprocess
    import sys

    bank_path, _ = _fashion_bank(tmp_path)
    run = subprocess.run([sys.executable, "-m", "deqlib.cli", "explore", str(bank_path), "--output",
                          str(tmp_path / "e.html"), "--no-progress", "--fiftyone", "fashion"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr[-2000:]
    if importlib.util.find_spec("fiftyone") is None:
        assert "pip install fiftyone" in run.stderr
    else:
        assert "FiftyOne could not" in run.stderr


def test_deq_explore_signals_adds_a_colour_column_per_rarity_signal(tmp_path, capsys):
    from deqlib.bank import bank_from_labels, write_bank
    from deqlib.cli import main
    from deqlib.likelihood import RARITY_SIGNALS, RarityContext
    from deqlib.sources import open_source

    ids = open_source("fashion-mnist", split="train", max_images=200, seed=0).sample_ids
    rng = np.random.default_rng(1)
    bank = bank_from_labels(ids, rng.integers(-1, 4, size=200), coords=rng.normal(size=(200, 3)))
    bank_path = write_bank(tmp_path / "fm.parquet", bank)
    vectors = (rng.normal(size=(200, 16)) + 5.0).astype(np.float32)
    np.savez(tmp_path / "vectors.npz", vectors=vectors[::-1], sample_ids=np.array(ids[::-1]))  # another order
    page = tmp_path / "fm.html"
    assert main(["explore", str(bank_path), "--source", "fashion-mnist", "--output", str(page), "--no-progress",
                 "--embeddings", str(tmp_path / "vectors.npz"), "--signals", "lof,multi-granularity+lof"]) == 0
    assert "colour menu gains signal:lof, signal:multi-granularity+lof" in capsys.readouterr().out
    _, data = _page_data(page)
    order = [ids.index(s) for s in data["ids"]]
    for name in ("lof", "multi-granularity+lof"):
        column = data["columns"][f"signal:{name}"]
        assert column["kind"] == "num"
        expected = RARITY_SIGNALS.create(name).fit(RarityContext(embeddings=vectors)).likelihood_
        np.testing.assert_allclose(_decode(column["data"], np.float32), expected[order], rtol=1e-6)
    assert main(["explore", str(bank_path), "--source", "fashion-mnist", "--output", str(page), "--no-progress",
                 "--embeddings", str(tmp_path / "vectors.npz"), "--signals", "loff"]) == 2
    assert "unknown rarity signal 'loff'" in capsys.readouterr().err
