"""BASELINE ONLY (benchmarks): the explorer before issue 14, kept verbatim from commit 11d9135 to measure the
new one against it side by side. Not part of deqlib.

A self-contained HTML explorer: the 3-D t-SNE clusters with each image's thumbnail on hover.

One file, no server, no network: plotly.js is inlined and every point's thumbnail is embedded
as a small base64 JPEG in a JavaScript array indexed by point number. Hovering or clicking a
point shows its thumbnail, sample id, cluster, cluster size, likelihood and weight in a side
panel. Open it in any browser.

Size: plotly.js is about 4.6 MB; each 56 px JPEG thumbnail adds about 1.5 kB, so 10,000
points make a file of about 20 MB (``benchmarks/explorer/`` has measurements).
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from deqlib import __version__
from deqlib._atomic import write_text_atomic
from deqlib.plots.clusters import _check_samples, _cluster_colors, _hex

__all__ = ["thumbnail_data_uri", "write_explorer"]

_PANEL_FIELDS = ("sample_id", "cluster_id", "cluster_size", "likelihood", "weight")


def thumbnail_data_uri(image, size: int = 56, quality: int = 80) -> str:
    """A ``data:image/jpeg;base64,...`` URI of ``image`` shrunk to fit ``size`` x ``size``."""
    thumb = image.convert("RGB")
    thumb.thumbnail((size, size))
    buffer = io.BytesIO()
    thumb.save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _format(value) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    return str(value)


def write_explorer(samples: pd.DataFrame, source, path: str | Path, thumb_size: int = 56,
                   max_points: int | None = 10_000, seed: int = 0, title: str | None = None,
                   marker_size: float = 3.0) -> Path:
    """Write the explorer HTML for ``samples`` (AnalysisResult.samples) with thumbnails from ``source``.

    Parameters
    ----------
    samples : DataFrame
        Per-sample table with ``sample_id, x, y, z, cluster_id, cluster_size, likelihood`` (and
        ``weight`` when present).
    source : ImageSource
        Where thumbnails are read, by sample id.
    path : path
        Output file (written atomically).
    thumb_size : int, default=56
        Longest thumbnail side in pixels.
    max_points : int or None, default=10000
        Above this, a seeded random subset of points is shown (the file says how many).
    """
    _check_samples(samples, ("sample_id", "x", "y", "z", "cluster_id", "cluster_size", "likelihood"))
    import plotly.offline

    shown = samples
    if max_points is not None and len(samples) > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(len(samples), size=max_points, replace=False))
        shown = samples.iloc[keep]
    shown = shown.reset_index(drop=True)
    position = {sid: i for i, sid in enumerate(source.sample_ids)}
    missing = [sid for sid in shown["sample_id"] if sid not in position]
    if missing:
        raise ValueError(f"{len(missing)} sample ids are not in the source, e.g. {missing[:3]}: "
                         "pass the source the analysis was run on")
    thumbnails = [thumbnail_data_uri(source.load(position[sid]), thumb_size) for sid in shown["sample_id"]]
    fields = [f for f in _PANEL_FIELDS if f in shown.columns]
    data = {
        "x": shown["x"].round(4).tolist(), "y": shown["y"].round(4).tolist(), "z": shown["z"].round(4).tolist(),
        "color": [_hex(c) for c in _cluster_colors(shown["cluster_id"].to_numpy())],
        "fields": fields,
        "values": [[_format(v) for v in row] for row in shown[fields].itertuples(index=False)],
        "thumbs": thumbnails,
        "markerSize": marker_size,
    }
    heading = title or f"DatasetEquity explorer: {len(shown)} of {len(samples)} samples"
    page = _TEMPLATE.format(
        title=html.escape(heading), plotly_js=plotly.offline.get_plotlyjs(),
        data=json.dumps(data, separators=(",", ":")).replace("</", "<\\/"), version=__version__,
        thumb=thumb_size * 3)
    return write_text_atomic(path, page)


_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ margin: 0; font-family: sans-serif; display: flex; height: 100vh; }}
#plot {{ flex: 1; min-width: 0; }}
#panel {{ width: 240px; padding: 12px; border-left: 1px solid #ddd; background: #fafafa; }}
#thumb {{ width: {thumb}px; height: {thumb}px; object-fit: contain; image-rendering: pixelated;
          border: 1px solid #ccc; background: #fff; display: block; }}
#info td {{ padding: 2px 6px 2px 0; font-size: 13px; }}
#hint {{ color: #777; font-size: 12px; }}
</style></head>
<body>
<div id="plot"></div>
<div id="panel">
  <h3 style="margin-top:0">{title}</h3>
  <img id="thumb" alt="hover a point" src="">
  <table id="info"></table>
  <p id="hint">Hover or click a point to see its image. Drag to rotate, scroll to zoom.</p>
  <p id="hint">deqlib {version}</p>
</div>
<script>{plotly_js}</script>
<script>
const DATA = {data};
function show(index) {{
  document.getElementById("thumb").src = DATA.thumbs[index];
  document.getElementById("thumb").dataset.index = index;
  const rows = DATA.fields.map((f, i) => "<tr><td>" + f + "</td><td id='field-" + f + "'>" +
                                          DATA.values[index][i] + "</td></tr>");
  document.getElementById("info").innerHTML = rows.join("");
}}
const trace = {{type: "scatter3d", mode: "markers", x: DATA.x, y: DATA.y, z: DATA.z,
  marker: {{size: DATA.markerSize, color: DATA.color}}, hoverinfo: "none"}};
const layout = {{margin: {{l: 0, r: 0, t: 0, b: 0}}, showlegend: false,
  scene: {{xaxis: {{title: "t-SNE 1"}}, yaxis: {{title: "t-SNE 2"}}, zaxis: {{title: "t-SNE 3"}}}}}};
const plot = document.getElementById("plot");
Plotly.newPlot(plot, [trace], layout, {{responsive: true}}).then(() => {{ document.body.dataset.ready = "1"; }});
plot.on("plotly_hover", e => show(e.points[0].pointNumber));
plot.on("plotly_click", e => show(e.points[0].pointNumber));
</script>
</body></html>
"""
