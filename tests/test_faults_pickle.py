"""Fault injection: hostile, malformed and official-but-awkward bank files.

Each hostile file must be refused quickly (bounded time) with a short message that names the
file, and must never crash the interpreter. Cases that crashed or hung before the safe reader
run in a subprocess with a timeout, so a regression fails the test instead of killing pytest.
"""

from __future__ import annotations

import json
import os
import pickle
import pickletools
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

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
from deqlib.training import BankLookup, load_bank

REPO = Path(__file__).resolve().parents[1]
FIELDS = ("cluster_id", "cluster_size", "largest_cluster_size")
SHORT = 400  # characters: a refusal is one readable sentence, not a dump of the data


# ------------------------------------------------------------------------- hand-made opcodes
def _str(text: str) -> bytes:
    raw = text.encode()
    return b"X" + len(raw).to_bytes(4, "little") + raw  # BINUNICODE


def _int(value: int) -> bytes:
    return b"J" + value.to_bytes(4, "little", signed=True)  # BININT


def _scalar(dtype_name: str, raw: bytes, byteorder: str = "|", module: str = "numpy._core.multiarray") -> bytes:
    """Opcodes of ``numpy scalar(dtype(dtype_name), raw)``, exactly as numpy pickles a scalar."""
    return (f"c{module}\nscalar\n".encode() + b"cnumpy\ndtype\n" + _str(dtype_name) + b"\x89\x88\x87R"
            + b"(K\x03" + _str(byteorder) + b"NNN" + _int(-1) + _int(-1) + b"K\x3ftb"
            + b"C" + bytes([len(raw)]) + raw + b"\x86R")


def _entry(cluster_id: bytes) -> bytes:
    """{'000000': {'cluster_id': <opcodes>, 'cluster_size': 1, 'largest_cluster_size': 1}} (protocol 3)."""
    return (b"\x80\x03}(" + _str("000000") + b"}(" + _str("cluster_id") + cluster_id
            + _str("cluster_size") + b"K\x01" + _str("largest_cluster_size") + b"K\x01uu.")


def _list_bomb(levels: int) -> bytes:
    """A dict whose entry is a list of lists sharing references: 2**levels leaves in ~6*levels bytes."""
    body = b"]q\x000"  # EMPTY_LIST, BINPUT 0, POP
    for i in range(1, levels):  # MARK GET GET LIST PUT POP
        body += b"(h" + bytes([i - 1]) + b"h" + bytes([i - 1]) + b"lq" + bytes([i]) + b"0"
    return b"\x80\x02}(" + _str("000000") + body + b"h" + bytes([levels - 1]) + b"u."


def _hash_bomb(levels: int) -> bytes:
    """A dict keyed by a tuple of tuples sharing references: hashing it visits 2**levels tuples."""
    body = b")q\x000"  # EMPTY_TUPLE, BINPUT 0, POP
    for i in range(1, levels):  # GET GET TUPLE2 PUT POP
        body += b"h" + bytes([i - 1]) + b"h" + bytes([i - 1]) + b"\x86q" + bytes([i]) + b"0"
    return b"\x80\x02}" + body + b"h" + bytes([levels - 1]) + b"K\x01s."


def _deep(levels: int) -> bytes:
    """{'000000': [[[...]]]} nested ``levels`` deep."""
    return b"\x80\x02}(" + _str("000000") + b"]" * levels + b"a" * (levels - 1) + b"u."


def _run_isolated(path: Path, call: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
    """Import ``path`` in a fresh interpreter; a segfault or a hang fails the test, not pytest."""
    body = textwrap.indent(textwrap.dedent(call).strip(), " " * 4)
    code = ("import sys\nfrom deqlib.bank import import_official_pickle, BankFormatError\ntry:\n" + body +
            "\nexcept BankFormatError as exc:\n    print('REFUSED', type(exc).__name__, exc)\n    sys.exit(3)\n"
            "print('LOADED')\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=path.parent)


# --------------------------------------------------------------------- crafted numpy scalars
def test_crafted_object_scalar_is_refused_not_a_segfault(tmp_path):
    # scalar(dtype('O'), 8 bytes) makes numpy treat the 8 bytes as an object pointer: the old
    # reader, given allow_numpy_scalars=True, crashed the interpreter (exit -11) here.
    path = tmp_path / "pointer.pkl"
    path.write_bytes(_entry(_scalar("O8", b"\x41" * 8)))
    started = time.perf_counter()
    done = _run_isolated(path, "import_official_pickle('pointer.pkl', allow_numpy_scalars=True)")
    assert done.returncode == 3, (done.returncode, done.stdout, done.stderr[-500:])
    assert "UnsafePickleError" in done.stdout and "pointer.pkl" in done.stdout and "O8" in done.stdout
    assert time.perf_counter() - started < 30


CONFUSED = {
    "short_bytes": (_scalar("i8", b"\x01" * 4), "needs 8 bytes, got 4"),    # would read past the bytes
    "long_bytes": (_scalar("i8", b"\x01" * 16), "needs 8 bytes, got 16"),
    "void_dtype": (_scalar("V8", b"\x01" * 8), "only numeric dtypes"),     # raw memory (crashed before)
    "datetime_dtype": (_scalar("M8", b"\x01" * 8), "only numeric dtypes"),
    "object_dtype_old_module": (_scalar("O8", b"\x41" * 8, module="numpy.core.multiarray"), "only numeric"),
    "dtype_without_scalar": (b"cnumpy\ndtype\n" + _str("i8") + b"\x89\x88\x87R" + b"C\x02ab" + b"\x86R",
                             "REDUCE of str"),
    "dtype_as_string": (b"cnumpy._core.multiarray\nscalar\n" + _str("i8") + b"C\x08" + b"\x00" * 8 + b"\x86R",
                        "numeric dtype and its raw bytes"),
    "state_for_a_dict": (b"}" + b"(K\x03" + _str("<") + b"tb", "BUILD on dict"),
}


def test_type_confused_numpy_scalars_are_refused(tmp_path):
    # All in one fresh interpreter: several of these crashed the old reader (given
    # allow_numpy_scalars=True), and a crash must fail this test, not end the test run.
    for name, (opcodes, _) in CONFUSED.items():
        (tmp_path / f"{name}.pkl").write_bytes(_entry(opcodes))
    names = list(CONFUSED)
    done = _run_isolated(tmp_path / "x", f"""
        import json
        out = {{}}
        for name in {names!r}:
            try:
                import_official_pickle(name + '.pkl', allow_numpy_scalars=True)
                out[name] = ['LOADED', '']
            except BankFormatError as exc:
                out[name] = [type(exc).__name__, str(exc)]
        print(json.dumps(out))""", timeout=60)
    assert done.returncode == 0, (done.returncode, done.stderr[-800:])
    results = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("{")))
    for name, (_, match) in CONFUSED.items():
        kind, message = results[name]
        assert kind == "UnsafePickleError", (name, kind, message)
        assert match in message and f"{name}.pkl" in message and len(message) < SHORT, (name, message)


def _official_numpy_bank(tmp_path: Path) -> tuple[Path, dict]:
    # What the official notebooks write: numpy integer values (labels[i], np.sum(...)).
    labels = np.array([0, 0, 1, -1, 0])
    largest = np.int64(3)
    payload = {f"{i:06d}": {"cluster_id": labels[i], "cluster_size": np.sum(labels == labels[i]),
                            "largest_cluster_size": largest} for i in range(5)}
    path = tmp_path / "kitti_training_cluster_info.pkl"
    path.write_bytes(pickle.dumps(payload))
    return path, payload


def test_official_numpy_pickle_loads_by_default_everywhere(tmp_path):
    path, payload = _official_numpy_bank(tmp_path)
    expected = [int(payload[k]["cluster_size"]) / 3 for k in sorted(payload)]
    for bank in (import_official_pickle(path), load_bank(path), BankLookup(path).bank):
        assert bank.table["sample_id"].tolist() == sorted(payload)
        assert bank.table["likelihood"].tolist() == pytest.approx(expected)
        assert bank.table["cluster_id"].tolist() == [0, 0, 1, -1, 0]
    weights = BankLookup(path, eta=1.0, gamma=5.0).weights(["000002", "000000"])
    assert weights.tolist() == pytest.approx([(1 + (1 - 1 / 3) ** 5) / 2, (1 + 0.0) / 2])


@pytest.mark.parametrize("protocol", [0, 2, 3, 4, 5])
def test_numpy_scalars_of_every_protocol_are_rebuilt_exactly(tmp_path, protocol):
    # Protocol 2 spells the raw bytes as _codecs.encode(str, 'latin1'); 0 and 1 as text opcodes.
    values = {"cluster_id": np.int64(-7), "cluster_size": np.uint32(5), "largest_cluster_size": np.int16(9)}
    path = tmp_path / f"p{protocol}.pkl"
    path.write_bytes(pickle.dumps({"000042": values}, protocol=protocol))
    row = import_official_pickle(path).table.iloc[0]
    assert (row.cluster_id, row.cluster_size, row.largest_cluster_size) == (-7, 5, 9)


# ------------------------------------------------------------------- shared references, depth
@pytest.mark.parametrize("name,payload", [
    ("list_bomb", _list_bomb(40)),   # 2**40 leaves; the old reader built a 400 MB message for 2**26
    ("hash_bomb", _hash_bomb(60)),   # hashing the key never ends
    ("deep", _deep(100_000)),        # repr of it overflowed the recursion limit
])
def test_bombs_are_refused_fast_with_a_short_message(tmp_path, name, payload):
    path = tmp_path / f"{name}.pkl"
    path.write_bytes(payload)
    assert len(payload) < 250_000
    started = time.perf_counter()
    done = _run_isolated(path, f"import_official_pickle({path.name!r})", timeout=20)
    assert time.perf_counter() - started < 20
    assert done.returncode == 3, (done.returncode, done.stdout[:300], done.stderr[-300:])
    message = done.stdout.strip()
    assert "UnsafePickleError" in message and path.name in message
    assert ("shared reference" in message) or ("nested deeper" in message)
    assert len(message) < SHORT


def test_bomb_refusal_in_process_takes_milliseconds(tmp_path):
    path = tmp_path / "bomb.pkl"
    path.write_bytes(_list_bomb(250))
    started = time.perf_counter()
    with pytest.raises(UnsafePickleError, match="shared reference"):
        import_official_pickle(path)
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize("payload,match", [
    (pickle.dumps({"000000": os.system}), "refused to load posix.system"),
    (b"\x80\x02cbuiltins\neval\n" + _str("1") + b"\x85R.", "refused to load builtins.eval"),
    (b"\x80\x02cnumpy\nload\n.", "refused to load numpy.load"),
    (b"\x80\x02}" + _str("a") + b"\x80\x02cos\nsystem\nq\x00s.", "refused to load os.system"),
    (b"\x80\x05\x95\x01\x00\x00\x00\x00\x00\x00\x00}\x98.", "opcode"),          # an unknown opcode
    (b"\x80\x02}" + b"(" + _str("a") + b"K\x01" + _str("b") + b"u" + b".", "odd number"),
    (b"\x80\x02}" + b"K\x01" + b"K\x02" + b"\x86" + b"K\x01s.", None),         # tuple key: refused or rejected
])
def test_globals_odd_opcodes_and_type_confusion_are_refused(tmp_path, payload, match):
    path = tmp_path / "hostile.pkl"
    path.write_bytes(payload)
    with pytest.raises(BankFormatError) as caught:
        import_official_pickle(path)
    message = str(caught.value)
    assert str(path) in message and len(message) < SHORT
    if match:
        assert match in message


@pytest.mark.parametrize("payload", [b"", b"garbage", b"\x80\x04\x95", pickle.dumps({"a": 1})[:-1]])
def test_truncated_or_garbage_pickles_name_the_file(tmp_path, payload):
    path = tmp_path / "cut.pkl"
    path.write_bytes(payload)
    with pytest.raises(BankFormatError, match="not a readable pickle") as caught:
        import_official_pickle(path)
    assert str(path) in str(caught.value)


# ------------------------------------------------------------------- wrong shapes of a bank
@pytest.mark.parametrize("entry,match", [
    ({"foo": 1}, r"lacks \['cluster_id', 'cluster_size', 'largest_cluster_size'\]"),   # was KeyError: 'cluster_id'
    ({"cluster_id": 0, "cluster_size": 1}, r"lacks \['largest_cluster_size'\]"),
    ([0, 1, 1], "lacks"),
    ({"cluster_id": 0, "cluster_size": True, "largest_cluster_size": 1}, "integers"),
    ({"cluster_id": 0, "cluster_size": 0, "largest_cluster_size": 1}, "cluster_size must be >= 1"),
])
def test_wrong_entries_raise_bank_errors_naming_the_file(tmp_path, entry, match):
    path = tmp_path / "wrong.pkl"
    path.write_bytes(pickle.dumps({"000000": entry}))
    with pytest.raises(BankFormatError, match=match) as caught:
        import_official_pickle(path)
    assert str(path) in str(caught.value)


def test_extra_fields_are_accepted(tmp_path):
    # set(info) < set(OFFICIAL_FIELDS) was the wrong test; supersets of the fields are fine.
    path = tmp_path / "extra.pkl"
    path.write_bytes(pickle.dumps({"000000": {"cluster_id": 0, "cluster_size": 1, "largest_cluster_size": 2,
                                              "note": "x"}}))
    assert import_official_pickle(path).table["likelihood"].tolist() == [0.5]


# ----------------------------------------------------------- the official Waymo pickle (13)
def _waymo(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    folder = tmp_path / "training" / "image_0"
    folder.mkdir(parents=True)
    for name in ("seg_b_2.jpg", "seg_a_1.jpg", "seg_c_3.jpg"):
        (folder / name).write_bytes(b"")
    names = os.listdir(folder)  # the official notebook's order, whatever the file system gives
    sizes = [3, 1, 2]
    payload = {np.int64(i): {"cluster_id": np.int64(i), "cluster_size": np.int64(sizes[i]),
                             "largest_cluster_size": np.int64(3)} for i in range(3)}
    path = tmp_path / "waymo_training_cluster_info_training.pkl"
    path.write_bytes(pickle.dumps(payload))
    return path, folder, names


def test_waymo_integer_keys_need_a_listing(tmp_path):
    path, _, _ = _waymo(tmp_path)
    with pytest.raises(BankFormatError, match="os.listdir.*key_listing") as caught:
        import_official_pickle(path)
    assert str(path) in str(caught.value)


def test_waymo_integer_keys_map_through_a_recorded_listing(tmp_path):
    from deqlib.bank import record_key_listing

    path, folder, names = _waymo(tmp_path)
    expected = {Path(names[i]).stem: [3, 1, 2][i] / 3 for i in range(3)}  # key i = names[i]
    listing = record_key_listing(folder, tmp_path / "listing.tsv")
    bank = import_official_pickle(path, key_listing=listing)
    assert dict(zip(bank.table["sample_id"], bank.table["likelihood"])) == pytest.approx(expected)
    assert bank.metadata["key_mapping"].startswith("position in the recorded os.listdir order")
    assert load_bank(path, key_listing=listing, images=folder).table["sample_id"].tolist() == \
        [Path(n).stem for n in names]


def test_waymo_listing_that_does_not_fit_is_refused(tmp_path):
    from deqlib.bank import record_key_listing

    path, folder, names = _waymo(tmp_path)
    (folder / names[0]).unlink()
    with pytest.raises(BankFormatError, match="not the listing this pickle was made from"):
        import_official_pickle(path, key_listing=record_key_listing(folder, tmp_path / "two.tsv"))


# ------------------------------------------------------------------ Parquet banks and lookups
def _bank() -> LikelihoodBank:
    return bank_from_labels(["000001", "000002", "012", "0", "1", "2"], np.array([0, 0, 1, 1, 1, -1]),
                            metadata={"dataset": "kitti"})


def test_broken_bank_metadata_names_the_file(tmp_path):
    path = write_bank(tmp_path / "bank.parquet", _bank())
    table = pq.read_table(path)
    meta = dict(table.schema.metadata)
    meta[b"deqlib"] = b'{"n_samples": 6, '  # cut JSON
    pq.write_table(table.replace_schema_metadata(meta), path)
    with pytest.raises(BankFormatError, match="not valid JSON") as caught:
        read_bank(path)
    assert str(path) in str(caught.value)
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(BankFormatError, match="not a readable Parquet file") as caught:
        read_bank(path)
    assert str(path) in str(caught.value)


def test_integer_sample_id_column_is_refused_not_stripped_of_zeros(tmp_path):
    table = _bank().table.copy()
    table["sample_id"] = np.arange(1, 7)  # e.g. read from a CSV without dtype=str: '000001' became 1
    with pytest.raises(BankFormatError, match="leading zeros"):
        LikelihoodBank(table=table)
    path = tmp_path / "int_ids.parquet"
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    pq.write_table(arrow.replace_schema_metadata({b"deqlib": json.dumps({"n_samples": 6}).encode()}), path)
    with pytest.raises(BankFormatError, match="leading zeros") as caught:
        read_bank(path)
    assert str(path) in str(caught.value)


def test_one_string_id_is_one_id_not_its_characters():
    bank = _bank()
    assert bank.likelihood_of("012").tolist() == pytest.approx([1.0])   # '0','1','2' are ids too
    assert bank.likelihood_of(["012"]).tolist() == pytest.approx([1.0])
    lookup = BankLookup(bank)
    assert lookup.likelihood("000001").tolist() == pytest.approx([2 / 3])
    with pytest.raises(KeyError, match="99"):
        bank.likelihood_of("99")


# -------------------------------------------------------------- samples missing from the export (12)
def _bank_with_failures() -> LikelihoodBank:
    bank = bank_from_labels([f"{i:06d}" for i in range(6)], np.array([0, 0, 0, 1, 1, 2]), noise_policy="as_cluster")
    bank.metadata["missing_sample_ids"] = ["000006", "000007"]  # images that failed to decode
    return bank


def test_export_refuses_to_leave_failed_samples_out_silently(tmp_path):
    path = tmp_path / "kitti_training_cluster_info.pkl"
    with pytest.raises(BankFormatError, match="2 training sample.*--missing rarest\\|median"):
        export_official_pickle(_bank_with_failures(), path)
    assert not path.exists()


@pytest.mark.parametrize("policy,size", [("rarest", 1), ("median", 2)])
def test_export_fills_failed_samples_as_asked_and_records_it(tmp_path, policy, size):
    bank = _bank_with_failures()
    path = export_official_pickle(bank, tmp_path / "p.pkl", missing=policy)
    raw = pickle.loads(path.read_bytes())
    assert len(raw) == 8
    # sizes of the 6 clustered samples are 3,3,3,2,2,1: median (lower) 2
    assert raw["000007"] == {"cluster_id": -1, "cluster_size": size, "largest_cluster_size": 3}
    assert raw["000000"] == {"cluster_id": 0, "cluster_size": 3, "largest_cluster_size": 3}
    record = bank.metadata["official_export"]
    assert record["missing"] == policy and record["n_missing"] == 2
    assert record["missing_sample_ids"] == ["000006", "000007"]


def test_export_checks_expected_ids_too(tmp_path):
    bank = bank_from_labels(["a", "b", "c"], np.array([0, 0, 1]))
    with pytest.raises(BankFormatError, match="1 training sample"):
        export_official_pickle(bank, tmp_path / "p.pkl", expected_ids=["a", "b", "c", "d"])
    export_official_pickle(bank, tmp_path / "p.pkl", expected_ids=["a", "b", "c"])


# --------------------------------------------------------------------- integer keys that hash alike
MERSENNE_61 = 2**61 - 1  # CPython hashes an integer k to k mod (2**61 - 1)


def _official_entries(keys) -> dict:
    return {k: {"cluster_id": 0, "cluster_size": 1, "largest_cluster_size": 1} for k in keys}


@pytest.mark.parametrize("keys", [
    [k * MERSENNE_61 for k in range(1, 2001)],  # 2,000 keys, one hash (issue 19: 80,000 took 32 s)
    [np.int64(k * MERSENNE_61) for k in range(4)],  # numpy int64 keys: 0, M, 2M, 3M hash alike
    [-1, -2],  # hash(-1) == hash(-2) == -2
], ids=["python-ints", "numpy-int64", "negative"])
def test_integer_keys_that_hash_alike_are_refused_before_any_is_inserted(tmp_path, keys):
    assert len({hash(k) for k in keys}) < len(keys)  # the crafted keys really collide
    data = pickle.dumps(_official_entries(keys), protocol=2)
    path = tmp_path / "colliding.pkl"
    path.write_bytes(data)
    with pytest.raises(UnsafePickleError) as caught:
        import_official_pickle(path, key_listing=[f"{i}.png" for i in range(len(keys))])
    message = str(caught.value)
    assert str(path) in message and "outside [0, 2**32)" in message and len(message) < SHORT
    # Counting, not timing: the refusal comes at the first SETITEM(S) of the outer dict, i.e.
    # before a single key entered a dict, so the work done is linear whatever the keys.
    assert f"(at byte {_outer_setitems(data)})" in message


def _outer_setitems(data: bytes) -> int:
    """Byte position of the SETITEMS that fills the outermost dict (the one whose MARK came first)."""
    marks = []
    for opcode, _, position in pickletools.genops(data):
        if opcode.name == "MARK":
            marks.append(position)
        elif opcode.name in ("SETITEMS", "APPENDS", "TUPLE", "LIST", "DICT", "POP_MARK"):  # the opcodes ending a MARK
            marks.pop()
            if not marks and opcode.name == "SETITEMS":
                return position
    raise AssertionError("no SETITEMS")


def test_integer_keys_below_2_to_the_32_load_and_never_share_a_hash():
    """The accepted range is collision-free: n keys, n hashes, so building the dict is linear."""
    from deqlib._safe_pickle import MAX_INT_KEY, SafePickleError, safe_load

    keys = list(range(MAX_INT_KEY - 1000, MAX_INT_KEY)) + list(range(1000))
    loaded = safe_load(pickle.dumps(_official_entries(keys), protocol=4))
    assert sorted(loaded) == sorted(keys) and len({hash(k) for k in loaded}) == len(keys) == 2000
    with pytest.raises(SafePickleError, match="outside"):
        safe_load(pickle.dumps({MAX_INT_KEY: 1}, protocol=4))
