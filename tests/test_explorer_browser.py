"""Open the HTML explorer in Debian's headless Chromium and check what it shows: hover, search, filters, colours."""

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deqlib.plots.explorer import NOISE_COLOR, write_explorer
from deqlib.sources import ImageSource, open_source
from explorerkit import launch, open_page, pixels

pytestmark = pytest.mark.browser

COLORS = {"red": (230, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 230)}
VIRIDIS = np.array([[68, 1, 84], [65, 68, 135], [42, 120, 142], [34, 168, 132], [122, 209, 81], [253, 231, 37]])


class SolidColours(ImageSource):
    """Three solid-colour wide frames (64 x 20, like a driving camera), so a thumbnail's pixels say which
    sample it is and its shape whether the aspect ratio survived."""

    name = "solid"

    @property
    def sample_ids(self):
        return list(COLORS)

    def load(self, index, draft=None):
        return Image.new("RGB", (64, 20), list(COLORS.values())[index])

    def metadata(self):
        return pd.DataFrame({"sample_id": self.sample_ids, "location": self.sample_ids})


def _open(p, path, width=1200, height=800):
    browser = launch(p)
    page, errors = open_page(browser, path.as_uri(), width=width, height=height)
    return browser, page, errors


def test_hover_shows_the_hovered_samples_thumbnail(tmp_path):
    from playwright.sync_api import sync_playwright

    samples = pd.DataFrame({
        "sample_id": list(COLORS), "x": [-10.0, 0.0, 10.0], "y": [-10.0, 0.0, 10.0], "z": [0.0, 0.0, 0.0],
        "cluster_id": [0, 1, -1], "cluster_size": [5, 3, 1], "likelihood": [1.0, 0.6, 0.2],
        "weight": [0.5, 0.51, 0.66]})
    path = write_explorer(samples, SolidColours(), tmp_path / "explorer.html", marker_size=12)
    with sync_playwright() as p:
        browser, page, errors = _open(p, path)
        box = page.locator("#plot").bounding_box()
        seen = {}
        for index in range(3):  # the mouse goes where the page draws each point
            x, y = page.evaluate(f"EXPLORER.project({index})")[:2]
            page.mouse.move(box["x"] + x, box["y"] + y)
            page.wait_for_function(f"document.getElementById('thumb').dataset.index === '{index}'", timeout=10_000)
            thumb = pixels(page, "#thumb")
            assert abs(thumb.shape[1] / thumb.shape[0] - 64 / 20) < 0.1  # shown as wide as the frame
            seen[page.locator("#field-sample_id").inner_text()] = thumb[thumb.shape[0] // 2, thumb.shape[1] // 2]
        browser.close()
    assert errors == []
    assert set(seen) == set(COLORS)
    for sample_id, pixel in seen.items():
        assert np.abs(pixel - np.array(COLORS[sample_id])).max() < 30, (sample_id, pixel)


@pytest.fixture(scope="module")
def fashion_explorer(tmp_path_factory):
    """10,000 Fashion-MNIST thumbnails on clustered synthetic coordinates (60 clusters + noise)."""
    folder = tmp_path_factory.mktemp("explorer")
    source = open_source("fashion-mnist", split="train", max_images=10_000, seed=0)
    rng = np.random.default_rng(0)
    n = len(source)
    share = rng.pareto(1.1, 60) + 0.05
    cluster = rng.choice(60, size=n, p=share / share.sum())
    xyz = rng.normal(0, 30, size=(60, 3))[cluster] + rng.normal(0, 1.5, size=(n, 3))
    cluster[rng.random(n) < 0.03] = -1
    sizes = pd.Series(cluster).map(pd.Series(cluster).value_counts()).to_numpy().copy()
    sizes[cluster < 0] = 1
    samples = pd.DataFrame({"sample_id": source.sample_ids, "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
                            "cluster_id": cluster, "cluster_size": sizes, "likelihood": sizes / sizes.max(),
                            "weight": 1 - sizes / sizes.max() / 2})
    samples = samples.merge(source.metadata()[["sample_id", "class_name"]], on="sample_id")
    return write_explorer(samples, source, folder / "fashion_explorer.html"), samples


def _near_viridis(pixels):
    ramp = np.concatenate([VIRIDIS[k] + np.linspace(0, 1, 20)[:, None] * (VIRIDIS[k + 1] - VIRIDIS[k])
                           for k in range(len(VIRIDIS) - 1)])
    return np.abs(pixels[:, None, :] - ramp[None]).max(axis=2).min(axis=1) < 30


def test_search_filter_colour_and_gallery_at_10000_points(fashion_explorer):
    from playwright.sync_api import sync_playwright

    path, samples = fashion_explorer
    target = samples.iloc[4321]
    sizes = samples.cluster_id[samples.cluster_id >= 0].value_counts()
    rarest = int(sizes.index[sizes == sizes.min()].min())  # the page breaks ties by cluster id
    with sync_playwright() as p:
        browser, page, errors = _open(p, path)
        assert page.locator("#shown-count").inner_text() == "10,000 of 10,000 points shown"
        legend = page.locator("#legend .item").all_inner_texts()
        assert legend[0] == f"noise: {(samples.cluster_id < 0).sum()} samples"  # noise first, then rarest
        assert legend[1] == f"cluster {rarest}: {sizes.min()} samples"

        # Search by id: the panel shows the sample, the page says where it is.
        page.fill("#search", target.sample_id)
        page.press("#search", "Enter")
        page.wait_for_function(f"document.getElementById('thumb').dataset.index === '4321'", timeout=10_000)
        assert page.locator("#field-sample_id").inner_text() == target.sample_id
        assert page.locator("#field-class_name").inner_text() == target.class_name
        assert page.locator("#search-result").inner_text() == f"found {target.sample_id} (cluster {target.cluster_id})"
        page.fill("#search", "no-such-id")
        page.press("#search", "Enter")
        assert "no sample id contains" in page.locator("#search-result").inner_text()

        # Colour by cluster: saturated cluster colours, grey noise, no viridis yet.
        plot = pixels(page, "#plot").reshape(-1, 3)
        drawn = plot[np.abs(plot - 255).max(axis=1) > 40]
        assert len(drawn) > 2000
        grey = np.abs(drawn - np.array(NOISE_COLOR)).max(axis=1) < 12
        assert 0 < grey.mean() < 0.2  # some noise, drawn in its own grey
        # Colour by likelihood: the points turn to the ramp, the legend shows its range.
        page.select_option("#color-by", "likelihood")
        page.wait_for_function("document.getElementById('legend-min') !== null")
        assert float(page.locator("#legend-min").inner_text()) == pytest.approx(samples.likelihood.min(), rel=1e-3)
        assert page.locator("#legend-max").inner_text() == "1"
        assert "log scale" in page.locator("#legend").inner_text()
        page.wait_for_timeout(500)
        plot = pixels(page, "#plot").reshape(-1, 3)
        recoloured = plot[np.abs(plot - 255).max(axis=1) > 40]
        assert _near_viridis(recoloured).mean() > 0.9 > _near_viridis(drawn).mean()

        # Filters: a likelihood range, then a metadata value on top; then one cluster.
        page.fill("#max-likelihood", "0.05")
        page.press("#max-likelihood", "Enter")
        page.click("#apply")
        low = samples.likelihood <= 0.05
        assert page.locator("#shown-count").inner_text() == f"{low.sum():,} of 10,000 points shown"
        page.select_option("#cat-class_name", label="Sandal")
        both = low & (samples.class_name == "Sandal")
        assert page.locator("#shown-count").inner_text() == f"{both.sum():,} of 10,000 points shown"
        shown = np.array(page.evaluate("Array.from(EXPLORER.state.visible)"))
        assert np.array_equal(shown, np.flatnonzero(both))
        page.click("#reset")
        assert page.locator("#shown-count").inner_text() == "10,000 of 10,000 points shown"

        # Select the rarest cluster from the legend: it is isolated and its gallery shows its images.
        page.select_option("#color-by", "cluster")
        page.locator(f"#legend .item[data-cluster='{rarest}']").click()
        assert page.locator("#shown-count").inner_text() == f"{sizes.min():,} of 10,000 points shown"
        titles = page.locator("#gallery .tile").evaluate_all("tiles => tiles.map(t => t.title)")
        assert sorted(titles) == sorted(samples.sample_id[samples.cluster_id == rarest])
        page.wait_for_function("Array.from(document.querySelectorAll('#gallery .tile'))"
                               ".every(t => t.style.backgroundImage !== '')", timeout=10_000)
        tile = pixels(page, "#gallery .tile >> nth=0")
        assert tile.std() > 10  # an image, not an empty box
        assert errors == []
        browser.close()


SHOWN_CURVES = """() => document.getElementById('fig').data
  .filter(t => t.meta && t.meta.role === 'selectable' && t.visible === true && t.opacity === 1)
  .map(t => [t.meta.eta, t.meta.gamma])"""


def _drag_slider(page, slider, tick, first_ticks):
    grip = page.locator(".slider-grip-rect").nth(slider).bounding_box()
    target = page.locator(".slider-tick-rect").nth(slider * first_ticks + tick).bounding_box()
    page.mouse.move(grip["x"] + grip["width"] / 2, grip["y"] + grip["height"] / 2)
    page.mouse.down()
    page.mouse.move(target["x"] + target["width"] / 2, grip["y"] + grip["height"] / 2, steps=4)
    page.mouse.up()
    page.wait_for_timeout(150)


def test_focal_loss_sliders_show_one_curve_at_every_position_eta_first(tmp_path):
    from playwright.sync_api import sync_playwright

    from deqlib.plots.paper import INTERACTIVE_ETAS, INTERACTIVE_GAMMAS, figure3_interactive

    path = tmp_path / "figure3.html"
    figure3_interactive(initial_eta=1.0, initial_gamma=5.0).write_html(path, include_plotlyjs=True, div_id="fig")
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        page.goto(path.as_uri())
        page.wait_for_selector(".slider-grip-rect")
        seen = []
        for tick, eta in enumerate(INTERACTIVE_ETAS):  # eta first: gamma never touched yet
            _drag_slider(page, 0, tick, len(INTERACTIVE_ETAS))
            seen.append(page.evaluate(SHOWN_CURVES))
            area = page.locator(".bglayer .bg").first.bounding_box()  # the axes' area, not the labels
            plot = np.asarray(Image.open(io.BytesIO(page.screenshot(clip=area))).convert("RGB")).astype(int).reshape(-1, 3)
            assert (plot.max(axis=1) < 40).sum() > 200, f"no black curve drawn at eta={eta}"
        assert seen == [[[eta, 5.0]] for eta in INTERACTIVE_ETAS]
        _drag_slider(page, 1, 0, len(INTERACTIVE_ETAS))  # then gamma, and eta again
        assert page.evaluate(SHOWN_CURVES) == [[INTERACTIVE_ETAS[-1], INTERACTIVE_GAMMAS[0]]]
        _drag_slider(page, 0, 2, len(INTERACTIVE_ETAS))
        assert page.evaluate(SHOWN_CURVES) == [[INTERACTIVE_ETAS[2], INTERACTIVE_GAMMAS[0]]]
        browser.close()


def test_in_notebook_3d_figure_title_clear_of_its_buttons(tmp_path):
    from playwright.sync_api import sync_playwright

    from deqlib.plots.clusters import cluster_scatter_3d

    samples = pd.DataFrame({"sample_id": ["a", "b", "c", "d"], "x": [0.0, 1, 2, 3], "y": [0.0, 1, 0, 1],
                            "z": [0.0, 0, 1, 1], "cluster_id": [0, 0, 1, -1], "cluster_size": [2, 2, 1, 1],
                            "likelihood": [1.0, 1.0, 0.123456789, 0.5], "weight": [0.5, 0.5, 0.98765432, 0.6],
                            "label": [1, 1, 2, 3], "class_name": ["x", "x", "y", "z"]})
    figure = cluster_scatter_3d(samples)
    assert [b.label for b in figure.layout.updatemenus[0].buttons] == ["cluster", "likelihood", "weight", "label"]
    path = tmp_path / "scatter.html"
    figure.write_html(path, include_plotlyjs=True)
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1000, "height": 750})
        page.goto(path.as_uri())
        page.wait_for_selector(".gtitle")
        title = page.locator(".gtitle").bounding_box()
        buttons = page.locator(".updatemenu-button").evaluate_all(
            "els => els.map(e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })")
        browser.close()
    assert len(buttons) == 4
    for left, top, right, bottom in buttons:
        overlaps = (left < title["x"] + title["width"] and title["x"] < right
                    and top < title["y"] + title["height"] and title["y"] < bottom)
        assert not overlaps, (title, (left, top, right, bottom))
    assert ":.4g}" in figure.data[0].hovertemplate  # hover values rounded


def test_level_of_detail_while_the_view_moves(tmp_path):
    from playwright.sync_api import sync_playwright

    rng = np.random.default_rng(0)
    n = 3000
    cluster = np.where(rng.random(n) < 0.005, 7, rng.integers(0, 5, n))  # cluster 7 is rare
    sizes = pd.Series(cluster).map(pd.Series(cluster).value_counts()).to_numpy()
    samples = pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "x": rng.normal(size=n),
                            "y": rng.normal(size=n), "z": rng.normal(size=n), "cluster_id": cluster,
                            "cluster_size": sizes, "likelihood": sizes / sizes.max()})

    class Tiny(ImageSource):
        sample_ids = list(samples.sample_id)

        def load(self, index, draft=None):
            return Image.new("RGB", (8, 8), (index % 256, 0, 0))

        def metadata(self):
            return pd.DataFrame({"sample_id": self.sample_ids, "location": self.sample_ids})

    path = write_explorer(samples, Tiny(), tmp_path / "lod.html", lod_points=400)
    with sync_playwright() as p:
        browser, page, errors = _open(p, path)
        assert page.evaluate("EXPLORER.drawn()") == [["points", n]]
        box = page.locator("#plot").bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] / 2 + 80, box["y"] + box["height"] / 2 + 30, steps=5)
        drawn = page.evaluate("EXPLORER.drawn()")  # mid-drag: the subset only
        page.mouse.up()
        page.wait_for_function("EXPLORER.drawn()[0][0] === 'points'", timeout=10_000)
        after = page.evaluate("EXPLORER.drawn()")
        browser.close()
    assert errors == []
    assert drawn[0][0] == "points-lod" and len(drawn) == 1
    counts = np.bincount(cluster)
    assert 0 < counts[7] <= 20  # the rare cluster is drawn whole, the others keep 20 and then every 8th
    expected = sum(min(c, 20) + max(0, c // 8 - 20 // 8) for c in counts if c)
    assert drawn[0][1] == expected
    assert after == [["points", n]]


def test_colour_by_a_rarity_signal_column(tmp_path):
    """`deq explore --signals` adds 'signal:NAME' columns: the colour menu offers them and the page draws their ramp."""
    from playwright.sync_api import sync_playwright

    from deqlib.likelihood import RarityContext, signal_columns

    source = open_source("fashion-mnist", split="train", max_images=300, seed=0)
    pixels_ = np.stack([np.asarray(source.load(i))[:, :, 0] for i in range(300)]).reshape(300, -1) / 255.0
    rng = np.random.default_rng(0)
    cluster = rng.integers(0, 6, 300)
    xyz = rng.normal(0, 20, size=(6, 3))[cluster] + rng.normal(0, 1.5, size=(300, 3))
    sizes = np.bincount(cluster)[cluster]
    samples = pd.DataFrame({"sample_id": source.sample_ids, "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
                            "cluster_id": cluster, "cluster_size": sizes, "likelihood": sizes / sizes.max()})
    columns = signal_columns(RarityContext(embeddings=pixels_), ["lof", "multi-granularity+lof"])
    samples = samples.assign(**columns)
    path = write_explorer(samples, source, tmp_path / "signals.html", marker_size=4)
    with sync_playwright() as p:
        browser, page, errors = _open(p, path)
        options = page.locator("#color-by option").all_inner_texts()
        assert "signal:lof" in options and "signal:multi-granularity+lof" in options
        plot = pixels(page, "#plot").reshape(-1, 3)
        drawn = plot[np.abs(plot - 255).max(axis=1) > 40]
        page.select_option("#color-by", "signal:multi-granularity+lof")
        page.wait_for_function("document.getElementById('legend-min') !== null")
        fused = columns["signal:multi-granularity+lof"]
        assert float(page.locator("#legend-min").inner_text()) == pytest.approx(fused.min(), rel=1e-2)
        assert page.locator("#legend-max").inner_text() == "1"
        assert "signal:multi-granularity+lof" in page.locator("#legend").inner_text()
        page.wait_for_timeout(500)
        plot = pixels(page, "#plot").reshape(-1, 3)
        recoloured = plot[np.abs(plot - 255).max(axis=1) > 40]
        assert len(recoloured) > 200 and _near_viridis(recoloured).mean() > 0.9 > _near_viridis(drawn).mean()
        assert errors == []
        browser.close()
