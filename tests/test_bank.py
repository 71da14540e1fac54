"""Parquet banks, the official pickle, the restricted unpickler and atomic writes."""

import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from deqlib import bank as bank_module
from deqlib.bank import (
    BankFormatError,
    LikelihoodBank,
    UnsafePickleError,
    bank_from_labels,
    export_official_pickle,
    import_official_pickle,
    read_bank,
    write_bank,
)

IDS = [f"{i:06d}" for i in range(8)]
LABELS = np.array([0, 0, 0, 1, 1, 2, -1, -1])
COORDS = np.arange(24, dtype=float).reshape(8, 3)


def make_bank(policy="singleton"):
    return bank_from_labels(IDS, LABELS, noise_policy=policy, coords=COORDS,
                            metadata={"dataset": "kitti", "model": "resnet101", "parameters": {"eps": 2.0}})


def test_bank_from_labels_columns_and_values():
    bank = make_bank()
    table = bank.table
    assert list(table.columns[:5]) == ["sample_id", "cluster_id", "cluster_size", "largest_cluster_size", "likelihood"]
    np.testing.assert_array_equal(table.cluster_size, [3, 3, 3, 2, 2, 1, 1, 1])
    np.testing.assert_array_equal(table.cluster_id, LABELS)
    assert (table.largest_cluster_size == 3).all()
    np.testing.assert_allclose(table.likelihood, table.cluster_size / 3)
    np.testing.assert_allclose(table[["x", "y", "z"]].to_numpy(), COORDS)
    assert bank.metadata["n_noise"] == 2 and bank.metadata["n_clusters"] == 3
    assert bank.metadata["noise_fraction"] == pytest.approx(0.25)


def test_official_policy_bank_counts_noise_as_one_group():
    table = make_bank("as_cluster").table
    np.testing.assert_array_equal(table.cluster_size, [3, 3, 3, 2, 2, 1, 2, 2])


def test_parquet_round_trip_keeps_table_and_metadata(tmp_path):
    bank = make_bank()
    path = write_bank(tmp_path / "kitti.parquet", bank)
    loaded = read_bank(path)
    pd.testing.assert_frame_equal(loaded.table, bank.table)
    meta = loaded.metadata
    assert meta["dataset"] == "kitti" and meta["model"] == "resnet101" and meta["parameters"] == {"eps": 2.0}
    assert meta["noise_policy"] == "singleton"
    assert meta["versions"]["deqlib"] and meta["created_at"].startswith("20")
    assert loaded.likelihood_of(["000005", "000000"]).tolist() == pytest.approx([1 / 3, 1.0])
    with pytest.raises(KeyError, match="999999"):
        loaded.likelihood_of(["999999"])


def test_official_pickle_round_trip_plain_python_types(tmp_path):
    bank = make_bank("as_cluster")
    path = export_official_pickle(bank, tmp_path / "kitti_training_cluster_info.pkl")
    with open(path, "rb") as handle:
        raw = pickle.load(handle)
    assert raw["000000"] == {"cluster_id": 0, "cluster_size": 3, "largest_cluster_size": 3}
    assert all(type(k) is str for k in raw)
    assert all(type(v) is int for entry in raw.values() for v in entry.values())
    loaded = import_official_pickle(path)
    pd.testing.assert_frame_equal(loaded.table, bank.table[loaded.table.columns])
    assert loaded.metadata["source_format"] == "official-pickle"


class _RunsACommand:
    def __reduce__(self):
        return (os.system, ("touch PWNED_BY_PICKLE",))


def test_hostile_pickle_is_refused_without_running_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"000000": _RunsACommand()}))
    # The same bytes really would run the command under plain pickle (proof the test is meaningful).
    pickle.loads(path.read_bytes())
    assert (tmp_path / "PWNED_BY_PICKLE").exists()
    (tmp_path / "PWNED_BY_PICKLE").unlink()
    with pytest.raises(UnsafePickleError, match="system"):
        import_official_pickle(path)
    assert not (tmp_path / "PWNED_BY_PICKLE").exists()


def test_numpy_ints_load_by_default_and_can_be_refused(tmp_path):
    # The official notebooks pickle numpy integers: they load safely without any flag.
    path = tmp_path / "np.pkl"
    path.write_bytes(pickle.dumps({"a": {"cluster_id": np.int64(0), "cluster_size": np.int64(2),
                                         "largest_cluster_size": np.int64(3)}}))
    assert import_official_pickle(path).table.cluster_size.tolist() == [2]
    with pytest.raises(UnsafePickleError, match="allow_numpy_scalars"):
        import_official_pickle(path, allow_numpy_scalars=False)


@pytest.mark.parametrize("payload,match", [
    ([1, 2], "dict"),
    ({1: {"cluster_id": 0, "cluster_size": 1, "largest_cluster_size": 1}}, "key_listing"),
    ({1: {"cluster_id": 0, "cluster_size": 1, "largest_cluster_size": 1},
      "a": {"cluster_id": 0, "cluster_size": 1, "largest_cluster_size": 1}}, "mix strings and integers"),
    ({"a": {"cluster_id": 0}}, "keys"),
    ({"a": {"cluster_id": 0, "cluster_size": 1.5, "largest_cluster_size": 2}}, "integers"),
])
def test_malformed_official_pickles(tmp_path, payload, match):
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(BankFormatError, match=match):
        import_official_pickle(path)


def test_truncated_pickle(tmp_path):
    path = tmp_path / "cut.pkl"
    export_official_pickle(make_bank(), path)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(BankFormatError, match="not a readable pickle"):
        import_official_pickle(path)


def test_duplicate_and_missing_ids_rejected_on_write_and_read(tmp_path):
    table = make_bank().table
    dup = table.copy()
    dup.loc[1, "sample_id"] = "000000"
    with pytest.raises(BankFormatError, match="duplicate"):
        LikelihoodBank(dup)
    missing = table.copy()
    missing.loc[2, "sample_id"] = None
    with pytest.raises(BankFormatError, match="missing"):
        LikelihoodBank(missing)
    # A file edited behind our back is rejected on read too.
    path = write_bank(tmp_path / "b.parquet", make_bank())
    arrow = pq.read_table(path)
    ids = arrow.column("sample_id").to_pylist()
    ids[3] = ids[0]
    import pyarrow as pa
    arrow = arrow.set_column(0, "sample_id", pa.array(ids))
    pq.write_table(arrow, path)
    with pytest.raises(BankFormatError, match="duplicate"):
        read_bank(path)


def test_partial_bank_detected_on_read(tmp_path):
    path = write_bank(tmp_path / "b.parquet", make_bank())
    arrow = pq.read_table(path)
    pq.write_table(arrow.slice(0, 5), path)  # keeps the schema metadata (n_samples = 8)
    with pytest.raises(BankFormatError, match="partial"):
        read_bank(path)


def test_read_rejects_non_banks(tmp_path):
    pq.write_table(__import__("pyarrow").table({"a": [1]}), tmp_path / "x.parquet")
    with pytest.raises(BankFormatError, match="not a deqlib bank"):
        read_bank(tmp_path / "x.parquet")
    with pytest.raises(FileNotFoundError, match="deq analyze"):
        read_bank(tmp_path / "nope.parquet")


def test_interrupted_write_leaves_previous_bank_intact(tmp_path, monkeypatch):
    path = write_bank(tmp_path / "b.parquet", make_bank())
    before = path.read_bytes()

    def crash(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1 half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(pq, "write_table", crash)
    with pytest.raises(KeyboardInterrupt):
        write_bank(path, make_bank("as_cluster"))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["b.parquet"]  # no temp file left behind


def test_validation_of_values():
    table = make_bank().table
    for column, value, match in [("cluster_size", 0, ">= 1"), ("likelihood", 1.5, r"\(0, 1\]"),
                                 ("cluster_size", 99, "exceed")]:
        bad = table.copy()
        bad.loc[0, column] = value
        with pytest.raises(BankFormatError, match=match):
            LikelihoodBank(bad)
    with pytest.raises(ValueError, match="match one to one"):
        bank_from_labels(IDS[:3], LABELS)


def test_official_filenames_match_reference():
    assert bank_module.OFFICIAL_BANK_FILENAMES == {
        "kitti": "kitti_training_cluster_info.pkl", "nuscenes": "nuscenes_training_cluster_info.pkl"}


# ------------------------------------------------------------------ rarity signals in banks (issue 11)
def test_bank_from_labels_validates_scale_as_scaled_likelihood_does():
    from deqlib.likelihood import scaled_likelihood

    for bad in (True, False, 0.0, 1.5, -1, "0.5", None):
        messages = []
        for build in (lambda: bank_from_labels(IDS, LABELS, scale=bad), lambda: scaled_likelihood(LABELS, scale=bad)):
            with pytest.raises(ValueError, match=r"scale \(K~\) must be a number in \(0, 1\]") as info:
                build()
            messages.append(str(info.value))
        assert messages[0] == messages[1]
    assert bank_from_labels(IDS, LABELS, scale=0.5).table.likelihood.max() == 0.5


def test_cluster_bank_records_its_signal_and_its_pickle_is_unchanged(tmp_path):
    bank = make_bank("nearest")
    assert bank.metadata["signal"] == "cluster" and bank.has_clusters
    assert bank.metadata["signal_params"] == {"noise_policy": "nearest", "scale": 1.0, "n_clusters": 3, "n_noise": 2}
    # the forks' pickle, built here by hand from the labels: noise (rows 6, 7 at (18..23)) joins cluster 2 at (15..17)
    sizes = {0: 3, 1: 2, 2: 3}
    ids = [0, 0, 0, 1, 1, 2, 2, 2]
    expected = {IDS[i]: {"cluster_id": ids[i], "cluster_size": sizes[ids[i]], "largest_cluster_size": 3}
                for i in range(8)}
    path = export_official_pickle(bank, tmp_path / "b.pkl")
    assert path.read_bytes() == pickle.dumps(expected, protocol=4)


def test_bank_without_cluster_columns_round_trips_and_exports_quantised_pairs(tmp_path):
    likelihood = np.linspace(0.1, 1.0, 8)
    bank = bank_module.bank_from_likelihood(IDS, likelihood, "knn-density", {"k": 10}, coords=COORDS,
                                            metadata={"dataset": "kitti"},
                                            extra_columns={"outlier_score": np.zeros(8)})
    assert not bank.has_clusters and list(bank.table.columns) == ["sample_id", "likelihood", "x", "y", "z",
                                                                  "outlier_score"]
    back = read_bank(write_bank(tmp_path / "b.parquet", bank))
    assert back.metadata["signal"] == "knn-density" and back.metadata["signal_params"] == {"k": 10}
    np.testing.assert_array_equal(back.likelihood_of(IDS), likelihood)
    # the forks' pickle carries it as (round(p * 10**6), 10**6): 0.1 -> 100000, 0.228571... -> 228571
    with open(export_official_pickle(back, tmp_path / "b.pkl"), "rb") as handle:
        payload = pickle.load(handle)
    assert payload[IDS[0]] == {"cluster_id": -1, "cluster_size": 100000, "largest_cluster_size": 10**6}
    assert payload[IDS[1]]["cluster_size"] == 228571 and payload[IDS[7]]["cluster_size"] == 10**6
    assert back.metadata["official_export"]["likelihood_levels"] == bank_module.LIKELIHOOD_LEVELS == 10**6
    # a signal the registry does not know, with no cluster columns, too; the rarest / median fills use the levels
    mine = bank_module.bank_from_likelihood(IDS, likelihood, "my-signal")
    filled = import_official_pickle(export_official_pickle(mine, tmp_path / "c.pkl", missing="rarest",
                                                           expected_ids=[*IDS, "999999"]))
    assert filled.likelihood_of("999999") == 1e-6
    np.testing.assert_allclose(filled.likelihood_of(IDS), likelihood, atol=5e-7, rtol=0)
    # a likelihood below 0.5e-6 still gets the smallest pair, (1, 10**6), never 0
    tiny = bank_module.bank_from_likelihood(IDS[:2], [1e-9, 1.0], "my-signal")
    assert import_official_pickle(export_official_pickle(tiny, tmp_path / "d.pkl")).likelihood_of(IDS[0]) == 1e-6


def test_cluster_columns_are_all_or_none():
    table = make_bank().table.drop(columns=["largest_cluster_size"])
    with pytest.raises(BankFormatError, match=r"cluster column\(s\) \['cluster_id', 'cluster_size'\] but not "
                                              r"\['largest_cluster_size'\]"):
        LikelihoodBank(table)
    with pytest.raises(BankFormatError, match=r"missing column\(s\) \['likelihood'\]"):
        LikelihoodBank(make_bank().table.drop(columns=["likelihood"]))


def test_a_bank_written_before_signals_loads_and_exports(tmp_path):
    old = make_bank("as_cluster")
    old.metadata = {k: v for k, v in old.metadata.items() if k not in ("signal", "signal_params")}
    back = read_bank(write_bank(tmp_path / "old.parquet", old))
    assert "signal" not in back.metadata
    export_official_pickle(back, tmp_path / "old.pkl")
    np.testing.assert_array_equal(import_official_pickle(tmp_path / "old.pkl").likelihood_of(IDS),
                                  old.table.likelihood)


def test_bank_from_signal_needs_a_fitted_signal():
    from deqlib.likelihood import ClusterSignal

    with pytest.raises(ValueError, match="not fitted"):
        bank_module.bank_from_signal(IDS, ClusterSignal())


def test_pickle_export_refuses_a_likelihood_the_forks_would_not_recompute(tmp_path):
    scaled = bank_from_labels(IDS, LABELS, scale=0.5)  # cluster-based, but likelihood = size / largest * 0.5
    with pytest.raises(BankFormatError, match=r"cluster_size / largest_cluster_size.*K~ = 0.5.*scale=1.0"):
        export_official_pickle(scaled, tmp_path / "s.pkl")
    assert not (tmp_path / "s.pkl").exists()
