"""deqlib.plots.sweep: the lines drawn are the sweep table's numbers; failed runs are left out."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd

from deqlib.plots.sweep import plot_sweep


def test_one_panel_per_metric_one_line_per_hue_value_sorted_by_x():
    table = pd.DataFrame({"eps": [2.0, 0.5, 1.0, 0.5, 1.0, 2.0, 3.0],
                          "min_samples": [5, 5, 5, 10, 10, 10, 10],
                          "status": ["ok", "cached", "ok", "ok", "ok", "ok", "failed"],
                          "n_clusters": [3, 9, 5, 7, 4, 2, 99], "nmi": [0.4, 0.5, 0.6, 0.3, 0.2, 0.1, 0.9]})
    figure = plot_sweep(table, "eps", ["n_clusters", "nmi"], hue="min_samples")
    assert [ax.get_title() for ax in figure.axes] == ["n_clusters", "nmi"]
    lines = {line.get_label(): line for line in figure.axes[0].lines}
    assert set(lines) == {"min_samples=5", "min_samples=10"}
    np.testing.assert_array_equal(lines["min_samples=5"].get_xdata(), [0.5, 1.0, 2.0])
    np.testing.assert_array_equal(lines["min_samples=5"].get_ydata(), [9, 5, 3])
    # the failed run (eps 3, 99 clusters) is not drawn
    np.testing.assert_array_equal(lines["min_samples=10"].get_xdata(), [0.5, 1.0, 2.0])
    np.testing.assert_array_equal(lines["min_samples=10"].get_ydata(), [7, 4, 2])
    assert figure.axes[1].get_xlabel() == "eps"


def test_without_hue_one_line_per_panel():
    table = pd.DataFrame({"eta": [1.0, 0.0, 3.0], "weight_std": [0.2, 0.1, 0.3]})
    figure = plot_sweep(table, "eta", ["weight_std"])
    (line,) = figure.axes[0].lines
    np.testing.assert_array_equal(line.get_xdata(), [0.0, 1.0, 3.0])
    np.testing.assert_array_equal(line.get_ydata(), [0.1, 0.2, 0.3])
