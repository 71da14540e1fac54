"""Cluster plots: what they draw equals the analysis' numbers."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deqlib.plots.clusters import (cluster_gallery, cluster_scatter_3d, gallery_clusters, likelihood_per_cluster,
                                   rotating_gif, save_figure, weight_distribution)
from deqlib.plots.paper import read_png_metadata
from deqlib.sources import ImageSource


def _samples():
    labels = np.array([0] * 6 + [1] * 3 + [2] * 2 + [3] * 2 + [-1] * 2)
    sizes = np.array([6] * 6 + [3] * 3 + [2] * 2 + [2] * 2 + [1] * 2)
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "sample_id": [f"s{i}" for i in range(15)], "x": rng.normal(size=15), "y": rng.normal(size=15),
        "z": rng.normal(size=15), "cluster_id": labels, "cluster_size": sizes, "likelihood": sizes / 6,
        "weight": (1 + (1 - sizes / 6) ** 5) / 2, "class_name": list("abcab" * 3)})


class Gray(ImageSource):
    name = "gray"

    @property
    def sample_ids(self):
        return [f"s{i}" for i in range(15)]

    def load(self, index, draft=None):
        return Image.new("RGB", (8, 8), (index * 10,) * 3)


def test_likelihood_bars_are_sorted_cluster_likelihoods():
    figure = likelihood_per_cluster(_samples())
    heights = [p.get_height() for p in figure.axes[0].patches]
    assert heights[:4] == pytest.approx([1.0, 0.5, 2 / 6, 2 / 6])
    assert heights[4] == pytest.approx(1 / 6)  # the noise bar (singleton policy: 1 / 6)


def test_scatter_hover_and_colour_toggle():
    figure = cluster_scatter_3d(_samples())
    trace = figure.data[0]
    for field in ("sample_id", "cluster_id", "cluster_size", "likelihood", "weight"):
        assert field in trace.hovertemplate
    labels = [b.label for b in figure.layout.updatemenus[0].buttons]
    assert labels == ["cluster", "likelihood", "weight", "class_name"]
    assert len(figure.data) == 1 and len(trace.x) == 15


def test_gallery_picks_rarest_and_commonest_clusters():
    samples = _samples()
    assert gallery_clusters(samples, "rarest", 2) == [2, 3]
    assert gallery_clusters(samples, "common", 2) == [0, 1]
    figure = cluster_gallery(samples, Gray(), "common", n_clusters=2, per_cluster=4)
    assert "cluster 0: 6 samples" in figure.axes[0].get_title(loc="left")
    with pytest.raises(ValueError, match="rarest"):
        gallery_clusters(samples, "middle")


def test_gallery_of_an_all_noise_clustering_says_so():
    samples = _samples().assign(cluster_id=-1, cluster_size=1)
    figure = cluster_gallery(samples, Gray(), "rarest")
    assert "all 15 samples are noise" in figure.axes[0].texts[0].get_text()


def test_weight_histogram_counts_every_sample_and_png_records_parameters(tmp_path):
    figure = weight_distribution(_samples(), 1.0, 5.0)
    assert sum(p.get_height() for p in figure.axes[0].patches) == 15
    path = save_figure(figure, tmp_path / "w.png", {"eta": 1.0, "gamma": 5.0})
    assert read_png_metadata(path)["parameters"] == {"eta": 1.0, "gamma": 5.0}


def test_rotating_gif_has_the_requested_frames(tmp_path):
    path = rotating_gif(_samples(), tmp_path / "c.gif", frames=6)
    with Image.open(path) as gif:
        assert gif.n_frames == 6
