"""Explorer file size and responsiveness at 1,000 / 5,000 / 10,000 points, in Debian's headless Chromium.

Thumbnails are real Fashion-MNIST images; the 3-D coordinates and clusters are synthetic (size and rendering
depend on the number of points and thumbnails, not on where the points are). Measures: file size, time to write
the file, time from navigation until plotly has drawn the plot, and the time from a mouse move onto a point until
the thumbnail panel shows it. Usage: .venv/bin/python benchmarks/explorer/bench_explorer.py
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
from deqlib.sources import open_source

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks/_host.py
from _host import cpu_model  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def samples_for(source, n, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 30, size=(20, 3))
    cluster = rng.integers(0, 20, size=n)
    xyz = centres[cluster] + rng.normal(0, 3, size=(n, 3))
    sizes = np.bincount(cluster, minlength=20)[cluster]
    return pd.DataFrame({"sample_id": source.sample_ids[:n], "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
                         "cluster_id": cluster, "cluster_size": sizes, "likelihood": sizes / sizes.max(),
                         "weight": (1 + (1 - sizes / sizes.max()) ** 5) / 2})


def measure(path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--use-gl=swiftshader", "--enable-unsafe-swiftshader"])
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        started = time.perf_counter()
        page.goto(path.as_uri())
        page.wait_for_selector("body[data-ready='1']", timeout=120_000)
        render = time.perf_counter() - started
        box = page.locator("#plot").bounding_box()
        hover = None
        for fy in np.linspace(0.3, 0.7, 15):
            for fx in np.linspace(0.3, 0.7, 15):
                before = page.locator("#thumb").get_attribute("data-index")
                t0 = time.perf_counter()
                page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
                try:
                    page.wait_for_function(f"document.getElementById('thumb').dataset.index !== {json.dumps(before)}",
                                           timeout=500)
                    hover = time.perf_counter() - t0
                    break
                except Exception:
                    continue
            if hover is not None:
                break
        browser.close()
    return render, hover


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, nargs="+", default=[1_000, 5_000, 10_000])
    args = parser.parse_args()
    source = open_source("fashion-mnist", split="train", max_images=max(args.points), seed=0)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for n in args.points:
            path = Path(folder) / f"explorer_{n}.html"
            t0 = time.perf_counter()
            write_explorer(samples_for(source, n), source, path, max_points=None)
            written = time.perf_counter() - t0
            render, hover = measure(path)
            rows.append({"points": n, "file_mb": round(path.stat().st_size / 1e6, 2), "write_s": round(written, 2),
                         "render_s": round(render, 2), "hover_to_thumbnail_s": None if hover is None else round(hover, 3)})
            print(rows[-1], flush=True)
    record = {"machine": {"platform": platform.platform(), "cores": os.cpu_count(), "cpu": cpu_model()},
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "load_average": os.getloadavg(),
              "browser": "Debian chromium, headless, software WebGL (swiftshader)", "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"explorer-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(record, indent=1))
    print(out)


if __name__ == "__main__":
    main()
