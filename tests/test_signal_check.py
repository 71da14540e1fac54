"""The default signal's check (issue 20, deliverable 3): its benchmark row, its stability under
row order, rounding and threads, and the per-sample figures a per-sample signal needs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from deqlib.likelihood import DEFAULT_RARITY_SIGNAL, RarityContext, get_rarity_signal
from deqlib.recovery import STABILITY_TOLERANCE, benchmark_row, benchmark_summary, signal_stability


def _vectors(n=600, dim=32, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (4, dim)) + 10
    sizes = (280, 200, 100, n - 580)
    return np.vstack([rng.normal(0, 1, (k, dim)) + c for k, c in zip(sizes, centres)]).astype(np.float32)


def test_signal_stability_of_the_default_signal_stays_within_the_target():
    """On real images (Fashion-MNIST pixels; the quickstart's own check runs on its embeddings and is
    written to figures/fashion-mnist_signal_check.csv)."""
    from deqlib.sources import open_source

    n = 800
    source = open_source("fashion-mnist", max_images=n, seed=0)
    X = np.stack([np.asarray(source.load(i))[:, :, 0] for i in range(n)]).reshape(n, -1) / np.float32(255.0)
    stability = signal_stability(X, None)
    assert stability["signal"] == DEFAULT_RARITY_SIGNAL and stability["n"] == n
    for what in ("row_order", "rounding_fp32", "rounding_fp16", "threads"):
        assert stability[what] >= 1 - STABILITY_TOLERANCE, (what, stability[what])


def test_signal_stability_sees_a_signal_that_depends_on_the_row_order():
    class FirstRowsCommon:
        """Likelihood by row position: a signal that is all row order."""

        name = "row-position"

        def get_params(self, deep=True):
            return {}

        def set_params(self, **params):
            return self

        def fit(self, context):
            n = len(context.embeddings)
            self.likelihood_ = np.linspace(1.0, 1.0 / n, n)
            return self

    stability = signal_stability(_vectors(), FirstRowsCommon())
    assert abs(stability["row_order"]) < 0.2  # a random permutation: no rank agreement left
    assert stability["rounding_fp32"] == pytest.approx(1.0) and stability["threads"] == pytest.approx(1.0)


def _cells():
    rows = []
    for task, aucs in (("fog@3%", (0.9, 0.7)), ("night@3%", (0.8, 0.6)), ("hard@3%", (0.55, 0.5))):
        for variant, auc in zip(("good", "weak"), aucs):
            rows.append({"encoder": "efficientnet-lite0", "task": task, "seed": 0, "variant": variant, "tier": "cheap",
                         "roc_auc": auc, "ap_over_prevalence": 10 * auc, "precision_at_prevalence": auc / 2,
                         "weight_ratio_1_5": 1.5, "weight_ratio_0.3_5": 3.0, "spearman_ab": 1.0, "n_levels": 100,
                         "cost_ratio": 0.5})
    probes = [{"encoder": "efficientnet-lite0", "task": t, "seed": 0, "probe_auc": p}
              for t, p in (("fog@3%", 0.95), ("night@3%", 0.92), ("hard@3%", 0.6))]
    return rows, probes


def test_benchmark_summary_counts_only_tasks_the_encoder_can_see_and_reports_the_worst():
    rows, probes = _cells()
    summary = benchmark_summary(pd.DataFrame(rows), pd.DataFrame(probes)).set_index("signal")
    assert summary.loc["good", "mean AUC (ceiling >= 0.9)"] == pytest.approx(0.85)  # fog and night, not "hard"
    assert summary.loc["good", "tasks >= 0.9"] == 2
    assert summary.loc["weak", "min task AUC"] == pytest.approx(0.5)
    assert summary.loc["weak", "AP / prevalence"] == pytest.approx(10 * (0.7 + 0.6 + 0.5) / 3)


def test_benchmark_row_reads_the_newest_run_that_holds_the_signal(tmp_path):
    rows, probes = _cells()
    run = {"host": {"date": "2026-12-03 02:00 UTC", "cpu": "test CPU", "cores": 2}, "n": 5000}
    (tmp_path / "rarity-full-20261201T000000Z.json").write_text(json.dumps({"run": run, "cells": rows, "probes": probes}))
    newer = [dict(r, roc_auc=0.99) for r in rows if r["variant"] == "weak"]
    (tmp_path / "rarity-full-20261202T000000Z.json").write_text(json.dumps({"run": run, "cells": newer,
                                                                            "probes": probes}))
    good = benchmark_row("good", results_dir=tmp_path)
    assert good["file"] == "rarity-full-20261201T000000Z.json"  # the newer run lacks it
    assert good["mean AUC (ceiling >= 0.9)"] == pytest.approx(0.85) and good["n"] == 5000
    assert benchmark_row("weak", results_dir=tmp_path)["min task AUC"] == pytest.approx(0.99)
    assert benchmark_row("absent", results_dir=tmp_path) is None


def test_the_committed_benchmark_has_a_row_for_the_default_signal():
    row = benchmark_row(DEFAULT_RARITY_SIGNAL)
    assert row is not None and row["n"] == 5000 and row["tasks >= 0.9"] >= 10
    assert 0.5 < row["mean AUC (ceiling >= 0.9)"] <= 1.0


def test_per_sample_figures_rank_samples_and_clusters_by_the_signal(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from deqlib.plots.clusters import _cluster_likelihood, likelihood_histogram, sample_gallery

    X = _vectors()
    likelihood = get_rarity_signal().fit(RarityContext(embeddings=X)).likelihood_
    samples = pd.DataFrame({"sample_id": [f"s{i:04d}" for i in range(len(X))],
                            "cluster_id": np.repeat([0, 1, 2, 3], [280, 200, 100, 20]), "likelihood": likelihood})
    per_cluster = _cluster_likelihood(samples)
    assert per_cluster.loc[0] == pytest.approx(likelihood[:280].mean())  # a per-sample signal: the mean

    eq3 = samples.assign(likelihood=samples["cluster_id"].map({0: 1.0, 1: 200 / 280, 2: 100 / 280, 3: 20 / 280}))
    assert _cluster_likelihood(eq3).loc[3] == 20 / 280  # eq. 3: the cluster's one value, exactly

    class Source:
        sample_ids = list(samples["sample_id"])

        def load(self, position):
            return np.full((8, 8), position % 255, dtype=np.uint8)

    figure = sample_gallery(samples, Source(), "rarest", n_images=12, columns=6)
    titles = [a.get_title() for a in figure.axes if a.get_title()]
    lowest = np.sort(likelihood)[:12]
    assert titles == [f"{v:.3g}" for v in lowest]
    assert "lowest likelihood" in figure._suptitle.get_text()
    with pytest.raises(ValueError, match="rarest"):
        sample_gallery(samples, Source(), "odd")
    histogram = likelihood_histogram(samples)
    assert f"{np.unique(likelihood).size:,} distinct values" in histogram.axes[0].get_title()
