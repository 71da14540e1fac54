"""Conditions: ways a rare appearance can differ, and a source that shows them.

Each condition maps a 28x28 RGB image to a 28x28 RGB image (:data:`CONDITIONS`);
:class:`ConditionSource` shows one on chosen samples of a parent source. The experiment's rare-condition
settings are ``ExperimentConfig.conditions`` (default blurred, darkened, fogged: optics, time of day,
weather). When the rarity benchmark's registry (``deqlib.conditions``, issue 20) lands, these are to be
taken from it by name.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd
from PIL import Image, ImageFilter, ImageOps

from deqlib.sources import ImageSource

__all__ = ["CONDITIONS", "ConditionSource"]


def _red_cast(image: Image.Image) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float32) * np.array([1.0, 0.35, 0.35], dtype=np.float32)
    return Image.fromarray(pixels.round().astype(np.uint8))


def _striped_background(image: Image.Image) -> Image.Image:
    pixels = np.asarray(image).copy()
    background = pixels.max(axis=2) < 16
    stripes = (np.arange(pixels.shape[0]) % 4 < 2)[:, None] & background
    pixels[stripes] = 160
    return Image.fromarray(pixels)


def _shrunk(image: Image.Image) -> Image.Image:
    canvas = Image.new("RGB", image.size)
    small = image.resize((image.width // 2, image.height // 2), Image.BILINEAR)
    canvas.paste(small, (image.width // 4, image.height // 4))
    return canvas


def _darkened(image: Image.Image) -> Image.Image:
    # night / under-exposure: a third of the brightness
    pixels = np.asarray(image, dtype=np.float32) * np.float32(1 / 3)
    return Image.fromarray(pixels.round().astype(np.uint8))


def _fogged(image: Image.Image) -> Image.Image:
    # fog / haze: low contrast, blended towards a light grey
    pixels = np.asarray(image, dtype=np.float32) * np.float32(0.45) + np.float32(0.55 * 180)
    return Image.fromarray(pixels.round().astype(np.uint8))


def _zoomed_in(image: Image.Image) -> Image.Image:
    w, h = image.size
    return image.crop((w // 4, h // 4, w - w // 4, h - h // 4)).resize((w, h), Image.BILINEAR)


#: condition name -> deterministic image transform (28x28 RGB in, 28x28 RGB out)
CONDITIONS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "inverted": ImageOps.invert,
    "rotated_90": lambda image: image.rotate(90),
    "upside_down": lambda image: image.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
    "zoomed_in": _zoomed_in,
    "shrunk": _shrunk,
    "red_cast": _red_cast,
    "striped_background": _striped_background,
    "blurred": lambda image: image.filter(ImageFilter.GaussianBlur(1.5)),
    "darkened": _darkened,
    "fogged": _fogged,
}


class ConditionSource(ImageSource):
    """A source whose ``modified`` positions show ``condition`` (ids get the suffix ``~<condition>``)."""

    def __init__(self, parent: ImageSource, modified: Sequence[bool], condition: str = "inverted"):
        if condition not in CONDITIONS:
            raise ValueError(f"condition must be one of {sorted(CONDITIONS)}, got {condition!r}")
        self.parent, self.modified, self.condition = parent, np.asarray(modified, dtype=bool), condition
        if len(self.modified) != len(parent):
            raise ValueError("modified needs one flag per sample of the parent source")
        self.name, self.root, self.split = parent.name, parent.root, parent.split
        self._ids = [f"{sid}~{condition}" if m else sid for sid, m in zip(parent.sample_ids, self.modified)]

    @property
    def sample_ids(self) -> list[str]:
        return self._ids

    def load(self, index: int, draft=None):
        image = self.parent.load(index, draft=draft).convert("RGB")
        return CONDITIONS[self.condition](image) if self.modified[index] else image

    def metadata(self) -> pd.DataFrame:
        table = self.parent.metadata().copy()
        table["sample_id"], table[self.condition] = self._ids, self.modified
        return table
