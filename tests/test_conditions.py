"""deqlib.conditions: each condition is deterministic per seed, leaves pixels alone at strength 0 and
changes them as its docstring says (checked on synthetic images whose answer is known, and on real
Fashion-MNIST images)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter, ImageOps

from deqlib import conditions as C
from deqlib.sources import FashionMNISTSource

SEEDED = [n for n in C.DRIVING_CONDITIONS if C.CONDITIONS.entry(n).extra["seeded"]]


def constant(value, size=(40, 60)) -> np.ndarray:
    return np.full(size + (3,), value, dtype=np.uint8)


@pytest.fixture(scope="module")
def fashion():
    source = FashionMNISTSource(split="train", max_images=8, seed=1)
    return [np.asarray(source.load(i).convert("RGB"), dtype=np.uint8) for i in range(len(source))]


def test_registry_has_at_least_six_driving_conditions_of_several_kinds():
    assert len(C.DRIVING_CONDITIONS) >= 6
    kinds = {C.CONDITIONS.entry(n).extra["kind"] for n in C.DRIVING_CONDITIONS}
    assert {"weather", "time of day", "optics", "sensor"} <= kinds
    for name in C.DRIVING_CONDITIONS:
        assert C.takes_strength(name) and 0 < C.CONDITIONS.entry(name).extra["default_strength"] <= 1


@pytest.mark.parametrize("name", C.DRIVING_CONDITIONS)
def test_every_condition_is_deterministic_changes_real_pixels_and_is_identity_at_zero(name, fashion):
    for image in fashion[:4]:
        once = C.condition_pixels(image, name, seed=5)
        assert once.shape == image.shape and once.dtype == np.uint8
        assert np.array_equal(once, C.condition_pixels(image, name, seed=5))
        assert not np.array_equal(once, image)
        assert np.array_equal(C.condition_pixels(image, name, strength=0.0, seed=5), image)
    # stronger means further from the original (mean absolute change over the images)
    change = [np.mean([np.abs(C.condition_pixels(i, name, s, seed=5).astype(int) - i).mean() for i in fashion])
              for s in (0.3, 1.0)]
    assert change[1] > change[0] > 0


@pytest.mark.parametrize("name", SEEDED)
def test_seeded_conditions_differ_between_seeds(name, fashion):
    image = np.full((64, 64, 3), 128, dtype=np.uint8) if name == "motion-blur" else fashion[0]
    if name == "motion-blur":
        image[20:44, 20:44] = 255
    assert not np.array_equal(C.condition_pixels(image, name, seed=1), C.condition_pixels(image, name, seed=2))


def test_night_on_white_is_exposure_gamma_and_blue_cast():
    out = C.condition_pixels(constant(255), "night", strength=1.0)
    assert out[0, 0].tolist() == [29, 34, 38]  # 255 * 0.15 * (0.75, 0.88, 1.0)
    half = C.condition_pixels(constant(128), "night", strength=0.5)
    expected = np.rint(255 * (128 / 255) ** 1.75 * (1 - 0.425) * np.array([0.875, 0.94, 1.0]))
    assert half[5, 5].tolist() == expected.tolist()


def test_fog_on_black_is_airlight_denser_at_the_top():
    out = C.condition_pixels(constant(0, (11, 5)), "fog", strength=1.0)
    assert out[0, 0].tolist() == [174, 174, 178]  # 0.8 * (217, 217, 222)
    assert out[-1, 0].tolist() == [104, 104, 107]  # 0.8 * 0.6 * (217, 217, 222)
    assert (np.diff(out[:, 0, 0].astype(int)) <= 0).all()  # monotone with the row


def test_rain_draws_slanted_streaks_of_one_colour():
    out = C.condition_pixels(constant(0, (100, 100)), "rain", strength=1.0, seed=0)
    streak = out.max(axis=2) > 0
    assert set(map(tuple, out[streak].tolist())) == {(147, 147, 154)}  # 0.7 * (210, 210, 220)
    assert 0.02 < streak.mean() < 0.5
    rows = np.flatnonzero(streak.any(axis=1))
    assert rows.size > 50  # streaks span rows, not dots


def test_snow_covers_about_twelve_percent_per_unit_strength():
    out = C.condition_pixels(constant(0, (200, 200)), "snow", strength=1.0, seed=0)
    flakes = out[..., 0] > 100
    assert set(np.unique(out[flakes][:, 0]).tolist()) == {235}  # 0.9 * 255 + 0.1 * 51
    assert set(np.unique(out[~flakes][:, 0]).tolist()) == {51}  # 20 % towards white
    assert 0.06 < flakes.mean() < 0.14  # overlaps make it a little under 12 %


def test_glare_is_brightest_in_the_upper_half():
    for seed in range(5):
        out = C.condition_pixels(constant(0, (80, 80)), "glare", strength=1.0, seed=seed)
        row, _ = np.unravel_index(out[..., 0].argmax(), out.shape[:2])
        assert row < 41 and out[..., 0].max() >= 250
        assert out[..., 0].min() >= 64  # blacks lifted by 25 %


def test_defocus_spreads_a_point_over_a_disk_and_keeps_flat_areas():
    image = constant(0, (41, 41))
    image[20, 20] = 255
    radius = 1.0 * 0.1 * 41
    out = C.condition_pixels(image, "defocus", strength=1.0)
    yy, xx = np.mgrid[-20:21, -20:21]
    disk = np.hypot(yy, xx) < radius + 0.5  # the soft edge reaches half a pixel further
    assert np.array_equal(out[..., 0] > 0, disk)
    assert np.array_equal(C.condition_pixels(constant(77), "defocus", strength=1.0), constant(77))


def test_motion_blur_spreads_a_point_along_one_line():
    image = constant(0, (61, 61))
    image[30, 30] = 255
    out = C.condition_pixels(image, "motion-blur", strength=1.0, seed=3)
    ys, xs = np.nonzero(out[..., 0])
    length = 1 + 0.2 * 61
    assert int(length) - 2 <= len(ys) <= int(length) + 3
    points = np.stack([ys, xs], 1).astype(float)
    centred = points - points.mean(0)
    singular = np.linalg.svd(centred, compute_uv=False)
    assert singular[1] < 0.2 * singular[0]  # collinear


def test_sensor_noise_has_the_documented_standard_deviation():
    out = C.condition_pixels(constant(128, (100, 100)), "sensor-noise", strength=0.5, seed=0)
    assert out.astype(float).std() == pytest.approx(30.0, rel=0.05)


def test_dead_pixels_are_stuck_at_black_or_white_in_the_documented_share():
    image = constant(128, (50, 50))
    out = C.condition_pixels(image, "dead-pixels", strength=0.5, seed=0)
    stuck = (out != image).any(axis=2)
    assert stuck.sum() == round(0.5 * 0.08 * 2500)
    assert set(np.unique(out[stuck]).tolist()) <= {0, 255}


def test_lens_dirt_only_darkens_towards_brown_up_to_its_opacity():
    out = C.condition_pixels(constant(255, (60, 60)), "lens-dirt", strength=1.0, seed=0).astype(float)
    alpha = (255 - out[..., 0]) / (255 - 60)
    assert alpha.max() == pytest.approx(0.85, abs=0.03) and alpha.min() >= 0
    assert (out[..., 2] <= out[..., 0]).all()  # brown: less blue than red


def test_the_experiment_conditions_are_the_same_pixels_as_before(fashion):
    from deqlib.experiment.conditions import CONDITIONS as EXPERIMENT

    image = Image.fromarray(fashion[2])
    expected = {"inverted": ImageOps.invert(image), "rotated_90": image.rotate(90),
                "upside_down": image.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
                "blurred": image.filter(ImageFilter.GaussianBlur(1.5))}
    for name, want in expected.items():
        assert np.array_equal(np.asarray(EXPERIMENT[name](image)), np.asarray(want))
    assert {C.CONDITIONS.resolve(name) for name in EXPERIMENT} <= set(C.CONDITIONS.names())
    with pytest.raises(ValueError, match="has no strength"):
        C.condition_pixels(fashion[0], "blurred", strength=0.5)


def test_bad_input_gets_a_message_naming_the_fix(fashion):
    with pytest.raises(ValueError, match=r"strength must be a number in \[0, 1\]"):
        C.condition_pixels(fashion[0], "fog", strength=1.5)
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8.*convert"):
        C.condition_pixels(fashion[0][..., 0], "fog")
    with pytest.raises(ValueError, match="unknown condition 'hail'; choose one of"):
        C.condition_pixels(fashion[0], "hail")


def test_condition_source_ids_say_the_alteration_and_images_do_not_depend_on_position():
    parent = FashionMNISTSource(split="train", max_images=6, seed=2)
    flags = [True, False, True, False, False, True]
    rain = C.ConditionSource(parent, flags, "rain", strength=0.4, seed=7)
    assert rain.sample_ids[0] == f"{parent.sample_ids[0]}~rain@0.4#7" and rain.sample_ids[1] == parent.sample_ids[1]
    assert C.ConditionSource(parent, flags, "fog").sample_ids[0] == f"{parent.sample_ids[0]}~fog@0.6"
    assert C.ConditionSource(parent, flags, "blurred").sample_ids[0] == f"{parent.sample_ids[0]}~blurred"
    # the experiment's ids keep its spelling (its embedding caches are keyed by them)
    assert C.ConditionSource(parent, flags, "rotated_90").sample_ids[0] == f"{parent.sample_ids[0]}~rotated_90"
    reversed_parent = parent.subset(list(range(5, -1, -1)))
    again = C.ConditionSource(reversed_parent, flags[::-1], "rain", strength=0.4, seed=7)
    assert np.array_equal(np.asarray(rain.load(0)), np.asarray(again.load(5)))  # same id, same streaks
    assert not np.array_equal(np.asarray(rain.load(0)), np.asarray(parent.load(0).convert("RGB")))
    assert np.array_equal(np.asarray(rain.load(1)), np.asarray(parent.load(1).convert("RGB")))
    assert rain.metadata()["rain"].tolist() == flags
