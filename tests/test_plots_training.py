"""deqlib.plots.training: the points and error bars drawn are the summary's paired differences, in points."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd

from deqlib.plots.png import read_png_metadata
from deqlib.plots.training import plot_results


def _summary():
    rows = []
    for setting, model, shift in (("long_tail", "frozen_head", 0.0), ("rare_condition", "small_cnn", 0.01)):
        for arm, diff, low, high in (("CE", 0.0, np.nan, np.nan), ("GFL", 0.02 + shift, -0.01, 0.05),
                                     ("oracle", 0.10 + shift, 0.04, 0.16)):
            rows.append({"setting": setting, "model": model, "arm": arm, "metric": "accuracy_rare",
                         "diff_vs_ce": diff, "ci_low": low, "ci_high": high})
            rows.append({"setting": setting, "model": model, "arm": arm, "metric": "balanced_accuracy",
                         "diff_vs_ce": 9.0, "ci_low": 8.0, "ci_high": 10.0})
    return pd.DataFrame(rows)


def test_one_panel_per_setting_and_model_with_the_differences_in_points(tmp_path):
    figure = plot_results(_summary(), tmp_path / "r.png", {"seeds": 10})
    assert [ax.get_title() for ax in figure.axes] == ["rare classes, frozen_head", "rare condition, small_cnn"]
    assert [t.get_text() for t in figure.axes[0].get_yticklabels()] == ["CE", "GFL", "oracle"]
    points = figure.axes[1].lines[0]  # the errorbar's markers
    np.testing.assert_allclose(points.get_xdata().astype(float), [0.0, 3.0, 11.0])
    np.testing.assert_array_equal(points.get_ydata(), [0, 1, 2])
    # the oracle's bar spans its CI, 4 to 16 points; CE's (no CI) has zero length
    segments = figure.axes[1].collections[0].get_segments()
    np.testing.assert_allclose([segments[2][0][0], segments[2][1][0]], [4.0, 16.0])
    np.testing.assert_allclose(segments[0][:, 0], [0.0, 0.0])
    assert read_png_metadata(tmp_path / "r.png")["parameters"] == {"seeds": 10}
