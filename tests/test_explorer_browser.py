"""Open the HTML explorer in Debian's headless Chromium, hover a point, check its thumbnail."""

import base64
import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deqlib.plots.explorer import write_explorer
from deqlib.sources import ImageSource

pytestmark = pytest.mark.browser

COLORS = {"red": (230, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 230)}


class SolidColours(ImageSource):
    """Three solid-colour images, so a thumbnail's pixels say which sample it is."""

    name = "solid"

    @property
    def sample_ids(self):
        return list(COLORS)

    def load(self, index, draft=None):
        return Image.new("RGB", (32, 32), list(COLORS.values())[index])

    def metadata(self):
        return pd.DataFrame({"sample_id": self.sample_ids, "location": self.sample_ids})


def _samples():
    # Far apart in 3-D, so each point owns a large area of the canvas.
    return pd.DataFrame({
        "sample_id": list(COLORS), "x": [-10.0, 0.0, 10.0], "y": [-10.0, 0.0, 10.0], "z": [0.0, 0.0, 0.0],
        "cluster_id": [0, 1, -1], "cluster_size": [5, 3, 1], "likelihood": [1.0, 0.6, 0.2],
        "weight": [0.5, 0.51, 0.66]})


def test_hover_shows_the_hovered_samples_thumbnail(tmp_path):
    from playwright.sync_api import sync_playwright

    path = write_explorer(_samples(), SolidColours(), tmp_path / "explorer.html", marker_size=25)
    html = path.read_text()
    assert "<script src" not in html and "Plotly.newPlot" in html  # plotly.js inlined: works offline
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--use-gl=swiftshader", "--enable-unsafe-swiftshader"])
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        page.goto(path.as_uri())
        page.wait_for_selector("body[data-ready='1']", timeout=30_000)
        box = page.locator("#plot").bounding_box()
        hovered = None
        # Sweep the mouse over the plot until plotly reports a hover (WebGL picking).
        for fy in np.linspace(0.2, 0.8, 25):
            for fx in np.linspace(0.2, 0.8, 25):
                page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
                index = page.locator("#thumb").get_attribute("data-index")
                if index is not None:
                    hovered = int(index)
                    break
            if hovered is not None:
                break
        assert hovered is not None, "no hover event fired anywhere over the plot"
        sample_id = page.locator("#field-sample_id").inner_text()
        src = page.locator("#thumb").get_attribute("src")
        page.screenshot(path=str(tmp_path / "explorer.png"))
        browser.close()
    assert sample_id == list(COLORS)[hovered]
    thumb = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB")
    pixel = np.asarray(thumb)[thumb.height // 2, thumb.width // 2].astype(int)
    assert np.abs(pixel - np.array(COLORS[sample_id])).max() < 30, (sample_id, pixel)
