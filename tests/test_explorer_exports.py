"""Exports to TensorBoard's Embedding Projector, Embedding Atlas and FiftyOne: files, then the real viewers."""

import io
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

from deqlib.export import require
from deqlib.export.atlas import write_atlas_table
from deqlib.export.fiftyone import add_fields
from deqlib.export.projector import write_projector
from deqlib.sources import ImageSource
from explorerkit import CHROMIUM_ARGS, FakeDataset

# Both viewers ask WebGL for failIfMajorPerformanceCaveat, which software WebGL (headless, no GPU) refuses;
# a browser on a GPU never sees this. The test drops the flag so the viewers run here at all.
ALLOW_SOFTWARE_WEBGL = """(() => { const get = HTMLCanvasElement.prototype.getContext;
  HTMLCanvasElement.prototype.getContext = function (type, attrs) {
    if (attrs) attrs = Object.assign({}, attrs, {failIfMajorPerformanceCaveat: false});
    return get.call(this, type, attrs); }; })();"""
# Text of a page including its shadow DOMs (both viewers are web components).
DEEP_TEXT = """() => { const out = []; const walk = node => { if (node.nodeType === 3) out.push(node.textContent);
  if (node.shadowRoot) walk(node.shadowRoot);
  if (node.tagName === "IFRAME") { try { walk(node.contentDocument.body); } catch (e) {} } for (const c of node.childNodes || []) walk(c); };
  walk(document.body); return out.join(" ").replace(/\\s+/g, " "); }"""


class Shades(ImageSource):
    """``n`` wide images (60 x 20); image i is a flat grey (i * 7) % 256 with a red left half when i is odd."""

    name = "shades"

    def __init__(self, n):
        self.n = n

    @property
    def sample_ids(self):
        return [f"s{i:04d}" for i in range(self.n)]

    def load(self, index, draft=None):
        image = Image.new("RGB", (60, 20), ((index * 7) % 256,) * 3)
        if index % 2:
            image.paste((255, 0, 0), (0, 0, 30, 20))
        return image

    def metadata(self):
        return pd.DataFrame({"sample_id": self.sample_ids, "location": [f"/data/{s}.png" for s in self.sample_ids]})


def _samples(n=120, seed=0):
    rng = np.random.default_rng(seed)
    cluster = rng.integers(-1, 6, n)
    return pd.DataFrame({"sample_id": [f"s{i:04d}" for i in range(n)], "location": [f"/data/s{i:04d}.png" for i in range(n)],
                         "x": rng.normal(size=n), "y": rng.normal(size=n), "z": rng.normal(size=n),
                         "cluster_id": cluster, "cluster_size": 20, "likelihood": rng.uniform(0.1, 1, n),
                         "weight": rng.uniform(0.5, 1, n), "likelihood_std": rng.uniform(0, 0.1, n),
                         "weather": rng.choice(["rain", "sun\tny"], n), "is_noise": cluster < 0})


# ---------- TensorBoard Embedding Projector ----------

def test_projector_files_hold_every_point(tmp_path):
    samples = _samples()
    folder = write_projector(samples, Shades(120), tmp_path / "proj", thumb_size=40)
    config = (folder / "projector_config.pbtxt").read_text()
    assert config.count("embeddings {") == 1  # no vectors given: the 3-D map only
    assert 'tensor_path: "tsne3d.tsv"' in config and "tensor_shape: 120\n  tensor_shape: 3" in config
    assert 'image_path: "sprite.png"' in config and config.count("single_image_dim: 40") == 2
    tensor = np.loadtxt(folder / "tsne3d.tsv", delimiter="\t")
    assert np.allclose(tensor, samples[["x", "y", "z"]], atol=1e-5)
    metadata = pd.read_csv(folder / "metadata.tsv", sep="\t")
    assert list(metadata.columns) == ["sample_id", "cluster_id", "cluster_size", "likelihood", "weight",
                                      "likelihood_std", "weather"]  # bookkeeping columns left out
    assert metadata.sample_id.tolist() == samples.sample_id.tolist()
    assert set(metadata.weather) == {"rain", "sun ny"}  # a tab inside a value would shift the columns
    sprite = np.asarray(Image.open(folder / "sprite.png").convert("RGB")).astype(int)
    assert sprite.shape == (11 * 40, 11 * 40, 3)  # square grid, ceil(sqrt(120)) = 11 per side
    for i in (0, 13, 119):  # a 60 x 20 image shrinks to 40 x 13, centred in its tile
        row, col = divmod(i, 11)
        right = sprite[row * 40 + 20, col * 40 + 30]
        assert np.abs(right - (i * 7) % 256).max() <= 8, i
        left = sprite[row * 40 + 20, col * 40 + 8]
        assert (left[0] > 200 and left[1] < 60) == bool(i % 2), i


def test_projector_subset_and_sprite_limit(tmp_path):
    samples = _samples(400)
    folder = write_projector(samples, Shades(400), tmp_path / "p", max_points=60, vectors=np.ones((400, 8)))
    assert "tensor_shape: 60\n  tensor_shape: 8" in (folder / "projector_config.pbtxt").read_text()
    metadata = pd.read_csv(folder / "metadata.tsv", sep="\t")
    assert set(metadata.cluster_id) == set(samples.cluster_id)  # stratified: every cluster kept
    with pytest.raises(ValueError, match="one row per sample"):
        write_projector(samples, None, tmp_path / "q", vectors=np.ones((10, 8)))


def _blocks(config):
    """(tensor_name, tensor_path, shape) of each embedding in a projector_config.pbtxt, in order."""
    return [(name, path, (int(a), int(b))) for name, path, a, b in re.findall(
        r'tensor_name: "(.*?)"\n  tensor_path: "(.*?)"\n  tensor_shape: (\d+)\n  tensor_shape: (\d+)', config)]


def test_projector_carries_the_real_vectors_beside_the_map(tmp_path):
    samples = _samples()
    vectors = np.random.default_rng(1).normal(size=(120, 16)) * [10] + 3  # as they are: 16 <= 50 dimensions
    folder = write_projector(samples, None, tmp_path / "proj", vectors=vectors)
    assert _blocks((folder / "projector_config.pbtxt").read_text()) == [
        ("deqlib: embedding, 16-d", "embedding.tsv", (120, 16)),  # first: what the projector opens
        ("deqlib: t-SNE 3-D map", "tsne3d.tsv", (120, 3))]
    assert np.allclose(np.loadtxt(folder / "embedding.tsv", delimiter="\t"), vectors, rtol=1e-5, atol=1e-5)
    assert np.allclose(np.loadtxt(folder / "tsne3d.tsv", delimiter="\t"), samples[["x", "y", "z"]], atol=1e-5)


@pytest.mark.slow
def test_projector_exports_a_pca_50_of_wide_vectors_with_the_same_neighbours(tmp_path):
    from sklearn.decomposition import PCA
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(2)
    vectors = rng.normal(size=(120, 40)) @ rng.normal(size=(40, 1280))  # 1280-d, rank 40: PCA-50 keeps it all
    folder = write_projector(_samples(), None, tmp_path / "proj", vectors=vectors)
    (name, path, shape), _ = _blocks((folder / "projector_config.pbtxt").read_text())
    assert (name, path, shape) == ("deqlib: embedding, PCA-50 of 1280-d (100.0% of variance)", "embedding.tsv", (120, 50))
    exported = np.loadtxt(folder / "embedding.tsv", delimiter="\t")
    reference = PCA(n_components=50, svd_solver="full").fit_transform(vectors)
    assert np.allclose(np.abs(exported[:, :40]), np.abs(reference[:, :40]), rtol=1e-4, atol=1e-3 * np.abs(reference).max())
    # The projector's nearest neighbours on this tensor are those of the real vectors, not of the 3-D map.
    real = NearestNeighbors(n_neighbors=6).fit(vectors).kneighbors(vectors, return_distance=False)
    seen = NearestNeighbors(n_neighbors=6).fit(exported).kneighbors(exported, return_distance=False)
    tsne = NearestNeighbors(n_neighbors=6).fit(_samples()[["x", "y", "z"]]).kneighbors(return_distance=False)
    assert (real == seen).mean() > 0.99 and (real[:, 1:] == tsne[:, :5]).mean() < 0.2
    folder = write_projector(_samples(), None, tmp_path / "raw", vectors=vectors, pca_dims=None)
    assert np.allclose(np.loadtxt(folder / "embedding.tsv", delimiter="\t"), vectors, rtol=1e-5, atol=1e-4)


def test_projector_refuses_vectors_it_cannot_draw(tmp_path):
    vectors = np.ones((120, 4))
    vectors[[3, 9]] = np.nan
    with pytest.raises(ValueError, match=r"2 embedding vectors hold NaN or infinite values, e.g. of \['s0003', 's0009'\]"):
        write_projector(_samples(), None, tmp_path / "p", vectors=vectors)
    with pytest.raises(ValueError, match="pca_dims must be >= 1"):
        write_projector(_samples(), None, tmp_path / "p", vectors=np.ones((120, 4)), pca_dims=0)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(command, port, timeout=120):
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return process
        if process.poll() is not None:
            raise RuntimeError(f"{command[0]} exited: {process.stdout.read()[-2000:]}")
        time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"{command[0]} did not listen on port {port} within {timeout}s")


def _get(port, route):
    from urllib.request import urlopen

    try:
        with urlopen(f"http://127.0.0.1:{port}{route}", timeout=30) as response:
            return response.read().decode()
    except OSError:
        return ""


def _deep_text_until(frame_of, needles, timeout=240):
    deadline, text = time.time() + timeout, ""
    while time.time() < deadline:
        frame = frame_of()
        if frame is not None:
            try:
                text = frame.evaluate(DEEP_TEXT)
            except Exception:  # the frame navigated while we read it
                text = ""
            if all(n in text for n in needles):
                return frame, text
        time.sleep(1)
    raise AssertionError(f"never saw {needles}; last text: {text[:1500]}")


@pytest.mark.browser
def test_tensorboard_projector_lists_the_points_and_metadata(tmp_path):
    from playwright.sync_api import sync_playwright

    require("tensorboard", "tensorboard", "this test")
    samples = _samples()
    vectors = np.random.default_rng(3).normal(size=(120, 16))
    folder = write_projector(samples, Shades(120), tmp_path / "proj", vectors=vectors)
    port = _free_port()
    server = _serve([str(Path(sys.executable).with_name("tensorboard")), "--logdir", str(folder),
                     "--host", "127.0.0.1", "--port", str(port)], port)
    try:
        assert _get(port, "/data/plugin/projector/runs") == '["."]'  # the projector found the config
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.add_init_script(ALLOW_SOFTWARE_WEBGL)
            page.goto(f"http://127.0.0.1:{port}/#projector")

            # It opens the real vectors (16-d), not the 3-D map; both tensors are offered.
            _, text = _deep_text_until(lambda: page.main_frame, ["Points: 120", "Dimension: 16", "metadata.tsv",
                                                                 "deqlib: embedding, 16-d", "deqlib: t-SNE 3-D map"])
            frame = next(f for f in page.frames if "projector_binary" in f.url)
            assert "WebGL" not in text  # no "your browser does not have WebGL" dialog
            # The metadata columns are what the projector offers to label, colour and search by.
            for column in ("sample_id", "cluster_id", "likelihood", "weight", "likelihood_std", "weather"):
                assert re.search(rf"\b{column}\b", text), column
            # Search by sample id, as a user would: the projector says how many points match.
            search = frame.locator("vz-projector-inspector-panel input").first
            search.fill("s0042")
            _deep_text_until(lambda: page.main_frame, ["1 matches"], timeout=60)
            browser.close()
    finally:
        server.kill()
        server.wait()


# ---------- Embedding Atlas ----------

def test_atlas_table_has_coordinates_columns_and_images(tmp_path):
    samples = _samples()
    path = write_atlas_table(samples, Shades(120), tmp_path / "atlas.parquet", thumb_height=15)
    table = pq.read_table(path).to_pandas()
    assert list(table.columns[:3]) == ["x", "y", "z"] and len(table) == 120
    assert {"sample_id", "cluster_id", "likelihood", "weight", "likelihood_std", "weather", "cluster_label",
            "image"} <= set(table.columns)
    assert "is_noise" not in table.columns and "location" not in table.columns
    assert table.cluster_label[table.cluster_id < 0].eq("noise").all()
    for i in (0, 7):
        image = Image.open(io.BytesIO(table.image[i]["bytes"])).convert("RGB")
        assert image.size == (45, 15)  # wide images stay wide
        assert table.image[i]["path"] == f"s{i:04d}.jpg"
        assert (np.asarray(image)[7, 5, 0] > 200 and np.asarray(image)[7, 5, 1] < 60) == bool(i % 2)


@pytest.mark.browser
def test_embedding_atlas_opens_the_table(tmp_path):
    from playwright.sync_api import sync_playwright

    require("embedding_atlas", "embedding-atlas", "this test")
    path = write_atlas_table(_samples(), Shades(120), tmp_path / "atlas.parquet")
    port = _free_port()
    server = _serve([str(Path(sys.executable).with_name("embedding-atlas")), str(path), "--x", "x", "--y", "y",
                     "--image", "image", "--host", "127.0.0.1", "--port", str(port), "--no-auto-port",
                     "--duckdb", "server"], port, timeout=240)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.add_init_script(ALLOW_SOFTWARE_WEBGL)
            page.goto(f"http://127.0.0.1:{port}/")
            _, text = _deep_text_until(lambda: page.main_frame, ["120 / 120 points", "cluster_label", "likelihood"])
            # The table view shows each row's thumbnail from the image column (decoded: 60 x 20 px).
            thumbnails = "Array.from(document.images).filter(e => e.src.startsWith('data:image/jpeg'))"
            page.wait_for_function(f"{thumbnails}.length >= 10 && {thumbnails}.every(e => e.complete && e.naturalWidth > 0)",
                                   timeout=60_000)
            images = page.evaluate(f"{thumbnails}.map(e => [e.naturalWidth, e.naturalHeight])")
            assert len(images) >= 10 and set(map(tuple, images)) == {(60, 20)}
            # Its 2-D map needs WebGPU, which headless Chromium without a GPU lacks; the page says so.
            assert "WebGPU is unavailable" in text
            for column in ("cluster_id", "weight", "weather", "sample_id"):
                assert column in text, column
            browser.close()
    finally:
        server.kill()
        server.wait()


# ---------- FiftyOne ----------

def test_fiftyone_fields_match_samples_by_file_path():
    samples = _samples()
    dataset = FakeDataset([f"/data/s{i:04d}.png" for i in (5, 0, 119)])
    written = add_fields(dataset, samples)
    assert written == ["deq_cluster_id", "deq_cluster_size", "deq_likelihood", "deq_weight", "deq_likelihood_std",
                       "deq_tsne"]
    for row, i in zip(dataset.rows, (5, 0, 119)):
        assert row["deq_cluster_id"] == samples.cluster_id[i] and isinstance(row["deq_cluster_id"], int)
        assert row["deq_likelihood"] == pytest.approx(samples.likelihood[i])
        assert row["deq_tsne"] == pytest.approx(samples.loc[i, ["x", "y", "z"]].tolist())


def test_fiftyone_refuses_samples_the_run_does_not_know():
    dataset = FakeDataset(["/data/s0001.png", "/elsewhere/x.png"])
    with pytest.raises(ValueError, match=r"1 of 2 dataset samples are not in the run, e.g. \['/elsewhere/x.png'\]"):
        add_fields(dataset, _samples())
    add_fields(dataset, _samples(), allow_missing=True)
    assert dataset.rows[1]["deq_likelihood"] is None and dataset.rows[0]["deq_likelihood"] is not None
    with pytest.raises(ValueError, match="no column 'path'"):
        add_fields(dataset, _samples(), key_column="path")


def test_missing_viewer_names_the_pip_install():
    with pytest.raises(ImportError, match="pip install fiftyone-not-a-package"):
        require("fiftyone_not_a_module", "fiftyone-not-a-package", "add_fields")
