"""The explorer at 5,000 to 200,000 points in Debian's headless Chromium (software WebGL, no GPU).

Thumbnails are real Fashion-MNIST images (70,000 exist; above that they repeat under new sample ids). The 3-D
coordinates are synthetic but shaped like a clustered t-SNE: 409 clusters with heavy-tailed sizes (as the
70,000-image run had), Gaussian blobs around random centres, 3% noise spread around them. Rendering and
hover cost depend on the number of points and thumbnails, not on where the points lie.

Measured per size: time to write the explorer (thumbnails included), on-disk size (page + sprite sheets),
time from navigation until the first frame with every point is drawn, browser memory over a blank page
(PSS of Chromium's processes), and hover latency: for 15 random points, the time from the mouse event to the
frame after the thumbnail is painted (timed inside the page). Usage::

    .venv/bin/python benchmarks/explorer/bench_explorer.py --points 5000 10000 30000 70000 200000
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from deqlib.plots.explorer import write_explorer
from deqlib.sources import ImageSource, open_source

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks/_host.py
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the baseline explorer
from _host import cpu_model  # noqa: E402

RESULTS = Path(__file__).parent / "results"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--use-gl=swiftshader", "--enable-unsafe-swiftshader"]


class Repeated(ImageSource):
    """``n`` samples cycling through ``parent``'s images, with ids ``<parent id>~<repeat>``."""

    name = "repeated"

    def __init__(self, parent, n):
        self.parent, self.n = parent, n

    @property
    def sample_ids(self):
        ids = self.parent.sample_ids
        return [f"{ids[i % len(ids)]}~{i // len(ids)}" if i >= len(ids) else ids[i] for i in range(self.n)]

    def load(self, index, draft=None):
        return self.parent.load(index % len(self.parent), draft=draft)

    def metadata(self):
        ids = self.sample_ids
        return pd.DataFrame({"sample_id": ids, "location": ids})


def clustered_samples(sample_ids, n_clusters=409, noise=0.03, seed=0):
    """A t-SNE-shaped table: heavy-tailed cluster sizes, blobs in 3-D, noise around them."""
    n = len(sample_ids)
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 30, size=(n_clusters, 3))
    share = rng.pareto(1.1, size=n_clusters) + 0.05
    cluster = rng.choice(n_clusters, size=n, p=share / share.sum())
    xyz = centres[cluster] + rng.normal(0, 1.2, size=(n, 3))
    is_noise = rng.random(n) < noise
    cluster[is_noise] = -1
    xyz[is_noise] = rng.normal(0, 35, size=(int(is_noise.sum()), 3))
    sizes = pd.Series(cluster).map(pd.Series(cluster).value_counts()).to_numpy().copy()
    sizes[is_noise] = 1
    likelihood = sizes / sizes.max()
    return pd.DataFrame({"sample_id": sample_ids, "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
                         "cluster_id": cluster, "cluster_size": sizes, "likelihood": likelihood,
                         "weight": (1 + (1 - likelihood) ** 5) / 2, "label": rng.integers(0, 10, n)})


def browser_pss(browser_pid_parent):
    """Summed PSS (bytes) of the Chromium processes under this Python process."""
    import psutil

    total = 0
    for proc in psutil.Process(browser_pid_parent).children(recursive=True):
        try:
            if "chrom" in proc.name():
                total += proc.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


# The page sets #thumb's data-index once the hovered sample's tile is painted (and removes it while a sheet
# loads): the time runs from the mouse event to the frame after it is set again.
HOVER_PROBE = """() => {
  window.__hover = [];
  let t0 = 0;
  const thumb = document.getElementById('thumb');
  document.addEventListener('mousemove', () => { t0 = performance.now(); }, true);
  new MutationObserver(() => { if (thumb.dataset.index !== undefined)
      requestAnimationFrame(() => window.__hover.push(performance.now() - t0)); })
    .observe(thumb, {attributes: true, attributeFilter: ['data-index']});
}"""


def _open(p, path, timeout_ms):
    """Open ``path`` in a fresh headless Chromium: (browser, page, first-render seconds, memory over a blank page)."""
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": 1400, "height": 850})
    page.goto("about:blank")
    time.sleep(1.0)
    blank = browser_pss(os.getpid())
    started = time.perf_counter()
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=timeout_ms)
    render = time.perf_counter() - started
    time.sleep(1.0)
    memory = browser_pss(os.getpid()) - blank
    page.evaluate(HOVER_PROBE)
    return browser, page, render, memory


def measure_baseline(path, n_hover=15):
    """The pre-issue-14 plotly page: no projection helper, so sweep the mouse over the plot (as its own test did)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser, page, render, memory = _open(p, path, 300_000)
        box = page.locator("#plot").bounding_box()
        latencies = []
        for fy in np.linspace(0.35, 0.65, 8):
            for fx in np.linspace(0.35, 0.65, 8):
                before = page.evaluate("window.__hover.length")
                page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
                try:
                    page.wait_for_function(f"window.__hover.length > {before}", timeout=20_000)
                    latencies.append(page.evaluate("window.__hover[window.__hover.length - 1]") / 1000)
                except Exception:
                    pass
                if len(latencies) >= n_hover:
                    break
            if len(latencies) >= n_hover:
                break
        browser.close()
    return render, memory, latencies, 0, {}


def measure(path, n_hover=15, seed=1):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser, page, render, memory = _open(p, path, 180_000)
        box = page.locator("#plot").bounding_box()
        rng = np.random.default_rng(seed)
        n = int(page.evaluate("EXPLORER.state.visible.length"))
        latencies, misses = [], 0
        for i in rng.choice(n, size=n_hover, replace=False):
            x, y = page.evaluate(f"EXPLORER.project({int(i)})")[:2]
            if not (0 < x < box["width"] and 0 < y < box["height"]):
                misses += 1
                continue
            before = page.evaluate("window.__hover.length")
            page.mouse.move(box["x"] + x, box["y"] + y)
            try:
                page.wait_for_function(f"window.__hover.length > {before}", timeout=10_000)
                latencies.append(page.evaluate("window.__hover[window.__hover.length - 1]") / 1000)
            except Exception:
                misses += 1  # the point was already shown, or hidden behind another already shown
            page.mouse.move(box["x"] + 2, box["y"] + 2)  # off the cloud, so the next move is a fresh hover
        # One frame of the whole cloud, and one while the view moves (drag held: the level-of-detail subset).
        frame = """async () => { const f = () => new Promise(r => requestAnimationFrame(() => r()));
          await f(); const t = performance.now(); EXPLORER.deck().redraw('bench'); await f(); await f();
          return (performance.now() - t) / 1000; }"""
        tasks = {"frame_full_s": page.evaluate(frame)}
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] / 2 + 40, box["y"] + box["height"] / 2, steps=2)
        tasks["points_drawn_while_moving"] = page.evaluate("EXPLORER.drawn()")[0][1]
        tasks["frame_while_moving_s"] = page.evaluate(frame)
        page.mouse.up()
        page.wait_for_function("EXPLORER.drawn()[0][0] === 'points'", timeout=60_000)
        # What a user does next: find a sample by id, then isolate the rarest cluster and see its images.
        target = page.evaluate(f"DATA.ids[{n // 2}]")
        t0 = time.perf_counter()
        page.fill("#search", target)
        page.press("#search", "Enter")
        page.wait_for_function(f"document.getElementById('thumb').dataset.index === '{n // 2}'", timeout=30_000)
        tasks["search_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        page.locator("#legend .item").nth(1).click()  # noise is row 0, then the rarest cluster
        page.wait_for_function("document.querySelectorAll('#gallery .tile').length > 0 && Array.from("
                               "document.querySelectorAll('#gallery .tile')).every(t => t.style.backgroundImage)",
                               timeout=30_000)
        tasks["isolate_rarest_with_gallery_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        page.click("#reset")
        page.wait_for_function(f"document.body.dataset.shown === '{n}'", timeout=30_000)
        tasks["show_all_again_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        page.select_option("#color-by", "likelihood")
        page.wait_for_selector("#legend-min", timeout=30_000)
        tasks["colour_by_likelihood_s"] = time.perf_counter() - t0
        # Box selection of the plot's middle (a quarter of its area), then the CSV of the selected ids.
        w, h = box["width"], box["height"]
        page.click("#box-mode")
        t0 = time.perf_counter()
        page.mouse.move(box["x"] + w / 4, box["y"] + h / 4)
        page.mouse.down()
        page.mouse.move(box["x"] + 3 * w / 4, box["y"] + 3 * h / 4, steps=2)
        page.mouse.up()
        page.wait_for_function(f"document.body.dataset.shown !== '{n}'", timeout=60_000)
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        tasks["box_select_s"] = time.perf_counter() - t0
        tasks["box_selected_points"] = int(page.evaluate("EXPLORER.state.visible.length"))
        tasks["csv_of_selection_s"] = page.evaluate(
            "() => { const t = performance.now(); EXPLORER.csv(); return (performance.now() - t) / 1000; }")
        page.click("#reset")
        page.wait_for_function(f"document.body.dataset.shown === '{n}'", timeout=60_000)
        tasks["csv_of_every_point_s"] = page.evaluate(
            "() => { const t = performance.now(); EXPLORER.csv(); return (performance.now() - t) / 1000; }")
        browser.close()
    return render, memory, latencies, misses, tasks


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, nargs="+", default=[5_000, 10_000, 30_000, 70_000, 200_000])
    parser.add_argument("--keep", default=None, help="write the explorers here instead of a temporary folder")
    parser.add_argument("--baseline", type=int, nargs="*", default=[5_000, 10_000],
                        help="also measure the pre-issue-14 plotly explorer at these sizes, in the same run")
    args = parser.parse_args()
    load_before = [round(v, 2) for v in os.getloadavg()]
    fashion = open_source("fashion-mnist", split="train")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        runs = [("plotly-v0", n) for n in args.baseline] + [("deck.gl", n) for n in args.points]
        for explorer, n in runs:
            source = Repeated(fashion, n)
            samples = clustered_samples(source.sample_ids)
            path = folder / f"explorer_{explorer}_{n}.html"
            t0 = time.perf_counter()
            if explorer == "deck.gl":
                write_explorer(samples, source, path)
            else:
                from plotly_explorer_v0 import write_explorer as write_v0

                write_v0(samples, source, path, max_points=None)
            written = time.perf_counter() - t0
            thumbs = path.with_name(path.stem + "_files")
            disk = path.stat().st_size + sum(f.stat().st_size for f in (thumbs.iterdir() if thumbs.exists() else []))
            render, memory, hovers, misses, tasks = (measure if explorer == "deck.gl" else measure_baseline)(path)
            rows.append({"explorer": explorer, "points": n, "clusters": int(samples.cluster_id.max() + 1),
                         "page_mb": round(path.stat().st_size / 1e6, 2), "disk_mb": round(disk / 1e6, 2),
                         "bytes_per_point": round(disk / n), "write_s": round(written, 2),
                         "render_s": round(render, 2), "browser_memory_gb": round(memory / 1e9, 2),
                         "hover_median_s": round(float(np.median(hovers)), 3) if hovers else None,
                         "hover_max_s": round(float(np.max(hovers)), 3) if hovers else None,
                         "hovers_measured": len(hovers), "hovers_missed": misses,
                         **{k: round(v, 2) if isinstance(v, float) else v for k, v in tasks.items()},
                         "load_average_after": [round(v, 2) for v in os.getloadavg()]})
            print(rows[-1], flush=True)
    import subprocess

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    record = {"machine": {"platform": platform.platform(), "cores": os.cpu_count(), "cpu": cpu_model()},
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "load_average": os.getloadavg(),
              "load_average_before": load_before, "commit": commit,
              "note": "shared 2-core machine: other engineers' jobs ran at the same time; absolute times are "
                      "upper bounds for an idle machine",
              "browser": "Debian chromium, headless, software WebGL (swiftshader), 1400x850 viewport",
              "explorer": "deck.gl 9.4.0 ScatterplotLayer in an OrbitView; thumbnails in JPEG sprite sheets",
              "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"explorer-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(record, indent=1))
    print(out)


if __name__ == "__main__":
    main()
