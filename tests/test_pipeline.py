"""deqlib.pipeline.analyze and `deq analyze`: stages chained, cached, reproducible; reference mode."""

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs
from threadpoolctl import threadpool_limits

from deqlib.bank import import_official_pickle, read_bank
from deqlib.cli import main
from deqlib.cluster import DBSCANClusterer, HDBSCANClusterer
from deqlib.pipeline import DegenerateClusteringWarning, Stages, analyze, build_stages
from deqlib.reduce import OpenTSNEReducer, SklearnTSNEReducer
from deqlib.weights import gfl_weight

SHORT = OpenTSNEReducer(early_exaggeration_iter=50, n_iter=50, n_jobs=1)
KNN_DBSCAN = DBSCANClusterer(eps=1.5, min_samples=10, eps_scale="knn")


@pytest.fixture(scope="module")
def data():
    """Four 20-D blobs of unequal size (160, 80, 40, 20) with a class label and a rare flag."""
    X, y = make_blobs(n_samples=[160, 80, 40, 20], n_features=20, cluster_std=1.0, random_state=3,
                      centers=np.random.default_rng(3).normal(scale=8, size=(4, 20)))
    ids = [f"img{i:03d}" for i in range(len(X))]
    meta = pd.DataFrame({"sample_id": ids, "location": [f"/data/{s}.png" for s in ids], "label": y,
                         "rare_blob": y == 3})
    return X.astype(np.float32), ids, meta


STAGE_KEYWORDS = {"mode", "reducer", "reducer_params", "clusterer", "clusterer_params", "noise_policy", "preset",
                  "rarity", "rarity_params", "seed", "eta", "gamma"}


def run(data, tmp_path, **kw):
    """analyze() on the blobs: stage keywords go to build_stages (SHORT and KNN_DBSCAN unless named), the
    rest to analyze."""
    X, ids, meta = data
    stage_options = {"reducer": SHORT, "clusterer": KNN_DBSCAN, **{k: kw.pop(k) for k in list(kw) if k in STAGE_KEYWORDS}}
    options = dict(embeddings=X, sample_ids=ids, metadata=meta, cache=tmp_path / "cache",
                   stages=build_stages(**stage_options))
    options.update(kw)
    return analyze(**options)


def test_the_default_likelihood_is_the_default_signal_beside_the_analysis_clusters(data, tmp_path):
    from deqlib.likelihood import DEFAULT_RARITY_SIGNAL, RarityContext, get_rarity_signal

    X, ids, _ = data
    result = run(data, tmp_path)
    s = result.samples
    assert result.bank.metadata["signal"] == DEFAULT_RARITY_SIGNAL == "multi-granularity+lof"
    expected = get_rarity_signal(DEFAULT_RARITY_SIGNAL).fit(RarityContext(embeddings=X)).likelihood_
    np.testing.assert_allclose(s["likelihood"], expected, rtol=1e-12)  # the embeddings' signal, not the map's
    assert s.groupby("label")["likelihood"].median().idxmin() == 3  # the blob of 20 is the rarest
    assert {"cluster_id", "cluster_size", "raw_cluster_id", "is_noise"} <= set(s.columns)  # the map's clusters stay
    assert s["cluster_size"].max() == s["largest_cluster_size"].iloc[0]


def test_samples_clusters_params_and_bank(data, tmp_path):
    result = run(data, tmp_path, eta=0.5, gamma=2.0, rarity="cluster")  # eq. 3: the cluster mechanics
    s = result.samples
    assert len(s) == 300 and s["sample_id"].tolist() == data[1]
    for column in ["sample_id", "location", "x", "y", "z", "cluster_id", "raw_cluster_id", "is_noise",
                   "cluster_size", "largest_cluster_size", "likelihood", "weight", "label", "rare_blob"]:
        assert column in s.columns, column
    assert s["location"].iloc[0] == "/data/img000.png"
    np.testing.assert_allclose(s["weight"], gfl_weight(s["likelihood"].to_numpy(), eta=0.5, gamma=2.0))
    # the largest blob is the most likely, the blob of 20 the least (of the clustered samples)
    clustered = s[~s["is_noise"]]
    by_label = clustered.groupby("label")["likelihood"].median()
    assert by_label[0] == 1.0 and by_label.idxmin() == 3
    # eq. 3 on the blob of 20: its cluster's size over the largest cluster's
    rare = clustered[clustered["label"] == 3]
    expected = rare["cluster_size"].median() / clustered["largest_cluster_size"].iloc[0]
    assert by_label[3] == pytest.approx(expected) and by_label[3] < 0.5
    # per-cluster table: one row per cluster (+ noise), sizes add up, largest first
    c = result.clusters
    assert c["n_samples"].sum() == 300 and c["n_samples"].is_monotonic_decreasing
    assert set(c["cluster_id"]) == set(s["raw_cluster_id"])
    # alignment with the class labels
    label_row = result.alignment.set_index("attribute").loc["label"]
    assert label_row["nmi"] > 0.9 and label_row["purity"] > 0.95
    rare = result.likelihood_by_value["rare_blob"].set_index("value")["mean_likelihood"]
    assert rare["True"] < rare["False"]  # the rare blob is rarer
    assert result.params["noise_policy"] == "singleton" and result.params["mode"] == "default"
    assert result.params["reduce"]["reducer"] == "opentsne" and result.params["cluster"]["eps_scale"] == "knn"
    assert result.bank.metadata["noise_policy"] == "singleton" and len(result.bank) == 300
    text = result.summary()
    assert "300 samples" in text and "likelihood quantiles" in text and "reduce" in text


SHORT_PARAMS = dict(early_exaggeration_iter=50, n_iter=50, n_jobs=1)


def test_same_inputs_and_seed_give_an_identical_bank(data, tmp_path):
    named = dict(reducer="opentsne", reducer_params=SHORT_PARAMS)  # seed= seeds the parts built by name
    first = run(data, tmp_path, cache=False, seed=7, **named)
    second = run(data, tmp_path / "other", cache=False, seed=7, **named)
    pd.testing.assert_frame_equal(first.bank.table, second.bank.table)
    assert first.bank.metadata == second.bank.metadata
    first.write(tmp_path / "a.parquet")
    second.write(tmp_path / "b.parquet")
    pd.testing.assert_frame_equal(read_bank(tmp_path / "a.parquet").table, read_bank(tmp_path / "b.parquet").table)
    other_seed = run(data, tmp_path, cache=False, seed=8, **named)
    assert not np.allclose(first.samples["x"], other_seed.samples["x"])
    assert first.params["reduce"]["random_state"] == 7 and first.params["seed"] == 7


def test_a_passed_in_reducer_keeps_its_own_random_state(data, tmp_path):
    mine = OpenTSNEReducer(random_state=7, **SHORT_PARAMS)
    result = run(data, tmp_path, reducer=mine, seed=33)
    assert result.params["reduce"]["random_state"] == 7 and mine.random_state == 7
    assert not hasattr(mine, "embedding_")  # analyze fits a clone, the given instance is untouched
    by_name = run(data, tmp_path, reducer="opentsne", reducer_params={**SHORT_PARAMS, "random_state": 7}, seed=33)
    np.testing.assert_array_equal(result.samples[["x", "y", "z"]], by_name.samples[["x", "y", "z"]])
    assert by_name.params["cached"]["reduce"]  # the same reduction: same key


def test_stages_can_be_built_once_and_passed(data, tmp_path):
    stages = build_stages(reducer="opentsne", reducer_params=SHORT_PARAMS, clusterer="dbscan",
                          clusterer_params={"eps": 1.5, "min_samples": 10, "eps_scale": "knn"}, seed=33)
    X, ids, meta = data
    with_stages = analyze(embeddings=X, sample_ids=ids, stages=stages, cache=tmp_path / "c")
    with_instances = run(data, tmp_path)  # SHORT and KNN_DBSCAN: the same parts, random_state 33
    pd.testing.assert_frame_equal(with_stages.bank.table, with_instances.bank.table)
    assert not hasattr(stages.reducer, "embedding_")  # stages are cloned, not fitted in place
    with pytest.raises(TypeError, match="unexpected keyword argument 'clusterer'"):
        analyze(embeddings=X, stages=stages, clusterer="hdbscan")  # one way to name the parts: build_stages
    with pytest.raises(TypeError, match=r"stages must be a Stages from deqlib.stages.build_stages\(...\), got dict"):
        analyze(embeddings=X, stages={"reducer": "umap"})
    with pytest.raises(ValueError, match="scikit-learn's TSNE"):  # a Stages made by hand is checked against its mode
        analyze(embeddings=X, stages=replace(stages, mode="reference"))


def test_analyze_takes_stages_and_a_few_run_options():
    """One way to configure a run: the parts, mode, seed and weight are the stages', not analyze's."""
    import inspect

    parameters = inspect.signature(analyze).parameters
    assert len(parameters) <= 12 and "stages" in parameters
    assert not {"reducer", "clusterer", "noise_policy", "mode", "preset", "seed", "eta", "gamma"} & set(parameters)
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


@pytest.mark.slow
def test_the_default_run_is_build_stages_defaults(data, tmp_path):
    X, ids, meta = data
    X, ids = X[:100], ids[:100]
    implicit = analyze(embeddings=X, sample_ids=ids, cache=tmp_path / "c")
    defaults = build_stages()
    assert implicit.params["reduce"]["key"] == analyze(embeddings=X, sample_ids=ids, cache=tmp_path / "c",
                                                       stages=defaults).params["reduce"]["key"]  # from the cache
    assert implicit.params["reduce"]["random_state"] == 33 and implicit.params["cluster"]["eps_scale"] == "official"
    assert implicit.params["seed"] == 33 and implicit.params["mode"] == "default" and implicit.params["preset"] is None
    assert (implicit.params["eta"], implicit.params["gamma"]) == (1.0, 5.0)
    assert implicit.params["weight_scheme"] == {"scheme": "eq4", "params": {"eta": 1.0, "gamma": 5.0}}
    assert implicit.bank.metadata["weight_scheme"]["scheme"] == "eq4"  # the forks' export reads it
    np.testing.assert_allclose(implicit.samples["weight"], gfl_weight(implicit.samples["likelihood"].to_numpy()))
    with pytest.raises(TypeError, match="cache must be True .* False .* or a folder path, got None"):
        analyze(embeddings=X, cache=None)


def test_a_preset_given_to_build_stages_reaches_the_bank(data, tmp_path):
    X, ids, meta = data
    stages = build_stages(reducer="opentsne", reducer_params=SHORT_PARAMS, preset="kitti",
                          clusterer_params={"eps_scale": "knn"}, seed=33)
    assert stages.preset == "kitti" and stages.clusterer.eps == 2.0  # KITTI's eps from Section 4
    result = analyze(embeddings=X, sample_ids=ids, stages=stages, cache=tmp_path / "c")
    assert result.params["preset"] == "kitti" and result.bank.metadata["preset"] == "kitti"
    assert result.params["cluster"]["eps"] == 2.0


def test_changing_eps_reuses_the_tsne_changing_embeddings_recomputes(data, tmp_path):
    first = run(data, tmp_path)
    assert first.params["cached"] == {"reduce": False, "cluster": False}
    other_eps = run(data, tmp_path, clusterer=DBSCANClusterer(eps=2.5, min_samples=10, eps_scale="knn"))
    assert other_eps.params["cached"] == {"reduce": True, "cluster": False}
    np.testing.assert_array_equal(first.samples[["x", "y", "z"]], other_eps.samples[["x", "y", "z"]])
    again = run(data, tmp_path)
    assert again.params["cached"] == {"reduce": True, "cluster": True}
    pd.testing.assert_frame_equal(first.bank.table, again.bank.table)
    X, ids, meta = data
    changed = run(data, tmp_path, embeddings=X * 1.01)  # e.g. another encoder
    assert changed.params["cached"] == {"reduce": False, "cluster": False}
    assert len(list((tmp_path / "cache" / "reduce").glob("*.npz"))) == 2


def test_hdbscan_outlier_scores_reach_the_samples_and_bank(data, tmp_path):
    result = run(data, tmp_path, clusterer=HDBSCANClusterer(min_cluster_size=10))
    scores = result.samples["outlier_score"]
    assert scores.between(0, 1).all() and "outlier_score" in result.bank.table.columns
    assert "mean_outlier_score" in result.clusters.columns


def test_reference_mode_is_the_official_analysis(data, tmp_path):
    with threadpool_limits(1):
        result = run(data, tmp_path, mode="reference", reducer=SklearnTSNEReducer(max_iter=250), clusterer=None)
    assert result.params["noise_policy"] == "as_cluster"
    assert result.params["reduce"]["reducer"] == "sklearn" and result.params["reduce"]["init"] == "pca"
    assert result.params["cluster"]["eps_scale"] == "raw" and result.params["cluster"]["effective_eps"] == 1.0
    noise = result.samples["is_noise"]
    assert 1 <= noise.sum() <= 10  # a few fringe points; all share one size, the number of noise samples
    assert (result.samples.loc[noise, "cluster_size"] == noise.sum()).all()
    assert result.alignment.set_index("attribute").loc["label", "nmi"] > 0.85
    with pytest.raises(ValueError, match="counts noise as one cluster"):
        run(data, tmp_path, mode="reference", noise_policy="singleton", clusterer=None,
            reducer=SklearnTSNEReducer(max_iter=250))
    with pytest.raises(ValueError, match="scikit-learn's TSNE"):
        run(data, tmp_path, mode="reference", clusterer=None)  # SHORT is an openTSNE reducer
    with pytest.raises(ValueError, match="raw eps"):
        run(data, tmp_path, mode="reference", reducer=SklearnTSNEReducer(max_iter=250))  # knn eps is not the official clustering


def test_degenerate_and_bad_input(data, tmp_path):
    X, ids, meta = data
    with pytest.warns(DegenerateClusteringWarning, match="every sample is noise"):
        noise = run(data, tmp_path, clusterer=DBSCANClusterer(eps=1e-4, min_samples=10, eps_scale="raw"))
    assert noise.degenerate and "DEGENERATE" in noise.summary()
    assert (noise.samples["cluster_size"] == 1).all()  # singletons: still a valid bank, flagged
    with pytest.warns(DegenerateClusteringWarning, match="one cluster holds every sample"):
        run(data, tmp_path, clusterer=DBSCANClusterer(eps=1e4, min_samples=10, eps_scale="raw"))
    bad = X.copy()
    bad[5] = np.inf
    with pytest.raises(ValueError, match=r"embeddings has NaN or infinite values .* \[5\]"):
        run(data, tmp_path, embeddings=bad)
    with pytest.raises(ValueError, match="needs at least 91 samples"):
        run(data, tmp_path, embeddings=X[:50], sample_ids=ids[:50])
    with pytest.raises(ValueError, match="duplicated"):
        run(data, tmp_path, sample_ids=["same"] * 300)
    with pytest.raises(ValueError, match="either source"):
        analyze(cache=tmp_path)


@pytest.mark.slow
def test_cli_writes_bank_and_official_pickle(data, tmp_path, capsys):
    X, ids, meta = data
    np.savez(tmp_path / "emb.npz", vectors=X, sample_ids=np.array(ids), label=meta["label"].to_numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateClusteringWarning)
        code = main(["analyze", "--embeddings", str(tmp_path / "emb.npz"), "--eps", "1.5", "--eps-scale", "knn",
                     "--rarity", "cluster",  # eq. 3: the pickle carries its cluster sizes exactly
                     "--output", str(tmp_path / "bank.parquet"), "--export-official", str(tmp_path / "bank.pkl"),
                     "--cache-dir", str(tmp_path / "cache"), "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert "clusters" in out and "likelihood quantiles" in out and "time per stage" in out
    assert "alignment with 'label': NMI" in out  # extra arrays of the file become metadata
    bank = read_bank(tmp_path / "bank.parquet")
    official = import_official_pickle(tmp_path / "bank.pkl")
    assert len(bank) == len(official) == 300
    merged = bank.table.merge(official.table, on="sample_id", suffixes=("", "_pkl"))
    assert (merged["cluster_size"] == merged["cluster_size_pkl"]).all()
    np.testing.assert_allclose(merged["likelihood"], merged["likelihood_pkl"])
    assert bank.metadata["reduce"]["schedule"] == "fast" and bank.metadata["cluster"]["eps_scale"] == "knn"
    assert main(["analyze", "--embeddings", str(tmp_path / "missing.npz")]) == 2


@pytest.mark.slow  # embeds 150 real images with EfficientNet-Lite0
def test_cli_from_fashion_mnist_images_records_the_embedding_precision(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DEQ_DATA_DIR", str(tmp_path / "data"))
    bank_path = tmp_path / "bank.parquet"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateClusteringWarning)
        code = main(["analyze", "--source", "fashion-mnist", "--max-images", "150", "--precision", "fp32",
                     "--device", "cpu", "--perplexity", "10", "--output", str(bank_path), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    bank = read_bank(bank_path)
    assert len(bank) == 150 and bank.metadata["embedding"]["precision"] == "fp32"
    assert bank.metadata["embedding"]["encoder"] == "efficientnet-lite0"
    cached = list((tmp_path / "data" / "interim" / "embeddings").glob("fashion-mnist-*/*"))
    assert len(cached) == 1  # real vectors were embedded and cached under DEQ_DATA_DIR


class DigitImages:
    """A tiny image source (the deqlib.sources contract) of sklearn's digits, one image unreadable."""

    name = "digits-test"
    root = None
    split = None

    def __init__(self, n: int = 100, broken: int = 17):
        from sklearn.datasets import load_digits

        digits = load_digits()
        self.images = (digits.images[:n] * 16).clip(0, 255).astype(np.uint8)
        self.labels = digits.target[:n]
        self.broken = broken
        self.sample_ids = [f"digit{i:03d}" for i in range(n)]

    def __len__(self):
        return len(self.sample_ids)

    def load(self, index, draft=None):
        from PIL import Image

        if index == self.broken:
            raise OSError(f"cannot decode {self.sample_ids[index]}")
        return Image.fromarray(self.images[index]).convert("RGB")

    def metadata(self):
        return pd.DataFrame({"sample_id": self.sample_ids, "location": [f"mem://{s}" for s in self.sample_ids],
                             "digit": self.labels})

    def fingerprint(self):
        return f"digits-{len(self)}"


def tiny_encoder():
    """A real deqlib Encoder with a parameter-free backbone (4x4 average pooling of 8x8 images),
    so the test exercises embed_source -> analyze without the cost of a CNN."""
    from dataclasses import dataclass

    from torch import nn

    from deqlib.encoders import Encoder

    @dataclass
    class TinyEncoder(Encoder):
        name = "tiny-pool"
        dim = 48
        image_size = (8, 8)

        def _default_weights_identity(self):
            return "none"

        def _build_backbone(self):
            return nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten())

    return TinyEncoder()


def test_from_images_through_the_encoder(tmp_path):
    source = DigitImages()
    with pytest.warns(UserWarning, match="1 images could not be embedded"):
        result = analyze(source=source, encoder=tiny_encoder(), stages=build_stages(reducer=OpenTSNEReducer(
            early_exaggeration_iter=50, n_iter=50, perplexity=10, n_jobs=1), clusterer=KNN_DBSCAN),
            cache=tmp_path / "cache", embed_options={"cache_dir": tmp_path / "emb", "num_workers": 0,
                                                     "device": "cpu"})
    assert len(result.samples) == 99 and "digit017" not in set(result.samples["sample_id"])
    assert result.params["embedding"]["n_failed"] == 1 and result.params["dataset"] == "digits-test"
    assert result.params["embedding"]["encoder"] == "tiny-pool" and result.params["embedding"]["dim"] == 48
    assert result.samples["location"].iloc[0] == "mem://digit000" and "digit" in result.samples.columns
    digit = result.alignment.set_index("attribute").loc["digit"]
    assert digit["nmi"] > 0.3  # even 4x4 pooled digits cluster partly by class


def test_noise_policies_change_only_the_noise_samples(data, tmp_path):
    clusterer = DBSCANClusterer(eps=1.0, min_samples=10, eps_scale="knn")  # leaves some noise
    singleton = run(data, tmp_path, clusterer=clusterer)
    nearest = run(data, tmp_path, clusterer=clusterer, noise_policy="nearest")
    official = run(data, tmp_path, clusterer=clusterer, noise_policy="as_cluster")
    noise = singleton.samples["is_noise"].to_numpy()
    assert 0 < noise.sum() < 150
    assert (singleton.samples.loc[noise, "cluster_size"] == 1).all()
    assert (official.samples.loc[noise, "cluster_size"] == noise.sum()).all()
    assert (nearest.samples["cluster_id"] >= 0).all() and (nearest.samples["raw_cluster_id"] == -1).sum() == noise.sum()
    # clustered samples keep their cluster under every policy; only the largest size may move
    for other in (nearest, official):
        np.testing.assert_array_equal(other.samples.loc[~noise, "raw_cluster_id"],
                                      singleton.samples.loc[~noise, "raw_cluster_id"])
    assert nearest.params["cached"]["reduce"] and nearest.params["cached"]["cluster"]  # same t-SNE, same DBSCAN


# ------------------------------------------------------------------------------- build_stages
def test_default_stages_are_exactly_the_previous_defaults():
    """The default path's numbers cannot move: the same classes with the same parameters as before
    the registries (OpenTSNEReducer() with seed 33, DBSCAN eps 1.0 / 10 in official units, singleton)."""
    stages = build_stages(seed=33, rarity="cluster")
    assert isinstance(stages, Stages) and stages.rarity is None and stages.noise_policy == "singleton"
    assert type(build_stages(seed=33).rarity).__name__ == "RankFusionSignal"  # the default signal since issue 20
    assert stages.reducer.get_params() == OpenTSNEReducer(random_state=33).get_params()
    assert type(stages.clusterer) is DBSCANClusterer
    assert stages.clusterer.get_params() == DBSCANClusterer(eps=1.0, min_samples=10, eps_scale="official").get_params()
    kitti = build_stages(preset="kitti", seed=33).clusterer.get_params()
    assert kitti == DBSCANClusterer.from_preset("kitti").get_params()
    reference = build_stages("reference", preset="bdd100k", seed=33)
    assert reference.reducer.get_params() == SklearnTSNEReducer().get_params()
    assert reference.clusterer.get_params() == DBSCANClusterer(eps=1.5, min_samples=100, eps_scale="raw").get_params()
    assert reference.noise_policy == "as_cluster"
    assert build_stages(seed=None).reducer.random_state == 33  # no seed: the part's own default


def test_build_stages_names_params_presets_and_errors():
    hdb = build_stages(clusterer="hdbscan", preset="bdd100k", clusterer_params={"cluster_selection_method": "leaf"})
    assert (hdb.clusterer.min_cluster_size, hdb.clusterer.cluster_selection_method) == (100, "leaf")
    assert build_stages(reducer="sklearn-tsne", seed=5).reducer.random_state == 5  # aliases resolve
    assert build_stages(clusterer_params={"eps": 3.0}, preset="kitti").clusterer.eps == 3.0  # params beat the preset
    with pytest.raises(ValueError, match=r"unknown parameter 'eps' for the clusterer 'hdbscan'; valid: .*min_cluster_size"):
        build_stages(clusterer="hdbscan", clusterer_params={"eps": 1.0})
    with pytest.raises(ValueError, match="unknown reducer 'tsnecuda'; choose one of opentsne, sklearn"):
        build_stages(reducer="tsnecuda")
    with pytest.raises(ValueError, match="unknown preset"):
        build_stages(preset="argoverse")
    with pytest.raises(ValueError, match="reducer_params apply to a reducer given by name"):
        build_stages(reducer=OpenTSNEReducer(), reducer_params={"perplexity": 10})
    with pytest.raises(ValueError, match="min_samples must be an integer >= 1, got True"):
        build_stages(clusterer_params={"min_samples": True})  # checked when built, not after the t-SNE
    with pytest.raises(ValueError, match="reference.*raw eps"):
        build_stages("reference", clusterer_params={"eps_scale": "knn"})
    with pytest.raises(ValueError, match="mode must be one of"):
        build_stages("fast")


def test_official_eps_is_refused_after_a_reducer_that_is_not_a_tsne():
    from deqlib.reduce import REDUCERS

    assert {REDUCERS.entry(n).extra["output"] for n in ("opentsne", "sklearn")} == {"tsne"}
    stages = build_stages(reducer="umap")  # not a t-SNE: eps defaults to k-NN units
    assert stages.clusterer.eps_scale == "knn" and stages.clusterer.cache_key()["eps_calibrated_on"] is None
    assert build_stages().clusterer.cache_key()["eps_calibrated_on"] == "sklearn-tsne"
    with pytest.raises(ValueError, match="eps_scale='official' is calibrated on scikit-learn t-SNE output.*'knn'"):
        build_stages(reducer="umap", clusterer_params={"eps_scale": "official"})
    with pytest.raises(ValueError, match="calibrated on scikit-learn t-SNE"):
        build_stages(reducer="umap", clusterer=DBSCANClusterer())  # an instance is checked too


def _analyze_args(*argv):
    from deqlib.cli import build_parser

    return build_parser().parse_args(["analyze", "--embeddings", "x.npz", *argv])


def test_cli_stage_options_reach_every_registered_part():
    from deqlib.commands.analyze import stages_from_args
    from deqlib.reduce import REDUCERS, UMAPReducer

    default = stages_from_args(_analyze_args(), seed=33)
    expected = build_stages(seed=33)
    assert default.reducer.get_params() == expected.reducer.get_params()
    assert default.clusterer.get_params() == expected.clusterer.get_params()
    stages = stages_from_args(_analyze_args(
        "--reducer", "umap", "--reducer-param", "n_neighbors=30", "--pca", "0", "--clusterer", "hdbscan",
        "--clusterer-param", "cluster_selection_method=leaf", "--min-cluster-size", "20", "--min-samples", "5"), seed=4)
    assert isinstance(stages.reducer, UMAPReducer)
    assert (stages.reducer.n_neighbors, stages.reducer.pca_components, stages.reducer.random_state) == (30, None, 4)
    assert (stages.clusterer.min_cluster_size, stages.clusterer.min_samples,
            stages.clusterer.cluster_selection_method) == (20, 5, "leaf")
    kitti = stages_from_args(_analyze_args("--preset", "kitti", "--schedule", "official", "--perplexity", "20"))
    assert (kitti.clusterer.eps, kitti.reducer.schedule, kitti.reducer.perplexity) == (2.0, "official", 20.0)
    with pytest.raises(ValueError, match="unknown parameter 'schedule' for the reducer 'umap'"):
        stages_from_args(_analyze_args("--reducer", "umap", "--schedule", "fast"))  # never silently dropped
    with pytest.raises(ValueError, match="--eps and --clusterer-param eps=... both set eps"):
        stages_from_args(_analyze_args("--eps", "2", "--clusterer-param", "eps=3"))
    with pytest.raises(ValueError, match="--reducer-param 'theta' must be KEY=VALUE"):
        stages_from_args(_analyze_args("--reducer-param", "theta"))
    # the choices are read from the registry when the parser is built: a new part is an option at once
    REDUCERS.register("identity-test", summary="a test part")(OpenTSNEReducer)
    try:
        assert stages_from_args(_analyze_args("--reducer", "identity-test")).reducer.__class__ is OpenTSNEReducer
    finally:
        REDUCERS.unregister("identity-test")
    with pytest.raises(SystemExit):
        _analyze_args("--reducer", "identity-test")
