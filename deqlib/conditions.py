"""Conditions: rare appearances planted into real images (weather, time of day, optics, sensor faults).

Each condition is a function ``(pixels, strength, rng) -> pixels`` on an ``(H, W, 3)`` ``uint8``
array, registered in :data:`CONDITIONS` with what it is (``kind``), its default strength and
whether it draws random numbers (``seeded``). Every size in a condition is relative to the
image (a fraction of its height or width), so the same condition and strength mean the same on
a 28 x 28 Fashion-MNIST image and a 1600 x 900 camera frame.

Strength is a number in ``[0, 1]``: ``0`` leaves the pixels unchanged (tested), ``1`` is the
strongest documented form; each condition's docstring says what the number scales. Seeded
conditions (rain, snow, glare, motion blur, noise, dead pixels, lens dirt) draw from
``numpy.random.default_rng([seed, crc32(sample id)])`` in :class:`ConditionSource`, so an image
is altered the same way whatever its position, and differently from its neighbours.

The training experiment's conditions (``inverted``, ``rotated_90``, ``upside_down``,
``zoomed_in``, ``shrunk``, ``red_cast``, ``striped_background``, ``blurred``) are registered here
too (kind ``'layout'``, ``'colour'``, ``'optics'``) with no strength: :mod:`deqlib.experiment.conditions`
reads them from this module.

    from deqlib.conditions import apply_condition
    foggy = apply_condition(image, "fog", strength=0.6)            # PIL in, PIL out
    rainy = apply_condition(image, "rain", strength=0.6, seed=3)   # seeded: same seed, same streaks
"""

from __future__ import annotations

import numbers
import zlib
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from PIL import Image, ImageFilter, ImageOps

from deqlib.registry import Registry
from deqlib.sources import ImageSource

__all__ = ["CONDITIONS", "DRIVING_CONDITIONS", "apply_condition", "condition_pixels", "condition_transform",
           "takes_strength", "image_seed", "ConditionSource"]

#: Conditions by name. Entry extras: ``kind``, ``default_strength`` (None: takes no strength),
#: ``seeded`` (draws random numbers).
CONDITIONS = Registry("condition")


def _register(name: str, summary: str, kind: str, default_strength: float | None = None, seeded: bool = False):
    return CONDITIONS.register(name, summary=summary, kind=kind, default_strength=default_strength, seeded=seeded)


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _blend(pixels: np.ndarray, colour, alpha: np.ndarray | float) -> np.ndarray:
    """``pixels * (1 - alpha) + colour * alpha`` in float32 (alpha scalar or (H, W))."""
    alpha = np.asarray(alpha, dtype=np.float32)
    if alpha.ndim == 2:
        alpha = alpha[..., None]
    return pixels.astype(np.float32) * (1 - alpha) + np.asarray(colour, dtype=np.float32) * alpha


def _convolve(pixels: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    from scipy.ndimage import convolve

    kernel = (kernel / kernel.sum()).astype(np.float32)
    image = pixels.astype(np.float32)
    return np.stack([convolve(image[..., c], kernel, mode="nearest") for c in range(image.shape[2])], axis=-1)


def _segments_mask(shape: tuple[int, int], starts: np.ndarray, length: float, angle: float) -> np.ndarray:
    """Boolean (H, W) mask of straight segments of ``length`` px at ``angle`` (radians from vertical)."""
    height, width = shape
    steps = np.linspace(0.0, 1.0, max(2, int(np.ceil(2 * length))))
    ys = np.rint(starts[:, :1] + steps[None] * length * np.cos(angle)).astype(int)
    xs = np.rint(starts[:, 1:] + steps[None] * length * np.sin(angle)).astype(int)
    inside = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
    mask = np.zeros(shape, dtype=bool)
    mask[ys[inside], xs[inside]] = True
    return mask


# ------------------------------------------------------------------------------ driving conditions
@_register("night", "darkened like a night frame: lower exposure, a steeper tone curve, a blue cast",
           kind="time of day", default_strength=0.7)
def night(pixels: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Exposure ``x (1 - 0.85 s)``, gamma ``1 + 1.5 s`` on ``x / 255``, red and green lowered by 25/12 % at s = 1."""
    x = pixels.astype(np.float32) / 255.0
    x = x ** (1.0 + 1.5 * strength) * (1.0 - 0.85 * strength)
    x = x * np.array([1 - 0.25 * strength, 1 - 0.12 * strength, 1.0], dtype=np.float32)
    return _to_uint8(x * 255.0)


@_register("fog", "fog: blended towards a light grey airlight, denser at the top of the frame (the distance)",
           kind="weather", default_strength=0.6)
def fog(pixels: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Transmission ``t = 1 - 0.8 s (0.6 + 0.4 (1 - row / H))``: at s = 1, 80 % airlight (217) at the top row, 48 % at the bottom."""
    height = pixels.shape[0]
    depth = 0.6 + 0.4 * (1.0 - np.arange(height, dtype=np.float32) / max(1, height - 1))
    alpha = np.broadcast_to((0.8 * strength * depth)[:, None], pixels.shape[:2])
    return _to_uint8(_blend(pixels, (217, 217, 222), alpha))


@_register("rain", "rain: bright slanted streaks (one angle per image) over a slightly darkened frame",
           kind="weather", default_strength=0.6, seeded=True)
def rain(pixels: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """``round(s W / 2)`` streaks of 15 % of the height at 5-25 degrees, 70 % towards (210, 210, 220); frame x (1 - 0.15 s)."""
    height, width = pixels.shape[:2]
    n_streaks = int(round(strength * width / 2))
    base = pixels.astype(np.float32) * (1.0 - 0.15 * strength)
    if n_streaks == 0:
        return _to_uint8(base)
    angle = np.deg2rad(rng.uniform(5, 25)) * rng.choice([-1, 1])
    starts = rng.uniform([-0.15 * height, 0], [height, width], size=(n_streaks, 2))
    mask = _segments_mask((height, width), starts, max(2.0, 0.15 * height), angle)
    return _to_uint8(_blend(base, (210, 210, 220), 0.7 * mask))


@_register("snow", "snow: white flakes of a few sizes over a whitened frame", kind="weather",
           default_strength=0.6, seeded=True)
def snow(pixels: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Flakes of radius 0.5-1.5 % of the short side (at least half a pixel) covering about ``12 s %`` of the frame, 90 % white; frame 20 s % towards white."""
    height, width = pixels.shape[:2]
    base = _blend(pixels, (255, 255, 255), 0.2 * strength)
    mean_radius = max(0.5, 0.01 * min(height, width))
    n_flakes = int(round(strength * 0.12 * height * width / (np.pi * mean_radius ** 2)))
    if n_flakes == 0:
        return _to_uint8(base)
    centres = rng.uniform([0, 0], [height, width], size=(n_flakes, 2))
    radii = np.maximum(0.5, rng.uniform(0.005, 0.015, size=n_flakes) * min(height, width))
    yy, xx = np.mgrid[0:height, 0:width]
    mask = np.zeros((height, width), dtype=bool)
    for (cy, cx), radius in zip(centres, radii):
        box = (slice(max(0, int(cy - radius - 1)), int(cy + radius + 2)),
               slice(max(0, int(cx - radius - 1)), int(cx + radius + 2)))
        mask[box] |= (yy[box] + 0.5 - cy) ** 2 + (xx[box] + 0.5 - cx) ** 2 <= radius ** 2
    return _to_uint8(_blend(base, (255, 255, 255), 0.9 * mask))


@_register("glare", "sun glare: a bright warm radial flare in the upper half, with a washed-out frame",
           kind="lighting", default_strength=0.7, seeded=True)
def glare(pixels: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Adds ``255 s exp(-d^2 / 2 sigma^2)`` (sigma 30 % of the short side) in (1, 0.95, 0.8) at a random point of the upper half; lifts blacks by 25 s %."""
    height, width = pixels.shape[:2]
    cy, cx = rng.uniform(0, 0.5) * height, rng.uniform(0, 1) * width
    sigma = 0.3 * min(height, width)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    flare = 255.0 * strength * np.exp(-((yy + 0.5 - cy) ** 2 + (xx + 0.5 - cx) ** 2) / (2 * sigma ** 2))
    base = _blend(pixels, (255, 255, 255), 0.25 * strength)
    return _to_uint8(base + flare[..., None] * np.array([1.0, 0.95, 0.8], dtype=np.float32))


@_register("defocus", "defocus blur: a disk kernel (an out-of-focus lens)", kind="optics", default_strength=0.6)
def defocus(pixels: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Disk of radius ``s x 10 %`` of the long side (2.8 px at s = 1 on 28 px), soft edge of one pixel; below half a pixel, unchanged."""
    radius = strength * 0.1 * max(pixels.shape[:2])
    if radius < 0.5:
        return pixels.copy()
    r = int(np.ceil(radius + 0.5))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    # a disk with a one-pixel soft edge (weight radius + 0.5 - distance), so small radii still blur
    return _to_uint8(_convolve(pixels, np.clip(radius + 0.5 - np.hypot(yy, xx), 0, 1).astype(np.float32)))


@_register("motion-blur", "motion blur: a straight line kernel at a random angle (ego-motion, slow shutter)",
           kind="optics", default_strength=0.6, seeded=True)
def motion_blur(pixels: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Line of ``1 + s x 20 %`` of the long side px (6.6 px at s = 1 on 28 px) at a uniform random angle."""
    length = 1.0 + strength * 0.2 * max(pixels.shape[:2])
    angle = rng.uniform(0, np.pi)
    if length < 1.5:
        return pixels.copy()
    r = int(np.ceil(length / 2))
    kernel = _segments_mask((2 * r + 1, 2 * r + 1), np.array([[r - (length / 2) * np.cos(angle),
                                                                r - (length / 2) * np.sin(angle)]]), length, angle)
    return _to_uint8(_convolve(pixels, kernel.astype(np.float32)))


@_register("sensor-noise", "sensor noise: Gaussian colour noise (a high-ISO or failing sensor)",
           kind="sensor", default_strength=0.5, seeded=True)
def sensor_noise(pixels: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Independent Gaussian noise per pixel and channel, standard deviation ``s x 60`` grey levels."""
    noise = rng.normal(0.0, 60.0 * strength, size=pixels.shape).astype(np.float32)
    return _to_uint8(pixels.astype(np.float32) + noise)


@_register("dead-pixels", "dead and hot pixels: a share of pixels stuck at black or white", kind="sensor",
           default_strength=0.6, seeded=True)
def dead_pixels(pixels: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """``s x 8 %`` of the pixels (all channels) stuck: half at 0 (dead), half at 255 (hot)."""
    height, width = pixels.shape[:2]
    n_stuck = int(round(strength * 0.08 * height * width))
    out = pixels.copy()
    if n_stuck:
        where = rng.choice(height * width, size=n_stuck, replace=False)
        value = np.where(rng.random(n_stuck) < 0.5, 0, 255).astype(np.uint8)
        out.reshape(-1, 3)[where] = value[:, None]
    return out


@_register("lens-dirt", "lens dirt: soft dark brown blotches (mud, drops) on the lens", kind="optics",
           default_strength=0.6, seeded=True)
def lens_dirt(pixels: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """``3 + round(4 s)`` Gaussian blotches (sigma 8-18 % of the short side), opacity up to ``0.85 s`` towards (60, 48, 36)."""
    height, width = pixels.shape[:2]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    alpha = np.zeros((height, width), dtype=np.float32)
    for _ in range(3 + int(round(4 * strength))):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        sigma = rng.uniform(0.08, 0.18) * min(height, width)
        alpha = np.maximum(alpha, np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma ** 2)))
    return _to_uint8(_blend(pixels, (60, 48, 36), 0.85 * strength * alpha))


#: The conditions of the kinds driving datasets have (weather, time of day, lighting, optics, sensor faults).
DRIVING_CONDITIONS = ("night", "fog", "rain", "snow", "glare", "defocus", "motion-blur", "sensor-noise",
                      "dead-pixels", "lens-dirt")


# ---------------------------------------------------------------- the training experiment's conditions
def _pil_condition(name: str, summary: str, kind: str, transform: Callable[[Image.Image], Image.Image]) -> None:
    def apply(pixels: np.ndarray, strength: float | None, rng: np.random.Generator) -> np.ndarray:
        return np.asarray(transform(Image.fromarray(pixels)).convert("RGB"), dtype=np.uint8).copy()

    apply.__name__ = name.replace("-", "_")
    apply.__doc__ = summary
    _register(name, summary, kind=kind)(apply)


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


for _name, _summary, _kind, _transform in (
        ("inverted", "colours inverted (255 - x)", "colour", ImageOps.invert),
        ("rotated_90", "rotated by 90 degrees", "layout", lambda image: image.rotate(90)),
        ("upside_down", "flipped top to bottom", "layout", lambda image: image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)),
        ("zoomed_in", "the centre half, enlarged to the full size", "layout", _zoomed_in),
        ("shrunk", "shrunk to half size on a black canvas", "layout", _shrunk),
        ("red_cast", "green and blue scaled by 0.35", "colour", _red_cast),
        ("striped_background", "grey stripes on the dark background", "layout", _striped_background),
        ("blurred", "Gaussian blur, radius 1.5 px", "optics", lambda image: image.filter(ImageFilter.GaussianBlur(1.5))),
        ("darkened", "a third of the brightness (night, under-exposure)", "light", _darkened),
        ("fogged", "contrast 0.45, blended towards grey 180 (fog, haze)", "weather", _fogged),
):
    _pil_condition(_name, _summary, _kind, _transform)


# ------------------------------------------------------------------------------------ applying
def takes_strength(name: str) -> bool:
    """Whether the registered condition ``name`` has a strength (the experiment's conditions have none)."""
    return CONDITIONS.entry(name).extra["default_strength"] is not None


def _check_strength(name: str, strength) -> float | None:
    entry = CONDITIONS.entry(name)
    default = entry.extra["default_strength"]
    if default is None:
        if strength is not None:
            raise ValueError(f"the condition {entry.name!r} has no strength; pass strength=None")
        return None
    if strength is None:
        return float(default)
    if isinstance(strength, (bool, np.bool_)) or not isinstance(strength, numbers.Real) or not 0 <= strength <= 1:
        raise ValueError(f"strength must be a number in [0, 1] (0: unchanged, 1: strongest), got {strength!r}")
    return float(strength)


def condition_pixels(pixels: np.ndarray, name: str, strength: float | None = None,
                     seed: int | Sequence[int] = 0) -> np.ndarray:
    """``pixels`` (an ``(H, W, 3)`` uint8 array) showing condition ``name``: a new array, same shape.

    Parameters
    ----------
    pixels : ndarray (H, W, 3) of uint8
    name : str
        A :data:`CONDITIONS` name.
    strength : float in [0, 1], optional
        None: the condition's default. Conditions without a strength take None only.
    seed : int or sequence of int, default=0
        Seeds :func:`numpy.random.default_rng` for the seeded conditions; the others ignore it.
    """
    array = np.asarray(pixels)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(f"pixels must be an (H, W, 3) uint8 array (an RGB image), got {array.dtype} {array.shape}; "
                         "convert a PIL image with np.asarray(image.convert('RGB'))")
    value = _check_strength(name, strength)
    entry = CONDITIONS.entry(name)
    out = entry.factory(array, value, np.random.default_rng(seed))
    assert out.shape == array.shape and out.dtype == np.uint8, f"condition {entry.name!r} broke its contract"
    return out


def apply_condition(image: Image.Image, name: str, strength: float | None = None,
                    seed: int | Sequence[int] = 0) -> Image.Image:
    """``image`` (PIL, any mode; converted to RGB) showing condition ``name`` (:func:`condition_pixels`)."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return Image.fromarray(condition_pixels(pixels, name, strength, seed))


def condition_transform(name: str, strength: float | None = None, seed: int = 0) -> Callable[[Image.Image], Image.Image]:
    """``image -> apply_condition(image, name, strength, seed)``, checked now (an unknown name fails here)."""
    _check_strength(name, strength)

    def transform(image: Image.Image) -> Image.Image:
        return apply_condition(image, name, strength, seed)

    return transform


def image_seed(seed: int, sample_id: str) -> list[int]:
    """The seed of one image's alteration: ``[seed, crc32(sample_id)]`` (position-independent)."""
    return [int(seed), zlib.crc32(str(sample_id).encode("utf-8"))]


class ConditionSource(ImageSource):
    """A source whose ``modified`` positions show ``condition`` (their ids get a suffix, see below).

    Parameters
    ----------
    parent : ImageSource
    modified : sequence of bool
        One flag per sample of ``parent``.
    condition : str, default='inverted'
        A :data:`CONDITIONS` name.
    strength : float, optional
        None: the condition's default.
    seed : int, default=0
        Seeded conditions draw from :func:`image_seed` ``(seed, parent sample id)``.

    Ids of modified samples: ``<id>~<condition>`` for a condition without strength (the training
    experiment's ids), else ``<id>~<condition>@<strength>`` plus ``#<seed>`` for seeded ones, so
    the embedding cache never mixes two alterations of one image.
    """

    def __init__(self, parent: ImageSource, modified: Sequence[bool], condition: str = "inverted",
                 strength: float | None = None, seed: int = 0):
        if condition not in CONDITIONS:
            raise ValueError(f"condition must be one of {', '.join(CONDITIONS.names())}, got {condition!r}")
        self.condition = condition  # as the caller spells it (ids, metadata column); the registry resolves it
        self.strength = _check_strength(condition, strength)
        self.seed = int(seed)
        self.parent, self.modified = parent, np.asarray(modified, dtype=bool)
        if len(self.modified) != len(parent):
            raise ValueError("modified needs one flag per sample of the parent source")
        self.name, self.root, self.split = parent.name, parent.root, parent.split
        suffix = f"~{self.condition}"
        if self.strength is not None:
            suffix += f"@{self.strength:g}" + (f"#{self.seed}" if CONDITIONS.entry(condition).extra["seeded"] else "")
        self._parent_ids = list(parent.sample_ids)
        self._ids = [f"{sid}{suffix}" if m else sid for sid, m in zip(self._parent_ids, self.modified)]

    @property
    def sample_ids(self) -> list[str]:
        return self._ids

    def load(self, index: int, draft=None):
        image = self.parent.load(index, draft=draft).convert("RGB")
        if not self.modified[index]:
            return image
        return apply_condition(image, self.condition, self.strength, image_seed(self.seed, self._parent_ids[index]))

    def metadata(self) -> pd.DataFrame:
        table = self.parent.metadata().copy()
        table["sample_id"], table[self.condition] = self._ids, self.modified
        return table
