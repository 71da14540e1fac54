"""Hostile or broken weights files, for every encoder's formats (issue 19, deliverable 2).

Before: a CLIP ``.pt`` or TorchScript file was refused in a torch traceback that named no file and
advised ``weights_only=False`` (which would run the file's code); a CLIP ``.npz`` gave an
``AttributeError``; a ``.safetensors`` file given to ResNet101 or EfficientNet-Lite0 was called a
file "holding Python objects". Now each is one line naming the file and the safe alternative
(a ``torch.save(model.state_dict())`` file or a ``.safetensors`` file), and nothing runs.
Every file here is a real file of its format, written by the test.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deqlib.checkpoints import WeightsFileError, weights_file_format
from deqlib.cli import main as deq
from deqlib.encoders import EfficientNetLite0Encoder, get_encoder

ENCODERS = ["efficientnet-lite0", "resnet101", "clip:ViT-B-32"]


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch RAN",))


def _torchscript(path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(torch.nn.Linear(2, 2), torch.zeros(1, 2)), str(path))


def _safetensors_damaged(path: Path) -> None:
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(64)}, str(path))
    path.write_bytes(path.read_bytes()[:-100])  # header says 256 bytes of data: 156 are there


def _truncated_torch(path: Path) -> None:
    torch.save({"w": torch.zeros(1000)}, path)
    path.write_bytes(path.read_bytes()[:2000])


def _npz_with_objects(path: Path) -> None:
    np.savez(path, w=np.array([{"x": 1}], dtype=object))  # saved with pickle inside the .npy


# name -> (writer, what the one line must say)
HOSTILE = {
    "torchscript.pt": (_torchscript, "TorchScript archive"),
    "runs_code.pt": (lambda p: torch.save({"w": _RunsCode()}, p), "holds Python objects beyond tensors"),
    "legacy_runs_code.pth": (lambda p: torch.save({"w": _RunsCode()}, p, _use_new_zipfile_serialization=False),
                             "holds Python objects beyond tensors"),
    "objects.npz": (_npz_with_objects, "arrays hold Python objects"),
    "damaged.safetensors": (_safetensors_damaged, "could not be read as safetensors"),
    "truncated.pt": (_truncated_torch, "is not a weights file this workbook reads"),
    "a_list.pt": (lambda p: torch.save([torch.zeros(2)], p), "holds a list, not a state dict"),
    "garbage.bin": (lambda p: p.write_bytes(os.urandom(4096).replace(b"\x80", b"\x00").replace(b"PK", b"pk")),
                    "is not a weights file this workbook reads"),
}


def _check_one_line(message: str, path: Path, says: str) -> None:
    assert str(path) in message and says in message, message
    assert "\n" not in message and len(message) < 600, message
    assert "weights_only" not in message  # torch: "Re-running `torch.load` with `weights_only` set to `False`"
    assert ".safetensors" in message and "state_dict()" in message  # the safe alternative


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_or_broken_weights_file_is_one_line_naming_it_and_the_safe_alternative(tmp_path, monkeypatch,
                                                                                       encoder, name):
    monkeypatch.chdir(tmp_path)
    write, says = HOSTILE[name]
    path = tmp_path / name
    write(path)
    with pytest.raises(WeightsFileError) as caught:
        get_encoder(encoder, weights=str(path)).build("cpu")
    _check_one_line(str(caught.value), path, says)
    assert not (tmp_path / "RAN").exists()


@pytest.mark.parametrize("encoder", ENCODERS)
def test_deq_embed_with_a_torchscript_weights_file_is_exit_2_and_one_line(tmp_path, monkeypatch, capsys, encoder):
    monkeypatch.chdir(tmp_path)
    _torchscript(tmp_path / "model.pt")
    Image.new("RGB", (8, 8)).save("only.png")
    code = deq(["embed", "--source", "folder", "--root", ".", "--encoder", encoder, "--weights", "model.pt",
                "--output", "cache", "--device", "cpu", "--precision", "fp32", "--no-progress", "--workers", "0"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    _check_one_line(err, tmp_path / "model.pt", "TorchScript archive")


def test_clip_npz_that_is_not_big_vision_is_one_line_not_an_attribute_error(tmp_path):
    """open_clip reads .npz files as big_vision (SigLIP) weights; for ViT-B-32 it raised AttributeError."""
    path = tmp_path / "weights.npz"
    np.savez(path, w=np.zeros((4, 4), dtype=np.float32))
    with pytest.raises(WeightsFileError) as caught:
        get_encoder("clip:ViT-B-32", weights=str(path)).build("cpu")
    _check_one_line(str(caught.value), path, "does not fit clip:ViT-B-32")


def test_formats_are_told_apart_from_their_bytes(tmp_path):
    from safetensors.torch import save_file

    files = {"ts.bin": _torchscript, "sd.bin": lambda p: torch.save({"w": torch.zeros(2)}, p),
             "legacy.bin": lambda p: torch.save({"w": torch.zeros(2)}, p, _use_new_zipfile_serialization=False),
             "st.bin": lambda p: save_file({"w": torch.zeros(2)}, str(p)),
             "arrays.bin": lambda p: np.savez(open(p, "wb"), w=np.zeros(2)),
             "array.bin": lambda p: np.save(open(p, "wb"), np.zeros(2)),
             "text.bin": lambda p: p.write_text("not weights")}
    found = {}
    for name, write in files.items():
        write(tmp_path / name)
        found[name] = weights_file_format(tmp_path / name)
    assert found == {"ts.bin": "torchscript", "sd.bin": "torch", "legacy.bin": "pickle", "st.bin": "safetensors",
                     "arrays.bin": "npz", "array.bin": "npy", "text.bin": "unknown"}


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_efficientnet_weights_as_safetensors_or_npz_load_the_same_tensors(tmp_path, suffix):
    """The safe alternatives named in the messages work: the network's state dict, re-saved."""
    from safetensors.torch import save_file

    reference = EfficientNetLite0Encoder().build_classifier("cpu").state_dict()
    timm_state = {k.removeprefix("backbone."): v.contiguous().clone()
                  for k, v in reference.items() if k.startswith("backbone.")}
    path = tmp_path / f"lite0{suffix}"
    if suffix == ".safetensors":
        save_file(timm_state, str(path))  # safetensors sorts the names: matched by name, not position
    else:
        np.savez(path, **{k: v.numpy() for k, v in timm_state.items()})
    loaded = EfficientNetLite0Encoder(weights=str(path)).build_classifier("cpu").state_dict()
    assert list(loaded) == list(reference) and len(timm_state) == 296
    assert all(torch.equal(loaded[k], reference[k]) for k in reference)


def test_root_logger_info_is_dropped_without_verbose_and_deqlib_info_and_warnings_are_kept():
    """The quick loop's check of the filter that the subprocess test below checks end to end."""
    import logging

    from deqlib.cli import _no_third_party_info

    def record(name, level):
        return logging.LogRecord(name, level, __file__, 1, "message", None, None)

    assert not _no_third_party_info(record("root", logging.INFO))  # open_clip's logging.info(...)
    assert not _no_third_party_info(record("root", logging.DEBUG))
    assert _no_third_party_info(record("root", logging.WARNING))
    assert _no_third_party_info(record("deqlib.embed", logging.INFO))


@pytest.mark.parametrize("argv, filtered", [([], True), (["-v"], False)])
def test_deq_installs_the_root_info_filter_unless_verbose(monkeypatch, capsys, argv, filtered):
    import logging

    from deqlib.cli import _no_third_party_info

    installed = []
    monkeypatch.setattr(logging, "basicConfig", lambda **kwargs: installed.extend(kwargs["handlers"]))
    assert deq(argv) == 0  # no subcommand: the help, exit 0
    assert len(installed) == 1 and (_no_third_party_info in installed[0].filters) == filtered


@pytest.mark.slow  # `deq embed` in a subprocess (imports torch and open_clip: 19 s at load 5); in-process: the test above
def test_deq_embed_clip_npz_refusal_is_one_line_without_open_clips_info_chatter(tmp_path):
    """From outside (issue 19 re-run): `deq embed --encoder clip:ViT-B-32 --weights plain.npz` gave the
    one-line refusal after five "INFO root: ..." lines that open_clip logs on the root logger (deq's
    INFO level reached every library). Third-party INFO on the root logger is shown only with -v."""
    import subprocess
    import sys

    images = tmp_path / "imgs"
    images.mkdir()
    Image.new("RGB", (32, 32), (10, 200, 10)).save(images / "a.png")
    path = tmp_path / "plain.npz"
    np.savez(path, w=np.zeros(3, dtype=np.float32))
    command = [sys.executable, "-m", "deqlib.cli", "embed", "--source", "folder", "--root", str(images), "--encoder",
               "clip:ViT-B-32", "--weights", str(path), "--output", str(tmp_path / "out"), "--device", "cpu",
               "--no-progress"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and "does not fit clip:ViT-B-32" in lines[0] and str(path) in lines[0], done.stderr
