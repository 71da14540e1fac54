"""deqlib.alignment: NMI / ARI / purity with metadata and mean likelihood per attribute value."""

import numpy as np
import pandas as pd
import pytest

from deqlib.alignment import align, alignment_scores, attribute_columns, likelihood_by_attribute, purity


def test_perfect_and_permuted_clusterings_score_one():
    values = np.array(["day"] * 4 + ["night"] * 2)
    scores = alignment_scores([5, 5, 5, 5, 9, 9], values)
    assert scores["nmi"] == pytest.approx(1.0) and scores["ari"] == pytest.approx(1.0) and scores["purity"] == 1.0
    assert scores["n_values"] == 2 and scores["n_clusters"] == 2 and scores["coverage"] == 1.0


def test_purity_by_hand():
    # cluster 0: a a b (2 right), cluster 1: b b (2 right), noise group -1: a b (1 right) -> 5/7
    labels = [0, 0, 0, 1, 1, -1, -1]
    values = ["a", "a", "b", "b", "b", "a", "b"]
    assert purity(labels, values) == pytest.approx(5 / 7)
    counted = alignment_scores(labels, values)  # noise as one group
    excluded = alignment_scores(labels, values, noise="exclude")
    assert counted["purity"] == pytest.approx(5 / 7) and counted["coverage"] == 1.0
    assert excluded["purity"] == pytest.approx(4 / 5) and excluded["coverage"] == pytest.approx(5 / 7)


def test_missing_values_are_left_out_and_bad_input_refused():
    scores = alignment_scores([0, 0, 1, 1], ["x", None, "y", "y"])
    assert scores["coverage"] == 0.75 and scores["nmi"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="equal length"):
        alignment_scores([0, 1], ["a"])
    with pytest.raises(ValueError, match="noise must be one of"):
        alignment_scores([0, 1], ["a", "b"], noise="drop")


def test_likelihood_by_attribute_rarest_first():
    table = likelihood_by_attribute([1.0, 1.0, 0.5, 0.1, 0.3], ["day", "day", "day", "night", "night"])
    assert table["value"].tolist() == ["night", "day"]
    night = table.iloc[0]
    assert night["n"] == 2 and night["fraction"] == pytest.approx(0.4)
    assert night["mean_likelihood"] == pytest.approx(0.2) and night["median_likelihood"] == pytest.approx(0.2)
    assert table.iloc[1]["mean_likelihood"] == pytest.approx(2.5 / 3)


def test_attribute_columns_skip_ids_results_and_continuous_values():
    frame = pd.DataFrame({
        "sample_id": list("abcdef"), "location": list("abcdef"), "likelihood": np.linspace(0, 1, 6),
        "weather": ["rain", "sun", "sun", "sun", "rain", "sun"], "has_car": [True, False, True, True, False, True],
        "brightness": [0.13, 0.52, 0.77, 0.31, 0.95, 0.4], "constant": [1] * 6, "label": [0, 1, 2, 0, 1, 2],
    })
    assert attribute_columns(frame) == ["weather", "has_car", "label"]


def test_align_reports_every_attribute():
    samples = pd.DataFrame({
        "sample_id": [str(i) for i in range(6)], "raw_cluster_id": [0, 0, 0, 1, 1, -1],
        "cluster_id": [0, 0, 0, 1, 1, -1], "likelihood": [1, 1, 1, 2 / 3, 2 / 3, 1 / 3],
        "time_of_day": ["day", "day", "day", "night", "night", "night"],
    })
    scores, by_value = align(samples)
    assert scores["attribute"].tolist() == ["time_of_day"]
    assert scores.loc[0, "purity"] == 1.0 and scores.loc[0, "nmi"] < 1.0  # noise group is its own cluster
    night = by_value["time_of_day"].set_index("value").loc["night", "mean_likelihood"]
    assert night == pytest.approx(5 / 9)  # night images are rarer than day (1.0)
    with pytest.raises(ValueError, match="not in the table"):
        align(samples, ["weather"])
