"""The published numbers of the DatasetEquity paper, Tables 1-6, and a check of their Deltas.

Every number is transcribed exactly as printed in Shrivastava et al., "DatasetEquity: Are All
Samples Created Equal? In The Quest For Equity Within Datasets" (ICCV 2023 workshop); a
dash ``-`` becomes ``NaN``. Each printed Delta is kept as the printed text, and
:func:`recompute_deltas` recomputes it from the rows of its table and compares at the printed
precision, so that any disagreement is listed instead of hidden.

How each Delta is defined (read off the numbers; the paper does not say):

* Table 2: relative change in percent of the best DD3D-DE value in each column over DD3D,
  printed with 2 decimals and a sign (``+9.75%``).
* Table 3: relative change in percent of DD3D-DE over DD3D, printed as a signed integer.
* Tables 4-6: relative change in percent of each ``...-DE`` row over the row of the same
  name without ``-DE``, printed with 2 decimals in parentheses (``(1.44%)``).

Recomputed values are rounded half away from zero, with exact decimal arithmetic on the
printed numbers (no binary floating-point error decides a tie).
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd

__all__ = [
    "table",
    "table1",
    "table2",
    "table3",
    "table3_long",
    "table4",
    "table5",
    "table6",
    "printed_deltas",
    "recompute_deltas",
    "delta_disagreements",
    "TABLE_NUMBERS",
    "CAPTIONS",
    "TRANSCRIPTION_NOTES",
]

TABLE_NUMBERS = (1, 2, 3, 4, 5, 6)
NA = float("nan")  # a printed "-"

CAPTIONS = {
    1: "Distribution of class instances in KITTI object training dataset across 5 categories.",
    2: "3D detection results on KITTI val set (AP|R40, Car@0.7). DE: Generalized Focal Loss weights.",
    3: "3D detection results on KITTI test set (AP|R40; Car@0.7, Pedestrian@0.5, Cyclist@0.5); "
    "DD3D-DE uses eta = 1.0, gamma = 5.0.",
    4: "3D detection results with DD3D on nuScenes test set (as captioned in the paper; the rows "
    "are FCOS3D, PGD and BEVFormer-base).",
    5: "3D detection results with BEVFormer on nuScenes val set.",
    6: "3D detection results with BEVFusion on nuScenes val set (camera only; -NC: no class-balanced "
    "sampling).",
}

#: Oddities of the printed paper, transcribed as printed and noted here.
TRANSCRIPTION_NOTES = (
    "Table 4's caption says 'with DD3D on nuScenes test set' but its rows are FCOS3D, PGD, "
    "BEVFormer-base and BEVFormer-base-DE.",
    "Table 6's caption names the no-class-balanced-sampling variant 'BevFusion-C-NS'; its rows "
    "say 'BEVFusion-C-NC' (kept as in the rows).",
    "Table 6 prints the baseline BEVFusion-C-NC mAP 0.3196 in bold: it is higher than the DE "
    "row's 0.3114, whose Delta is negative.",
    "Table 2's DD3D row is printed with fewer decimals (37, 29.4, 25.4) than the DE rows.",
)

_DIFFICULTIES = ("Easy", "Mod", "Hard")

# ---------------------------------------------------------------------------------------------
# The printed numbers
# ---------------------------------------------------------------------------------------------

_TABLE1 = {"Car": 28742, "Pedestrian": 4487, "Van": 2914, "Cyclist": 1627, "Truck": 1094}

_TABLE2_COLUMNS = ("Car@0.7 Easy", "Car@0.7 Mod", "Car@0.7 Hard")
_TABLE2_ROWS = (
    # method, eta, gamma, Easy, Mod, Hard
    ("DD3D", NA, NA, 37, 29.4, 25.4),
    ("DD3D-DE", 0.5, 5.0, 39.381, 29.591, 25.868),
    ("DD3D-DE", 1.0, 5.0, 40.607, 29.598, 26.087),
)
_TABLE2_DELTA = ("+9.75%", "+0.67%", "+2.70%")

_TABLE3_GROUPS = (("Car@0.7", "BEV AP"), ("Car@0.7", "3D AP"), ("Pedestrian@0.5", "BEV AP"),
                  ("Pedestrian@0.5", "3D AP"), ("Cyclist@0.5", "BEV AP"), ("Cyclist@0.5", "3D AP"))
_TABLE3_ROWS = {
    # Car BEV E/M/H, Car 3D E/M/H, Ped BEV E/M/H, Ped 3D E/M/H, Cyc BEV E/M/H, Cyc 3D E/M/H
    "M3D-RPN": (21.02, 13.67, 10.23, 14.76, 9.71, 7.42, 5.65, 4.05, 3.29,
                4.92, 3.48, 2.94, 1.25, 0.81, 0.78, 0.94, 0.65, 0.47),
    "MonoDIS": (24.45, 19.25, 16.87, 16.54, 12.97, 11.04, 7.79, 5.14, 4.42,
                9.07, 5.81, 5.09, 1.17, 0.54, 0.48, 1.47, 0.85, 0.61),
    "DD3D": (30.98, 22.56, 20.03, 23.22, 16.34, 14.2, 15.9, 10.85, 8.05,
             13.91, 9.3, 8.05, 3.2, 1.99, 1.79, 2.39, 1.52, 1.31),
    "DD3D-DE": (30.62, 21.37, 19.1, 21.71, 14.76, 12.92, 15.7, 10.77, 9.35,
                14.28, 9.57, 8.2, 9.23, 6.11, 5.36, 7.23, 4.61, 4.1),
}
_TABLE3_DELTA = ("-1", "-5", "-4", "-6", "-9", "-9", "-1", "-1", "+16",
                 "+3", "+3", "+2", "+188", "+207", "+199", "+203", "+203", "+213")

_NUSCENES_COLUMNS = ("method", "backbone", "eta", "gamma", "NDS", "NDS Δ", "mAP", "mAP Δ",
                     "mATE", "mASE", "mAOE", "mAVE", "mAAE")
_TABLE4_ROWS = (
    ("FCOS3D", "R101", NA, NA, 0.428, "-", 0.358, "-", 0.690, 0.249, 0.452, 1.434, 0.124),
    ("PGD", "R101", NA, NA, 0.448, "-", 0.386, "-", 0.626, 0.245, 0.451, 1.509, 0.127),
    ("BEVFormer-base", "R101", NA, NA, 0.5196, "-", 0.4242, "-",
     0.6351, 0.2684, 0.4219, 0.4593, 0.1406),
    ("BEVFormer-base-DE", "R101", 3.0, 5.0, 0.5198, "(0.04%)", 0.4303, "(1.44%)",
     0.6369, 0.2706, 0.4418, 0.4649, 0.1388),
)
_TABLE5_ROWS = (
    ("BEVFormer-sml", "R101", NA, NA, 0.3874, "-", 0.3516, "-", 0.787, 0.2885, 0.4981, 1.169, 0.3101),
    ("BEVFormer-sml-DE", "R101", 0.5, 2.0, 0.3907, "(0.85%)", 0.3544, "(0.80%)",
     0.7687, 0.2904, 0.4952, 1.174, 0.3104),
    ("BEVFormer-sml-DE", "R101", 1.0, 2.0, 0.39, "(0.67%)", 0.3552, "(1.02%)",
     0.7774, 0.2925, 0.4965, 1.148, 0.3094),
    ("FCOS3D", "R101", NA, NA, 0.415, "-", 0.343, "-", 0.725, 0.263, 0.422, 1.292, 0.153),
    ("PGD", "R101", NA, NA, 0.428, "-", 0.369, "-", 0.683, 0.260, 0.439, 1.268, 0.185),
    ("DETR3D", "R101", NA, NA, 0.425, "-", 0.346, "-", 0.773, 0.268, 0.383, 0.842, 0.216),
    ("BEVFormer-base", "R101", NA, NA, 0.5056, "-", 0.4071, "-",
     0.6843, 0.278, 0.3953, 0.4241, 0.1973),
    ("BEVFormer-base-DE", "R101", 3.0, 5.0, 0.5069, "(0.26%)", 0.4084, "(0.32%)",
     0.6854, 0.2775, 0.3911, 0.4225, 0.1969),
)
_TABLE6_ROWS = (
    ("BEVFusion-C", "Swin-T", NA, NA, 0.3954, "-", 0.3253, "-",
     0.6992, 0.2778, 0.6135, 0.8205, 0.2612),
    ("BEVFusion-C-DE", "Swin-T", 0.3, 5.0, 0.4008, "(1.36%)", 0.3287, "(1.05%)",
     0.6709, 0.2691, 0.5958, 0.8440, 0.2558),
    ("BEVFusion-C-NC", "Swin-T", NA, NA, 0.3382, "-", 0.3196, "-",
     0.7630, 0.2791, 0.7762, 1.2526, 0.3970),
    ("BEVFusion-C-NC-DE", "Swin-T", 0.3, 5.0, 0.3741, "(10.61%)", 0.3114, "(-2.56%)",
     0.7760, 0.2699, 0.5314, 0.9467, 0.2918),
)

# ---------------------------------------------------------------------------------------------
# Tables as DataFrames (fresh copies: callers may modify them)
# ---------------------------------------------------------------------------------------------


def _with_caption(frame: pd.DataFrame, number: int) -> pd.DataFrame:
    frame.attrs["table"] = number
    frame.attrs["caption"] = CAPTIONS[number]
    return frame


def table1() -> pd.DataFrame:
    """Table 1: instances per category in the KITTI object training set.

    Returns
    -------
    pandas.DataFrame
        Columns ``category`` (str) and ``instances`` (int64), 5 rows in printed order.
    """
    frame = pd.DataFrame({"category": list(_TABLE1), "instances": np.array(list(_TABLE1.values()), dtype=np.int64)})
    return _with_caption(frame, 1)


def table2() -> pd.DataFrame:
    """Table 2: DD3D vs DD3D-DE on KITTI val, Car@0.7 AP|R40.

    Returns
    -------
    pandas.DataFrame
        Columns ``method, eta, gamma, Car@0.7 Easy, Car@0.7 Mod, Car@0.7 Hard``, 3 rows.
        The printed Delta row is in ``attrs['printed_delta']`` (column -> printed text) and
        in :func:`printed_deltas`.
    """
    frame = pd.DataFrame(_TABLE2_ROWS, columns=("method", "eta", "gamma") + _TABLE2_COLUMNS)
    for column in ("eta", "gamma") + _TABLE2_COLUMNS:
        frame[column] = frame[column].astype(np.float64)
    frame.attrs["printed_delta"] = dict(zip(_TABLE2_COLUMNS, _TABLE2_DELTA, strict=True))
    return _with_caption(frame, 2)


def _table3_columns() -> pd.MultiIndex:
    tuples = [(cls, metric, difficulty) for cls, metric in _TABLE3_GROUPS for difficulty in _DIFFICULTIES]
    return pd.MultiIndex.from_tuples(tuples, names=("class", "metric", "difficulty"))


def table3() -> pd.DataFrame:
    """Table 3: KITTI test set, BEV AP and 3D AP (AP|R40) per class and difficulty.

    Returns
    -------
    pandas.DataFrame
        Index ``method`` (M3D-RPN, MonoDIS, DD3D, DD3D-DE); columns a 3-level MultiIndex
        ``(class, metric, difficulty)``, e.g. ``('Cyclist@0.5', 'BEV AP', 'Easy')``; 4 x 18.
        The printed ``% Delta`` row is in ``attrs['printed_delta']``.
    """
    columns = _table3_columns()
    frame = pd.DataFrame(list(_TABLE3_ROWS.values()), index=pd.Index(list(_TABLE3_ROWS), name="method"),
                         columns=columns, dtype=np.float64)
    frame.attrs["printed_delta"] = dict(zip(columns, _TABLE3_DELTA, strict=True))
    return _with_caption(frame, 3)


def table3_long() -> pd.DataFrame:
    """Table 3 in long form: one row per method, class, metric and difficulty.

    Returns
    -------
    pandas.DataFrame
        Columns ``method, class, iou, metric, difficulty, ap`` (72 rows), where ``class`` is
        the bare class name (``Car``) and ``iou`` its IoU threshold (0.7 or 0.5).
    """
    wide = table3()
    long = wide.stack(level=[0, 1, 2], future_stack=True).rename("ap").reset_index()
    split = long["class"].str.split("@", expand=True)
    long["class"] = split[0]
    long.insert(2, "iou", split[1].astype(np.float64))
    long = long[["method", "class", "iou", "metric", "difficulty", "ap"]]
    long.attrs = {"table": 3, "caption": CAPTIONS[3]}
    return long


def _nuscenes_table(rows, number: int) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=_NUSCENES_COLUMNS)
    numeric = [c for c in _NUSCENES_COLUMNS if c not in ("method", "backbone", "NDS Δ", "mAP Δ")]
    for column in numeric:
        frame[column] = frame[column].astype(np.float64)
    return _with_caption(frame, number)


def table4() -> pd.DataFrame:
    """Table 4: nuScenes test set (FCOS3D, PGD, BEVFormer-base, BEVFormer-base-DE).

    Returns
    -------
    pandas.DataFrame
        Columns ``method, backbone, eta, gamma, NDS, NDS Δ, mAP, mAP Δ, mATE, mASE, mAOE,
        mAVE, mAAE``; the two Δ columns hold the printed text (``'(1.44%)'`` or ``'-'``).
    """
    return _nuscenes_table(_TABLE4_ROWS, 4)


def table5() -> pd.DataFrame:
    """Table 5: BEVFormer on nuScenes val set; same columns as :func:`table4`, 8 rows."""
    return _nuscenes_table(_TABLE5_ROWS, 5)


def table6() -> pd.DataFrame:
    """Table 6: BEVFusion camera-only on nuScenes val set; same columns as :func:`table4`, 4 rows."""
    return _nuscenes_table(_TABLE6_ROWS, 6)


_TABLES = {1: table1, 2: table2, 3: table3, 4: table4, 5: table5, 6: table6}


def table(number: int) -> pd.DataFrame:
    """Table ``number`` (1-6) of the paper as a DataFrame; see ``table1`` ... ``table6``."""
    if number not in _TABLES:
        raise ValueError(f"the paper has Tables 1-6; got table number {number!r}")
    return _TABLES[number]()


# ---------------------------------------------------------------------------------------------
# Deltas: printed vs recomputed
# ---------------------------------------------------------------------------------------------

_PRINTED_DELTA = re.compile(r"^\(?([+-]?\d+(?:\.(\d+))?)%?\)?$")


def _parse_printed_delta(text: str) -> tuple[Decimal, int]:
    """``'+9.75%'`` -> (Decimal('9.75'), 2); ``'(-2.56%)'`` -> (Decimal('-2.56'), 2); ``'+16'`` -> (16, 0)."""
    match = _PRINTED_DELTA.match(text.strip())
    if not match:
        raise ValueError(f"cannot parse printed Delta {text!r}")
    return Decimal(match.group(1)), len(match.group(2) or "")


def _decimal(value: float) -> Decimal:
    # repr() gives the shortest text that round-trips, i.e. the number as printed.
    return Decimal(repr(float(value)))


def _row_label(method: str, eta: float, gamma: float) -> str:
    if math.isnan(eta):
        return method
    return f"{method} (eta={eta}, gamma={gamma})"


def printed_deltas(number: int | None = None) -> pd.DataFrame:
    """Every Delta printed in the paper, with the rows it compares.

    Parameters
    ----------
    number : int or None, default=None
        A table number (2-6); ``None`` lists all tables. Table 1 has no Delta.

    Returns
    -------
    pandas.DataFrame
        Columns ``table, row, baseline, column, printed, value, baseline_value`` where
        ``printed`` is the text as printed, ``row`` the compared row (label with eta and gamma
        where a method appears twice) and ``value``/``baseline_value`` its two numbers.
    """
    numbers = TABLE_NUMBERS[1:] if number is None else (number,)
    records: list[dict] = []
    for n in numbers:
        if n not in _TABLES:
            raise ValueError(f"the paper has Tables 1-6; got table number {n!r}")
        if n == 2:
            frame = table2()
            base = frame[frame["method"] == "DD3D"].iloc[0]
            candidates = frame[frame["method"] == "DD3D-DE"]
            for column, printed in frame.attrs["printed_delta"].items():
                best = candidates.loc[candidates[column].idxmax()]  # "best DE row" per column
                records.append(dict(table=2, row=_row_label(best["method"], best["eta"], best["gamma"]),
                                    baseline="DD3D", column=column, printed=printed,
                                    value=best[column], baseline_value=base[column]))
        elif n == 3:
            frame = table3()
            for column, printed in frame.attrs["printed_delta"].items():
                records.append(dict(table=3, row="DD3D-DE", baseline="DD3D", column=" ".join(column),
                                    printed=printed, value=frame.loc["DD3D-DE", column],
                                    baseline_value=frame.loc["DD3D", column]))
        elif n in (4, 5, 6):
            frame = table(n)
            for _, row in frame.iterrows():
                if not row["method"].endswith("-DE"):
                    continue
                base_name = row["method"][: -len("-DE")]
                bases = frame[frame["method"] == base_name]
                if len(bases) != 1:
                    raise RuntimeError(f"Table {n}: expected one baseline row {base_name!r}, found {len(bases)}")
                base = bases.iloc[0]
                for metric in ("NDS", "mAP"):
                    records.append(dict(table=n, row=_row_label(row["method"], row["eta"], row["gamma"]),
                                        baseline=base_name, column=metric, printed=row[f"{metric} Δ"],
                                        value=row[metric], baseline_value=base[metric]))
    columns = ["table", "row", "baseline", "column", "printed", "value", "baseline_value"]
    return pd.DataFrame.from_records(records, columns=columns)


def recompute_deltas(number: int | None = None) -> pd.DataFrame:
    """Recompute every printed Delta from its rows and compare at the printed precision.

    The Delta is the relative change in percent, ``100 * (value - baseline) / baseline``,
    rounded half away from zero to the printed number of decimals.

    Parameters
    ----------
    number : int or None, default=None
        A table number (2-6); ``None`` checks all tables.

    Returns
    -------
    pandas.DataFrame
        :func:`printed_deltas` plus ``printed_value`` (float), ``decimals`` (printed),
        ``recomputed`` (float, unrounded), ``recomputed_rounded``, ``difference``
        (recomputed_rounded - printed_value), ``agrees`` (bool) and ``agrees_if_truncated``
        (whether cutting the digits instead of rounding would reproduce the print).
    """
    frame = printed_deltas(number)
    printed_value, decimals, exact, rounded, truncated = [], [], [], [], []
    for _, row in frame.iterrows():
        value, places = _parse_printed_delta(row["printed"])
        base = _decimal(row["baseline_value"])
        change = (_decimal(row["value"]) - base) / base * 100
        quantum = Decimal(1).scaleb(-places)
        printed_value.append(value)
        decimals.append(places)
        exact.append(change)
        rounded.append(change.quantize(quantum, rounding=ROUND_HALF_UP))
        truncated.append(change.quantize(quantum, rounding=ROUND_DOWN))  # ROUND_DOWN is toward zero
    frame["printed_value"] = [float(v) for v in printed_value]
    frame["decimals"] = np.array(decimals, dtype=np.int64)
    frame["recomputed"] = [float(v) for v in exact]
    frame["recomputed_rounded"] = [float(v) for v in rounded]
    frame["difference"] = [float(r - p) for r, p in zip(rounded, printed_value, strict=True)]
    frame["agrees"] = [r == p for r, p in zip(rounded, printed_value, strict=True)]
    frame["agrees_if_truncated"] = [t == p for t, p in zip(truncated, printed_value, strict=True)]
    return frame


def delta_disagreements(number: int | None = None) -> pd.DataFrame:
    """The rows of :func:`recompute_deltas` whose printed Delta does not match its rows."""
    checked = recompute_deltas(number)
    return checked[~checked["agrees"]].reset_index(drop=True)
