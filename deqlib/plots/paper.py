"""Figures of the paper that need no dataset: Figure 3 and Figure 5.

* Figure 3: the DatasetEquity Generalized Focal Loss weight, eq. 4,
  ``W(p, eta, gamma) = (eta + (1 - p)**gamma) / (eta + 1)``, against the scaled likelihood
  ``p`` for ``eta`` in {0, 0.3, 1, 3} and ``gamma`` in {2, 5}; a static PNG
  (:func:`save_figure3`) and an interactive plotly view with sliders for ``eta`` and
  ``gamma`` (:func:`figure3_interactive`). This is *not* the Generalized Focal Loss of Li et
  al. (NeurIPS 2020) in mmdetection.
* Figure 5: BEV AP of DD3D and DD3D-DE per class and difficulty, the numbers of Table 3
  (:func:`save_figure5`).

Every curve and bar comes from :mod:`deqlib.weights` and :mod:`deqlib.paper`; nothing is
computed here that a test could not recompute. Static figures are drawn with matplotlib's
Agg renderer (no display needed), written atomically under stable names, and carry their
parameters and the deqlib version in the PNG's text metadata (:mod:`deqlib.plots.png`).
No timestamp is stored, so regenerating a figure gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from deqlib import __version__
from deqlib import paper
from deqlib.paths import figures_dir
from deqlib.plots.png import read_png_metadata, save_png  # noqa: F401  (public here too: older callers import them)
from deqlib.weights import gfl_weight

__all__ = [
    "FIGURE3_FILENAME",
    "FIGURE5_FILENAME",
    "FIGURE3_ETAS",
    "FIGURE3_GAMMAS",
    "INTERACTIVE_ETAS",
    "INTERACTIVE_GAMMAS",
    "figure3_data",
    "plot_figure3",
    "figure3_interactive",
    "save_figure3",
    "figure5_data",
    "plot_figure5",
    "save_figure5",
    "save_png",
    "read_png_metadata",
]

FIGURE3_FILENAME = "figure3_generalized_focal_loss.png"
FIGURE5_FILENAME = "figure5_dd3d_bev_ap.png"

#: The curves of the paper's Figure 3.
FIGURE3_ETAS = (0.0, 0.3, 1.0, 3.0)
FIGURE3_GAMMAS = (2.0, 5.0)
#: Slider positions of the interactive view; they include every value of Figure 3.
INTERACTIVE_ETAS = (0.0, 0.1, 0.3, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)
INTERACTIVE_GAMMAS = (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0)

#: Table 3 order of the classes (most to least common in KITTI, Table 1) and difficulties.
FIGURE5_CLASSES = ("Car", "Pedestrian", "Cyclist")
FIGURE5_DIFFICULTIES = ("Easy", "Mod", "Hard")
FIGURE5_METHODS = ("DD3D", "DD3D-DE")

_ETA_COLORS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666")
_GAMMA_DASHES = ("-", "--", ":", "-.")
_PLOTLY_DASHES = ("solid", "dash", "dot", "dashdot")
_EQUATION = "W(p, η, γ) = (η + (1 − p)^γ) / (η + 1)"
_WHICH_GFL = "DatasetEquity eq. 4 (not Li et al. 2020's GFL)"


def _check_values(name: str, values: Sequence[float]) -> tuple[float, ...]:
    values = tuple(float(v) for v in values)
    if not values:
        raise ValueError(f"{name} must list at least one value, e.g. {name}=(1.0,)")
    if any(not np.isfinite(v) or v < 0 for v in values):
        raise ValueError(f"{name} must be finite numbers >= 0, got {values}")
    if len(set(values)) != len(values):
        raise ValueError(f"{name} has repeated values: {values}")
    return values


def _check_points(n_points: int) -> int:
    if int(n_points) != n_points or n_points < 2:
        raise ValueError(f"n_points must be an integer >= 2, got {n_points!r}")
    return int(n_points)


def _footer(figure: Figure, text: str) -> None:
    # supxlabel, unlike figure.text, gets room from the constrained layout
    figure.supxlabel(text, x=0.01, ha="left", fontsize=6.5, color="0.4")


def _label(eta: float, gamma: float) -> str:
    return f"η = {eta:g}, γ = {gamma:g}"


# ---------------------------------------------------------------------------------------------
# Figure 3
# ---------------------------------------------------------------------------------------------


def figure3_data(etas: Sequence[float] = FIGURE3_ETAS, gammas: Sequence[float] = FIGURE3_GAMMAS,
                 n_points: int = 201) -> pd.DataFrame:
    """The curves of Figure 3 as a tidy table.

    Parameters
    ----------
    etas, gammas : sequence of float
        Values of eta and gamma (each ``>= 0``); one curve per pair.
    n_points : int, default=201
        Evenly spaced likelihoods ``p`` in [0, 1], both ends included.

    Returns
    -------
    pandas.DataFrame
        Columns ``eta, gamma, p, weight``; ``weight = gfl_weight(p, eta, gamma)``.
    """
    etas = _check_values("etas", etas)
    gammas = _check_values("gammas", gammas)
    p = np.linspace(0.0, 1.0, _check_points(n_points))
    frames = [
        pd.DataFrame({"eta": eta, "gamma": gamma, "p": p, "weight": gfl_weight(p, eta=eta, gamma=gamma)})
        for gamma in gammas
        for eta in etas
    ]
    return pd.concat(frames, ignore_index=True)


def plot_figure3(etas: Sequence[float] = FIGURE3_ETAS, gammas: Sequence[float] = FIGURE3_GAMMAS,
                 n_points: int = 201) -> Figure:
    """Figure 3: W against p, colour by eta, line style by gamma.

    Returns a :class:`matplotlib.figure.Figure` (not attached to pyplot); its line ``i``
    carries the label ``'η = <eta>, γ = <gamma>'`` in the order of :func:`figure3_data`.
    """
    data = figure3_data(etas, gammas, n_points)
    etas, gammas = tuple(dict.fromkeys(data["eta"])), tuple(dict.fromkeys(data["gamma"]))
    figure = Figure(figsize=(6.4, 4.6), layout="constrained")
    axes = figure.add_subplot()
    for (gamma, eta), curve in data.groupby(["gamma", "eta"], sort=False):
        axes.plot(curve["p"], curve["weight"], label=_label(eta, gamma),
                  color=_ETA_COLORS[etas.index(eta) % len(_ETA_COLORS)],
                  linestyle=_GAMMA_DASHES[gammas.index(gamma) % len(_GAMMA_DASHES)], linewidth=1.8)
    axes.set_xlim(0.0, 1.0)
    axes.set_ylim(0.0, 1.02)
    axes.set_xlabel("scaled likelihood p = |C_i| / max |C_i|")
    axes.set_ylabel("weight W(p, η, γ)")
    axes.set_title(f"Generalized Focal Loss weight: {_EQUATION}", fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, ncols=2, loc="upper right")
    _footer(figure, f"{_WHICH_GFL}; η = 0 is the focal factor (1 − p)^γ. deqlib {__version__}")
    return figure


def save_figure3(output_dir: str | Path | None = None, etas: Sequence[float] = FIGURE3_ETAS,
                 gammas: Sequence[float] = FIGURE3_GAMMAS, n_points: int = 201, dpi: int = 150) -> Path:
    """Draw Figure 3 and save it as ``<output_dir>/figure3_generalized_focal_loss.png``.

    ``output_dir`` defaults to :func:`deqlib.paths.figures_dir` (``$DEQ_FIGURES_DIR`` or
    ``figures/``). The parameters and the deqlib version go into the PNG metadata.
    """
    figure = plot_figure3(etas, gammas, n_points)
    parameters = {"etas": [float(e) for e in etas], "gammas": [float(g) for g in gammas],
                  "n_points": int(n_points), "equation": _EQUATION, "source": _WHICH_GFL}
    target = Path(output_dir) if output_dir is not None else figures_dir()
    return save_png(figure, target / FIGURE3_FILENAME, title="Figure 3: Generalized Focal Loss weight",
                    parameters=parameters, dpi=dpi)


def figure3_interactive(etas: Sequence[float] = INTERACTIVE_ETAS, gammas: Sequence[float] = INTERACTIVE_GAMMAS,
                        initial_eta: float = 1.0, initial_gamma: float = 5.0, n_points: int = 101,
                        reference_etas: Sequence[float] = FIGURE3_ETAS,
                        reference_gammas: Sequence[float] = FIGURE3_GAMMAS):
    """Interactive Figure 3: sliders for eta and gamma over the paper's curves.

    The paper's curves are drawn faintly for reference. One thick curve per (eta, gamma) pair
    of the slider grid is precomputed; the eta slider sets which curves are ``visible`` and
    the gamma slider which ones are opaque, so the two sliders combine to show exactly one
    curve with no kernel running (it works in exported HTML).

    Parameters
    ----------
    etas, gammas : sequence of float
        Slider positions.
    initial_eta, initial_gamma : float, default=1.0, 5.0
        Starting positions (the paper's KITTI setting); must be among ``etas``/``gammas``.
    n_points : int, default=101
    reference_etas, reference_gammas : sequence of float
        The faint reference curves (Figure 3 of the paper); empty sequences draw none.

    Returns
    -------
    plotly.graph_objects.Figure
        Each curve's ``meta`` holds ``{'role': 'reference'|'selectable', 'eta', 'gamma'}``.
    """
    import plotly.graph_objects as go

    etas = _check_values("etas", etas)
    gammas = _check_values("gammas", gammas)
    if float(initial_eta) not in etas:
        raise ValueError(f"initial_eta={initial_eta!r} is not a slider position; choose one of {etas}")
    if float(initial_gamma) not in gammas:
        raise ValueError(f"initial_gamma={initial_gamma!r} is not a slider position; choose one of {gammas}")
    p = np.linspace(0.0, 1.0, _check_points(n_points))
    figure = go.Figure()

    ref_etas = tuple(float(e) for e in reference_etas)
    ref_gammas = tuple(float(g) for g in reference_gammas)
    for gi, gamma in enumerate(ref_gammas):
        for ei, eta in enumerate(ref_etas):
            figure.add_trace(go.Scatter(
                x=p, y=gfl_weight(p, eta=eta, gamma=gamma), mode="lines", name=_label(eta, gamma),
                legendgroup="paper", legendgrouptitle_text="Figure 3 (paper)",
                line=dict(color=_ETA_COLORS[ei % len(_ETA_COLORS)], width=1.2,
                          dash=_PLOTLY_DASHES[gi % len(_PLOTLY_DASHES)]),
                opacity=0.45, meta={"role": "reference", "eta": eta, "gamma": gamma}))

    selectable: list[int] = []
    for eta in etas:
        for gamma in gammas:
            selectable.append(len(figure.data))
            # Visibility follows the eta slider, opacity the gamma slider: every eta group starts with
            # its initial-gamma curve opaque, so moving eta first shows a curve at every position.
            opaque = gamma == float(initial_gamma)
            figure.add_trace(go.Scatter(
                x=p, y=gfl_weight(p, eta=eta, gamma=gamma), mode="lines", name=_label(eta, gamma),
                showlegend=False, line=dict(color="black", width=3.5),
                visible=eta == float(initial_eta), opacity=1.0 if opaque else 0.0,
                hoverinfo="x+y+name" if opaque else "skip",
                meta={"role": "selectable", "eta": eta, "gamma": gamma}))

    grid = [figure.data[i].meta for i in selectable]
    eta_steps = [dict(method="restyle", label=f"{eta:g}",
                      args=[{"visible": [m["eta"] == eta for m in grid]}, selectable]) for eta in etas]
    gamma_steps = [dict(method="restyle", label=f"{gamma:g}",
                        args=[{"opacity": [1.0 if m["gamma"] == gamma else 0.0 for m in grid],
                               "hoverinfo": ["x+y+name" if m["gamma"] == gamma else "skip" for m in grid]},
                              selectable]) for gamma in gammas]
    figure.update_layout(
        title=dict(text=f"Generalized Focal Loss weight {_EQUATION}<br><sup>{_WHICH_GFL}; "
                        f"black: the slider's (η, γ); η = 0 is the focal factor (1 − p)^γ</sup>"),
        xaxis=dict(title="scaled likelihood p", range=[0, 1]),
        yaxis=dict(title="weight W(p, η, γ)", range=[0, 1.02]),
        height=560, margin=dict(b=170),
        sliders=[
            dict(active=etas.index(float(initial_eta)), steps=eta_steps, currentvalue=dict(prefix="η = "),
                 pad=dict(t=50), y=0, len=0.9),
            dict(active=gammas.index(float(initial_gamma)), steps=gamma_steps, currentvalue=dict(prefix="γ = "),
                 pad=dict(t=50), y=-0.2, len=0.9),
        ],
        meta={"deqlib_version": __version__, "etas": list(etas), "gammas": list(gammas)},
    )
    return figure


# ---------------------------------------------------------------------------------------------
# Figure 5
# ---------------------------------------------------------------------------------------------


def figure5_data() -> pd.DataFrame:
    """BEV AP of DD3D and DD3D-DE per class and difficulty, from :func:`deqlib.paper.table3`.

    Returns
    -------
    pandas.DataFrame
        Columns ``class, iou, difficulty, DD3D, DD3D-DE, change_percent`` (9 rows, in the
        order Car/Pedestrian/Cyclist x Easy/Mod/Hard); ``change_percent`` is recomputed,
        ``100 * (DD3D-DE - DD3D) / DD3D`` (Table 3's printed % Delta may differ, see
        :func:`deqlib.paper.delta_disagreements`).
    """
    long = paper.table3_long()
    bev = long[(long["metric"] == "BEV AP") & long["method"].isin(FIGURE5_METHODS)]
    wide = bev.pivot_table(index=["class", "iou", "difficulty"], columns="method", values="ap").reset_index()
    wide.columns.name = None
    order = {name: i for i, name in enumerate(FIGURE5_CLASSES)}
    level = {name: i for i, name in enumerate(FIGURE5_DIFFICULTIES)}
    wide = wide.sort_values(by=["class", "difficulty"],
                            key=lambda s: s.map(order) if s.name == "class" else s.map(level))
    wide = wide.reset_index(drop=True)
    wide["change_percent"] = 100.0 * (wide["DD3D-DE"] - wide["DD3D"]) / wide["DD3D"]
    return wide[["class", "iou", "difficulty", "DD3D", "DD3D-DE", "change_percent"]]


def plot_figure5() -> Figure:
    """Figure 5: grouped bars, DD3D and DD3D-DE BEV AP per class and difficulty.

    Returns a :class:`matplotlib.figure.Figure`; its axes holds two bar containers labelled
    ``'DD3D'`` and ``'DD3D-DE (η = 1, γ = 5)'`` whose bar heights are the rows of
    :func:`figure5_data`.
    """
    data = figure5_data()
    figure = Figure(figsize=(10.0, 4.8), layout="constrained")
    axes = figure.add_subplot()
    gap = 0.6  # extra space between classes
    x = np.arange(len(data)) + gap * np.repeat(np.arange(len(FIGURE5_CLASSES)), len(FIGURE5_DIFFICULTIES))
    width = 0.4
    baseline = axes.bar(x - width / 2, data["DD3D"], width, label="DD3D", color="#9e9e9e")
    weighted = axes.bar(x + width / 2, data["DD3D-DE"], width, label="DD3D-DE (η = 1, γ = 5)", color="#d95f02")
    axes.bar_label(baseline, labels=[f"{v:g}" for v in data["DD3D"]], fontsize=6.5, padding=1)
    weighted_labels = [f"{v:g}\n{c:+.0f}%" for v, c in zip(data["DD3D-DE"], data["change_percent"], strict=True)]
    axes.bar_label(weighted, labels=weighted_labels, fontsize=6.5, padding=1)
    axes.set_xticks(x, [f"{d}\n{c}@{iou:g}" if d == "Mod" else d
                        for c, iou, d in zip(data["class"], data["iou"], data["difficulty"], strict=True)], fontsize=8)
    axes.set_ylabel("BEV AP|R40 (KITTI test)")
    axes.set_ylim(0, float(data[["DD3D", "DD3D-DE"]].to_numpy().max()) * 1.2)
    axes.set_title("DD3D with and without the DatasetEquity weight (Table 3, BEV AP)", fontsize=10)
    axes.legend(fontsize=8, loc="upper right")
    axes.grid(axis="y", alpha=0.3)
    _footer(figure, f"Numbers from Table 3 of Shrivastava et al. (2023); % change recomputed from them. "
            f"deqlib {__version__}")
    return figure


def save_figure5(output_dir: str | Path | None = None, dpi: int = 150) -> Path:
    """Draw Figure 5 and save it as ``<output_dir>/figure5_dd3d_bev_ap.png`` (default ``figures/``)."""
    data = figure5_data()
    parameters = {"source": "Table 3 (KITTI test, AP|R40, BEV AP)", "methods": list(FIGURE5_METHODS),
                  "eta": 1.0, "gamma": 5.0,
                  "values": {f"{r['class']} {r['difficulty']}": [r["DD3D"], r["DD3D-DE"]]
                             for _, r in data.iterrows()}}
    target = Path(output_dir) if output_dir is not None else figures_dir()
    return save_png(plot_figure5(), target / FIGURE5_FILENAME, title="Figure 5: DD3D vs DD3D-DE BEV AP",
                    parameters=parameters, dpi=dpi)
