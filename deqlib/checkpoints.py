"""Reading encoder weights files without running them: torch.save, .safetensors and .npz files.

Every encoder's local ``weights=FILE`` goes through :func:`load_weights_file`, which tells the
format from the file's first bytes (:func:`weights_file_format`), reads ``torch.save`` files with
``weights_only=True`` and ``.npz`` files with ``allow_pickle=False``, and refuses TorchScript
archives (they carry code). Whatever cannot be read is one :class:`WeightsFileError` line that
names the file and the safe alternative (:data:`SAFE_WEIGHTS`), never torch's traceback advising
``weights_only=False``.
"""

from __future__ import annotations

import os

import numpy as np
import torch

__all__ = ["WeightsFileError", "SAFE_WEIGHTS", "weights_file_format", "load_weights_file", "one_line_error"]


class WeightsFileError(ValueError):
    """A local weights file was refused or could not be read; the message names it and the fix."""


#: What to pass instead of a refused or unreadable weights file.
SAFE_WEIGHTS = ("pass a state_dict saved with torch.save(model.state_dict(), PATH) or a .safetensors file "
                "(safetensors.torch.save_file), made from a source you trust")


def weights_file_format(path: str | os.PathLike) -> str:
    """What a weights file is, from its first bytes (never by running it).

    Returns
    -------
    str
        ``"safetensors"``, ``"torch"`` (a ``torch.save`` zip archive), ``"torchscript"`` (a
        ``torch.jit.save`` archive: it carries code), ``"npz"`` (numpy arrays), ``"npy"``,
        ``"pickle"`` (the legacy ``torch.save`` format, or any pickle) or ``"unknown"``.
    """
    import zipfile

    with open(path, "rb") as handle:
        head = handle.read(16)
    if head[:2] == b"PK" and zipfile.is_zipfile(path):
        try:
            names = zipfile.ZipFile(path).namelist()
        except (zipfile.BadZipFile, OSError):
            return "unknown"
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
            return "torchscript"
        if any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
            return "torch"
        if names and all(n.endswith(".npy") for n in names):
            return "npz"
        return "unknown"
    if head[:6] == b"\x93NUMPY":
        return "npy"
    if head[:1] == b"\x80" and len(head) > 1 and head[1] <= 5:
        return "pickle"
    if len(head) >= 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") <= 100_000_000:
        return "safetensors"
    return "unknown"


def one_line_error(exc: BaseException, limit: int = 160) -> str:
    """``Type: message`` on one line, cut at ``limit`` characters (torch's messages span many lines)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:limit]}{'...' if len(text) > limit else ''}"


def load_weights_file(path) -> dict:
    """A local weights file as a ``{name: tensor}`` dict, read without running anything.

    ``torch.save`` files are read with ``weights_only=True``; ``.safetensors`` and ``.npz``
    (``allow_pickle=False``) hold only arrays. A file that holds other Python objects (which could
    run code when loaded), a TorchScript archive (it carries code), or a file that cannot be read
    is refused with one :class:`WeightsFileError` line naming it and :data:`SAFE_WEIGHTS`, never
    with torch's advice to load it with ``weights_only=False``.
    """
    import pickle

    kind = weights_file_format(path)
    if kind == "torchscript":
        raise WeightsFileError(
            f"weights file {path} was refused: it is a TorchScript archive (torch.jit.save), which carries code "
            f"that loading would run. Convert it where you trust it: torch.save(torch.jit.load(FILE).state_dict(), "
            f"'weights.pt'), or {SAFE_WEIGHTS}")
    try:
        if kind == "safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        if kind == "npz":
            with np.load(path, allow_pickle=False) as arrays:
                return {name: torch.from_numpy(arrays[name].copy()) for name in arrays.files}
        if kind in ("torch", "pickle"):
            return _state_dict_of(torch.load(path, map_location="cpu", weights_only=True), path)
    except WeightsFileError:
        raise
    except pickle.UnpicklingError as exc:
        reason = next((line.strip() for line in str(exc).splitlines() if "GLOBAL" in line or "Unsupported" in line),
                      "it is not a plain tensor file")
        raise WeightsFileError(f"weights file {path} was refused: it holds Python objects beyond tensors ({reason}), "
                               f"and loading those could run code; {SAFE_WEIGHTS}") from None
    except Exception as exc:  # a damaged file of a known format: safetensors, zip, numpy or torch errors
        if isinstance(exc, ValueError) and "allow_pickle" in str(exc):
            raise WeightsFileError(f"weights file {path} was refused: its arrays hold Python objects (pickled), "
                                   f"and loading those could run code; {SAFE_WEIGHTS}") from None
        raise WeightsFileError(f"weights file {path} could not be read as {kind} ({one_line_error(exc)}); "
                               f"{SAFE_WEIGHTS}") from None
    raise WeightsFileError(f"weights file {path} is not a weights file this workbook reads (not a torch.save, "
                           f".safetensors or .npz file); {SAFE_WEIGHTS}")


def _state_dict_of(loaded, path) -> dict:
    """The ``{name: tensor}`` dict inside what ``torch.load`` returned (``{"state_dict": ...}`` unwrapped)."""
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not loaded:
        raise WeightsFileError(f"weights file {path} holds {'an empty dict' if isinstance(loaded, dict) else 'a ' + type(loaded).__name__}, "
                               f"not a state dict of tensors; {SAFE_WEIGHTS}")
    odd = next((key for key, value in loaded.items() if not isinstance(value, torch.Tensor)), None)
    if odd is not None:
        raise WeightsFileError(f"weights file {path}: entry {str(odd)[:60]!r} is a {type(loaded[odd]).__name__}, not a "
                               f"tensor; {SAFE_WEIGHTS}")
    return loaded
