"""Figures 3 and 5: the plotted data equal eq. 4 and Table 3; saved PNGs carry their parameters."""


import numpy as np
import pytest
from PIL import Image

from deqlib import __version__, paper
from deqlib.plots import paper as plots
from deqlib.weights import gfl_weight


def _eta_gamma(label):
    # 'η = 0.3, γ = 5' -> (0.3, 5.0)
    eta, gamma = (part.split("=")[1] for part in label.split(","))
    return float(eta), float(gamma)


def test_figure3_data_is_equation_4():
    data = plots.figure3_data(n_points=21)
    assert len(data) == 8 * 21
    assert set(zip(data["eta"], data["gamma"])) == {(e, g) for e in (0.0, 0.3, 1.0, 3.0) for g in (2.0, 5.0)}
    for (eta, gamma), curve in data.groupby(["eta", "gamma"]):
        np.testing.assert_allclose(curve["weight"], gfl_weight(curve["p"].to_numpy(), eta=eta, gamma=gamma))
        assert curve["p"].iloc[0] == 0.0 and curve["p"].iloc[-1] == 1.0
        assert curve["weight"].iloc[0] == pytest.approx(1.0)
        assert curve["weight"].iloc[-1] == pytest.approx(eta / (eta + 1))


def test_figure3_plotted_lines_are_the_weights():
    figure = plots.plot_figure3(n_points=51)
    lines = figure.axes[0].get_lines()
    assert len(lines) == 8
    seen = set()
    for line in lines:
        eta, gamma = _eta_gamma(line.get_label())
        seen.add((eta, gamma))
        x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
        assert len(x) == 51
        np.testing.assert_allclose(y, gfl_weight(x, eta=eta, gamma=gamma))
    assert seen == {(e, g) for e in plots.FIGURE3_ETAS for g in plots.FIGURE3_GAMMAS}


@pytest.mark.parametrize("kwargs, message", [
    ({"etas": []}, "at least one"), ({"etas": [-1.0]}, ">= 0"), ({"gammas": [2.0, 2.0]}, "repeated"),
    ({"n_points": 1}, "n_points"),
])
def test_figure3_rejects_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        plots.figure3_data(**kwargs)


def _apply_restyle(state, step):
    update, indices = step["args"]
    for attribute, values in update.items():
        for index, value in zip(indices, values):
            state[index][attribute] = value


def test_interactive_sliders_select_exactly_one_curve():
    figure = plots.figure3_interactive(n_points=11)
    traces = figure.data
    references = [t for t in traces if t.meta["role"] == "reference"]
    selectable = {i: t for i, t in enumerate(traces) if t.meta["role"] == "selectable"}
    assert {(t.meta["eta"], t.meta["gamma"]) for t in references} == {
        (e, g) for e in plots.FIGURE3_ETAS for g in plots.FIGURE3_GAMMAS}
    assert len(selectable) == len(plots.INTERACTIVE_ETAS) * len(plots.INTERACTIVE_GAMMAS)
    for trace in traces:
        np.testing.assert_allclose(trace.y, gfl_weight(np.asarray(trace.x), eta=trace.meta["eta"], gamma=trace.meta["gamma"]))

    def shown(state):
        return [(traces[i].meta["eta"], traces[i].meta["gamma"]) for i, s in state.items()
                if s["visible"] is True and s["opacity"] == 1.0 and s["hoverinfo"] != "skip"]

    state = {i: {"visible": t.visible, "opacity": t.opacity, "hoverinfo": t.hoverinfo} for i, t in selectable.items()}
    assert shown(state) == [(1.0, 5.0)]  # the paper's KITTI setting to start with
    eta_slider, gamma_slider = figure.layout.sliders
    assert eta_slider.steps[eta_slider.active].label == "1" and gamma_slider.steps[gamma_slider.active].label == "5"
    # Every order of moves ends on the pair of the two sliders' positions.
    for eta_step, eta in zip(eta_slider.steps, plots.INTERACTIVE_ETAS):
        for gamma_step, gamma in zip(gamma_slider.steps, plots.INTERACTIVE_GAMMAS):
            _apply_restyle(state, eta_step.to_plotly_json())
            _apply_restyle(state, gamma_step.to_plotly_json())
            assert shown(state) == [(eta, gamma)]
            _apply_restyle(state, gamma_step.to_plotly_json())
            _apply_restyle(state, eta_step.to_plotly_json())
            assert shown(state) == [(eta, gamma)]


def test_interactive_initial_values_must_be_slider_positions():
    with pytest.raises(ValueError, match="initial_eta"):
        plots.figure3_interactive(initial_eta=0.7)
    with pytest.raises(ValueError, match="initial_gamma"):
        plots.figure3_interactive(initial_gamma=4.0)


def test_figure5_data_is_table3_bev_ap():
    data = plots.figure5_data()
    t3 = paper.table3()
    assert len(data) == 9
    assert list(zip(data["class"], data["difficulty"]))[:4] == [("Car", "Easy"), ("Car", "Mod"), ("Car", "Hard"),
                                                                ("Pedestrian", "Easy")]
    for _, row in data.iterrows():
        column = (f"{row['class']}@{row['iou']:g}", "BEV AP", row["difficulty"])
        assert row["DD3D"] == t3.loc["DD3D", column]
        assert row["DD3D-DE"] == t3.loc["DD3D-DE", column]
        assert row["change_percent"] == pytest.approx(100 * (row["DD3D-DE"] - row["DD3D"]) / row["DD3D"])


def test_figure5_bars_are_table3_numbers():
    figure = plots.plot_figure5()
    containers = figure.axes[0].containers
    by_label = {c.get_label(): [bar.get_height() for bar in c] for c in containers}
    data = plots.figure5_data()
    assert by_label["DD3D"] == data["DD3D"].tolist()
    assert by_label["DD3D-DE (η = 1, γ = 5)"] == data["DD3D-DE"].tolist()
    assert by_label["DD3D"][6] == 3.2 and by_label["DD3D-DE (η = 1, γ = 5)"][6] == 9.23  # Cyclist, Easy


def test_saved_figures_are_pngs_with_parameters_and_version(tmp_path):
    figure3 = plots.save_figure3(tmp_path, etas=[0.0, 1.0], gammas=[2.0], n_points=11, dpi=80)
    figure5 = plots.save_figure5(tmp_path, dpi=80)
    assert figure3 == tmp_path / "figure3_generalized_focal_loss.png"
    assert figure5 == tmp_path / "figure5_dd3d_bev_ap.png"
    for path in (figure3, figure5):
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width > 300 and image.height > 200
    record3 = plots.read_png_metadata(figure3)
    assert record3["deqlib_version"] == __version__
    assert record3["parameters"]["etas"] == [0.0, 1.0] and record3["parameters"]["gammas"] == [2.0]
    record5 = plots.read_png_metadata(figure5)
    assert record5["parameters"]["values"]["Cyclist Easy"] == [3.2, 9.23]
    assert sorted(p.name for p in tmp_path.iterdir()) == [figure3.name, figure5.name]  # no temp files left


def test_regenerating_a_figure_gives_the_same_bytes(tmp_path):
    first = plots.save_figure5(tmp_path / "a", dpi=60).read_bytes()
    second = plots.save_figure5(tmp_path / "b", dpi=60).read_bytes()
    assert first == second


def test_output_dir_defaults_to_figures_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DEQ_FIGURES_DIR", str(tmp_path / "figs"))
    path = plots.save_figure3(n_points=5, dpi=50)
    assert path == tmp_path / "figs" / plots.FIGURE3_FILENAME and path.is_file()


def test_png_without_deqlib_metadata_is_refused(tmp_path):
    path = tmp_path / "plain.png"
    Image.new("RGB", (4, 4)).save(path)
    with pytest.raises(ValueError, match="no deqlib metadata"):
        plots.read_png_metadata(path)
