"""What the explorer's browser tests share: Chromium's options, opening a page, a tiny HTTP server, image sources."""

from __future__ import annotations

import functools
import http.server
import io
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deqlib.sources import ImageSource

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--use-gl=swiftshader", "--enable-unsafe-swiftshader"]

#: Ids a hostile file or folder name can produce: HTML, script and comment openers, quotes, template
#: literals, CSV metacharacters, line and paragraph separators, non-ASCII text.
HOSTILE_IDS = [
    "<!--<script>x.png", "</script><script>window.__pwned = 1</script>", "<script>window.__pwned = 2</script>",
    '"; window.__pwned = 3; "', "'; window.__pwned = 4; '", '<img src=x onerror="window.__pwned = 5">',
    "${window.__pwned = 6}", "`tick`", "<!-- open comment", "--> close comment", "<![CDATA[x]]>", "]]>",
    "&amp;&lt;&#60;", "a\u2028b", "c\u2029d", "\\u003c/script\\u003e", 'comma,"quote"', "line\nbreak",
    "carriage\rreturn", "tab\tid", "=HYPERLINK(\"http://x\")", " spaced ", "ünïcode ✓ 🚗", "\\", "/*__DATA__*/",
]


def launch(p):
    return p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium per test module (import this fixture into the module)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = launch(p)
        yield chromium
        chromium.close()


def open_page(browser, url: str, width: int = 1200, height: int = 800, timeout_ms: int = 60_000):
    """A page at ``url`` once the explorer has drawn its first frame; page errors and dialogs are recorded."""
    page = browser.new_page(viewport={"width": width, "height": height}, accept_downloads=True)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: (errors.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']", timeout=timeout_ms)
    return page, errors


def pixels(page, selector) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(page.locator(selector).screenshot())).convert("RGB")).astype(int)


def projections(page, n: int) -> np.ndarray:
    """Screen positions (plot pixels) of points 0..n-1 as the page draws them now."""
    return np.array(page.evaluate(f"Array.from({{length: {n}}}, (_, i) => EXPLORER.project(i).slice(0, 2))"))


def hover(page, index: int):
    """Move the mouse onto point ``index``; returns the plot box."""
    box = page.locator("#plot").bounding_box()
    x, y = page.evaluate(f"EXPLORER.project({index})")[:2]
    page.mouse.move(box["x"] + x, box["y"] + y)
    return box


@contextmanager
def serve(folder: Path, delays: dict[str, float] | None = None):
    """Serve ``folder`` over HTTP on a free local port; a file named in ``delays`` is answered that many
    seconds late (a slow sheet). Yields the base URL."""
    delays = delays or {}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            for name, seconds in delays.items():
                if self.path.endswith(name):
                    time.sleep(seconds)
            return super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def colour_of(i: int) -> tuple[int, int, int]:
    """A flat colour per index, far from white, varied enough that neighbours differ."""
    return ((i * 97) % 200 + 20, (i * 57 + 90) % 200 + 20, (i * 31 + 160) % 200 + 20)


class Coloured(ImageSource):
    """Images ``size`` px, image i a flat :func:`colour_of` (i); ids given (default ``s00000`` ...)."""

    name = "coloured"

    def __init__(self, ids, size=(28, 28)):
        self.ids, self.size = [str(s) for s in ids], size

    @property
    def sample_ids(self):
        return self.ids

    def load(self, index, draft=None):
        return Image.new("RGB", self.size, colour_of(index))

    def metadata(self):
        return pd.DataFrame({"sample_id": self.ids, "location": self.ids})


def table(ids, xyz, cluster, **columns) -> pd.DataFrame:
    """A samples table for write_explorer: ids, coordinates, clusters (sizes and likelihoods from them)."""
    cluster = np.asarray(cluster)
    sizes = pd.Series(cluster).map(pd.Series(cluster).value_counts()).to_numpy().copy()
    sizes[cluster < 0] = 1
    xyz = np.asarray(xyz, dtype=float)
    return pd.DataFrame({"sample_id": list(ids), "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
                         "cluster_id": cluster, "cluster_size": sizes, "likelihood": sizes / sizes.max(), **columns})


class FakeDataset:
    """The two methods of a FiftyOne dataset that add_fields uses, with FiftyOne's semantics."""

    def __init__(self, filepaths):
        self.rows = [{"filepath": f} for f in filepaths]

    def values(self, field):
        return [row.get(field) for row in self.rows]

    def set_values(self, field, values, key_field=None):
        assert isinstance(values, dict) and key_field == "filepath"
        for row in self.rows:
            row[field] = values[row[key_field]]  # FiftyOne: every key of the dataset must be given
