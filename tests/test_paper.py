"""The published numbers of Tables 1-6 and the recomputation of their printed Deltas."""

import math

import numpy as np
import pandas as pd
import pytest

from deqlib import paper


def test_every_table_has_the_printed_shape():
    shapes = {1: (5, 2), 2: (3, 6), 3: (4, 18), 4: (4, 13), 5: (8, 13), 6: (4, 13)}
    for number, shape in shapes.items():
        frame = paper.table(number)
        assert frame.shape == shape, number
        assert frame.attrs["table"] == number and frame.attrs["caption"] == paper.CAPTIONS[number]


def test_table1_counts_and_order():
    t1 = paper.table1()
    assert list(t1["category"]) == ["Car", "Pedestrian", "Van", "Cyclist", "Truck"]
    assert list(t1["instances"]) == [28742, 4487, 2914, 1627, 1094]
    assert t1["instances"].dtype == np.int64 and int(t1["instances"].sum()) == 38864


def test_table2_cells_as_printed():
    t2 = paper.table2()
    assert list(t2["method"]) == ["DD3D", "DD3D-DE", "DD3D-DE"]
    assert math.isnan(t2.loc[0, "eta"]) and math.isnan(t2.loc[0, "gamma"])  # printed "-"
    assert t2.loc[1, ["eta", "gamma"]].tolist() == [0.5, 5.0]
    assert t2.loc[2].iloc[3:].tolist() == [40.607, 29.598, 26.087]
    assert t2.loc[0].iloc[3:].tolist() == [37.0, 29.4, 25.4]
    assert t2.attrs["printed_delta"] == {"Car@0.7 Easy": "+9.75%", "Car@0.7 Mod": "+0.67%", "Car@0.7 Hard": "+2.70%"}


def test_table3_cells_as_printed():
    t3 = paper.table3()
    assert list(t3.index) == ["M3D-RPN", "MonoDIS", "DD3D", "DD3D-DE"]
    assert t3.columns.names == ["class", "metric", "difficulty"]
    assert t3.loc["DD3D-DE", ("Cyclist@0.5", "BEV AP", "Easy")] == 9.23
    assert t3.loc["DD3D", ("Cyclist@0.5", "BEV AP", "Easy")] == 3.2
    assert t3.loc["MonoDIS", ("Pedestrian@0.5", "3D AP", "Hard")] == 5.09
    assert t3.loc["M3D-RPN", ("Car@0.7", "BEV AP", "Easy")] == 21.02
    assert t3.loc["DD3D", ("Pedestrian@0.5", "BEV AP", "Hard")] == 8.05
    assert t3.loc["DD3D-DE", ("Cyclist@0.5", "3D AP", "Hard")] == 4.1
    delta = t3.attrs["printed_delta"]
    assert delta[("Car@0.7", "BEV AP", "Hard")] == "-4" and delta[("Cyclist@0.5", "3D AP", "Hard")] == "+213"
    assert len(delta) == 18


def test_table3_long_matches_wide():
    wide, long = paper.table3(), paper.table3_long()
    assert long.shape == (72, 6)
    assert list(long.columns) == ["method", "class", "iou", "metric", "difficulty", "ap"]
    assert set(long["class"]) == {"Car", "Pedestrian", "Cyclist"}
    for _, row in long.iterrows():
        iou = "0.7" if row["class"] == "Car" else "0.5"
        assert wide.loc[row["method"], (f"{row['class']}@{iou}", row["metric"], row["difficulty"])] == row["ap"]


def test_nuscenes_tables_cells_as_printed():
    t4, t5, t6 = paper.table4(), paper.table5(), paper.table6()
    assert list(t4.columns) == ["method", "backbone", "eta", "gamma", "NDS", "NDS Δ", "mAP", "mAP Δ",
                                "mATE", "mASE", "mAOE", "mAVE", "mAAE"]
    de = t4[t4["method"] == "BEVFormer-base-DE"].iloc[0]
    assert (de["eta"], de["gamma"], de["NDS"], de["NDS Δ"], de["mAP"], de["mAP Δ"]) == (3.0, 5.0, 0.5198, "(0.04%)", 0.4303, "(1.44%)")
    assert t4.loc[0, "mATE"] == 0.690 and t4.loc[1, "mAVE"] == 1.509
    assert list(t5["method"]) == ["BEVFormer-sml", "BEVFormer-sml-DE", "BEVFormer-sml-DE", "FCOS3D", "PGD",
                                  "DETR3D", "BEVFormer-base", "BEVFormer-base-DE"]
    assert t5.loc[2, ["eta", "gamma", "NDS", "mAP"]].tolist() == [1.0, 2.0, 0.39, 0.3552]
    assert t5.loc[5, "mAVE"] == 0.842
    nc = t6[t6["method"] == "BEVFusion-C-NC-DE"].iloc[0]
    assert (nc["NDS"], nc["NDS Δ"], nc["mAP"], nc["mAP Δ"], nc["mAVE"]) == (0.3741, "(10.61%)", 0.3114, "(-2.56%)", 0.9467)
    assert set(t6["backbone"]) == {"Swin-T"} and t6.loc[1, "mAVE"] == 0.8440
    # Baselines print "-" in the Delta columns
    assert set(t5.loc[t5["eta"].isna(), "NDS Δ"]) == {"-"}


def test_tables_are_fresh_copies():
    first = paper.table6()
    first.loc[0, "NDS"] = -1.0
    first.attrs["caption"] = "changed"
    assert paper.table6().loc[0, "NDS"] == 0.3954
    assert paper.table6().attrs["caption"] == paper.CAPTIONS[6]


def test_unknown_table_is_refused():
    with pytest.raises(ValueError, match="Tables 1-6"):
        paper.table(7)
    with pytest.raises(ValueError, match="Tables 1-6"):
        paper.recompute_deltas(9)


def test_printed_deltas_cover_every_delta_cell():
    printed = paper.printed_deltas()
    assert printed.groupby("table").size().to_dict() == {2: 3, 3: 18, 4: 2, 5: 6, 6: 4}
    assert paper.printed_deltas(1).empty  # Table 1 has no Delta
    t2 = paper.printed_deltas(2)
    assert set(t2["row"]) == {"DD3D-DE (eta=1.0, gamma=5.0)"}  # the best DE row in each column
    t5 = paper.printed_deltas(5)
    assert set(t5["baseline"]) == {"BEVFormer-sml", "BEVFormer-base"}


def test_recomputed_deltas_by_hand():
    checked = paper.recompute_deltas().set_index(["table", "row", "column"])
    t2 = checked.loc[(2, "DD3D-DE (eta=1.0, gamma=5.0)", "Car@0.7 Easy")]
    assert t2["recomputed"] == pytest.approx(100 * (40.607 - 37) / 37)
    assert t2["recomputed_rounded"] == 9.75 and t2["decimals"] == 2 and t2["agrees"]
    cyclist = checked.loc[(3, "DD3D-DE", "Cyclist@0.5 BEV AP Easy")]
    assert cyclist["recomputed"] == pytest.approx(100 * (9.23 - 3.2) / 3.2)  # 188.4375
    assert cyclist["recomputed_rounded"] == 188 and cyclist["decimals"] == 0 and cyclist["agrees"]
    nc_map = checked.loc[(6, "BEVFusion-C-NC-DE (eta=0.3, gamma=5.0)", "mAP")]
    assert nc_map["recomputed"] == pytest.approx(100 * (0.3114 - 0.3196) / 0.3196)  # -2.5657
    assert nc_map["printed_value"] == -2.56 and nc_map["recomputed_rounded"] == -2.57
    assert nc_map["difference"] == pytest.approx(-0.01) and not nc_map["agrees"] and nc_map["agrees_if_truncated"]


def test_known_disagreements_are_listed():
    disagreements = paper.delta_disagreements()
    found = {(row.table, row.row, row.column, row.printed, row.recomputed_rounded)
             for row in disagreements.itertuples()}
    assert found == {
        (3, "DD3D-DE", "Car@0.7 BEV AP Hard", "-4", -5.0),
        (3, "DD3D-DE", "Car@0.7 3D AP Easy", "-6", -7.0),
        (3, "DD3D-DE", "Car@0.7 3D AP Mod", "-9", -10.0),
        (6, "BEVFusion-C-DE (eta=0.3, gamma=5.0)", "NDS", "(1.36%)", 1.37),
        (6, "BEVFusion-C-NC-DE (eta=0.3, gamma=5.0)", "NDS", "(10.61%)", 10.62),
        (6, "BEVFusion-C-NC-DE (eta=0.3, gamma=5.0)", "mAP", "(-2.56%)", -2.57),
    }
    checked = paper.recompute_deltas()
    assert checked.loc[checked["table"].isin([2, 4, 5]), "agrees"].all()
    # Truncating instead of rounding explains the disagreements but breaks other cells: no single rule fits.
    assert disagreements["agrees_if_truncated"].all()
    assert not checked["agrees_if_truncated"].all()


def test_rounding_is_exact_half_away_from_zero(monkeypatch):
    # 0.1 + 0.2 style float error must not decide a tie: 1.005 -> 1.01 (half up), -1.005 -> -1.01.
    records = pd.DataFrame({"table": [9, 9], "row": ["a", "b"], "baseline": ["x", "x"], "column": ["c", "c"],
                            "printed": ["(1.01%)", "(-1.01%)"], "value": [101.005, 98.995],
                            "baseline_value": [100.0, 100.0]})
    monkeypatch.setattr(paper, "printed_deltas", lambda number=None: records.copy())
    checked = paper.recompute_deltas()
    assert checked["recomputed_rounded"].tolist() == [1.01, -1.01]
    assert checked["agrees"].all()


@pytest.mark.parametrize("text, value, places", [("+9.75%", "9.75", 2), ("(0.04%)", "0.04", 2),
                                                 ("(-2.56%)", "-2.56", 2), ("+16", "16", 0), ("-1", "-1", 0)])
def test_parse_printed_delta(text, value, places):
    from decimal import Decimal

    assert paper._parse_printed_delta(text) == (Decimal(value), places)


def test_unparseable_delta_is_refused():
    with pytest.raises(ValueError, match="cannot parse"):
        paper._parse_printed_delta("n/a")
