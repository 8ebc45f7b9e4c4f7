"""Output safety: portraits and noise pass NudeNet, thresholds are per class, and a flagged
image is refused through the SafetyChecker protocol."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
from PIL import Image

from benchmarks.procedural import procedural_image
from imagine.safety import (
    CHECKERS,
    DEFAULT_THRESHOLDS,
    SafetyConfig,
    SafetyResult,
    SafetyUnavailable,
    UnsafeOutput,
    get_checker,
    parse_thresholds,
    screen,
)
from imagine.settings import Settings, SettingsError
from tests.photos import astronaut_image, group, hopper, package_file


def portraits() -> dict[str, Image.Image]:
    return {
        "astronaut": astronaut_image(),
        "hopper": Image.open(io.BytesIO(hopper())),
        "group": Image.open(io.BytesIO(group())),
        "tom_hanks": Image.open(
            package_file("insightface", "data", "images", "Tom_Hanks_54745.png")
        ),
    }


@pytest.fixture(scope="module")
def nudenet():
    return get_checker(SafetyConfig(checker="nudenet"))


@pytest.mark.parametrize("name", ["astronaut", "hopper", "group", "tom_hanks"])
def test_portraits_pass(nudenet, name):
    result = screen(portraits()[name], nudenet)
    assert result.safe and result.checker == "nudenet"
    assert any(c.startswith("FACE_") for c in result.scores)  # it did look: faces found
    assert result.seconds < 5


def test_noise_and_smoke_like_images_pass(nudenet):
    rng = np.random.default_rng(0)
    for image in (
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), "u1")),  # a smoke-profile output
        Image.fromarray(rng.integers(0, 256, (1024, 1024, 3), "u1")),
        procedural_image(2, (512, 512)),
    ):
        assert screen(image, nudenet).safe


def test_thresholds_are_per_class_on_the_real_detector():
    """The honest positive case: with a threshold on FACE_FEMALE (normally only
    reported), NudeNet's real detection of the astronaut's face blocks the image."""
    strict = get_checker(SafetyConfig("nudenet", (("FACE_FEMALE", 0.5),)))
    with pytest.raises(UnsafeOutput) as err:
        screen(astronaut_image(), strict)
    assert err.value.result.flagged == ("FACE_FEMALE",)
    assert err.value.result.scores["FACE_FEMALE"] >= 0.5
    assert "FACE_FEMALE" in err.value.detail
    lenient = get_checker(SafetyConfig("nudenet", (("FACE_FEMALE", 0.99),)))
    assert screen(astronaut_image(), lenient).safe


class FakeUnsafe:
    name = "fake-unsafe"

    def __init__(self, config: SafetyConfig):
        self.thresholds = dict(config.thresholds)

    def check(self, image: Image.Image) -> SafetyResult:
        scores = {"FEMALE_BREAST_EXPOSED": 0.9, "FACE_FEMALE": 0.8}
        flagged = tuple(c for c, t in self.thresholds.items() if scores.get(c, 0) >= t)
        return SafetyResult(self.name, scores, flagged)


def test_a_checker_from_the_registry_refuses_an_unsafe_image(monkeypatch):
    monkeypatch.setitem(CHECKERS, "fake-unsafe", FakeUnsafe)
    checker = get_checker(SafetyConfig(checker="fake-unsafe"))
    with pytest.raises(UnsafeOutput) as err:
        screen(Image.new("RGB", (64, 64)), checker)
    assert err.value.code == "unsafe_output"
    assert err.value.result.flagged == ("FEMALE_BREAST_EXPOSED",)
    assert not err.value.result.safe
    assert err.value.result.summary()["flagged"] == ["FEMALE_BREAST_EXPOSED"]


def test_none_is_explicit_and_says_nothing_was_checked():
    assert SafetyConfig().checker == "nudenet"
    assert Settings.from_env({}).safety().checker == "nudenet"
    result = screen(Image.new("RGB", (8, 8)), get_checker(SafetyConfig(checker="none")))
    assert result.safe and result.checker == "none" and not result.scores


def test_unknown_or_missing_checker_is_an_operator_error(monkeypatch):
    with pytest.raises(SafetyUnavailable) as err:
        get_checker(SafetyConfig(checker="nsfw-magic"))
    assert err.value.code == "safety_checker_unavailable"
    monkeypatch.setitem(sys.modules, "nudenet", None)  # as if the extra were not installed
    with pytest.raises(SafetyUnavailable, match="safety' extra"):
        get_checker(SafetyConfig("nudenet", (("ANUS_EXPOSED", 0.123),)))


def test_thresholds_from_settings():
    env = {"IMAGINE_SAFETY_THRESHOLDS": "buttocks_exposed=0.6, FEET_EXPOSED=0.5,ANUS_EXPOSED=off"}
    thresholds = dict(Settings.from_env(env).safety().thresholds)
    assert thresholds["BUTTOCKS_EXPOSED"] == 0.6
    assert thresholds["FEET_EXPOSED"] == 0.5
    assert thresholds["ANUS_EXPOSED"] == float("inf")  # never blocks
    assert thresholds["FEMALE_GENITALIA_EXPOSED"] == DEFAULT_THRESHOLDS["FEMALE_GENITALIA_EXPOSED"]


@pytest.mark.parametrize("bad", ["BUTTOCKS_EXPOSED", "X=1.5", "X=high", "=0.3"])
def test_bad_thresholds_name_the_variable(bad):
    with pytest.raises(ValueError):
        parse_thresholds([bad])
    with pytest.raises(SettingsError, match="IMAGINE_SAFETY_THRESHOLDS"):
        Settings.from_env({"IMAGINE_SAFETY_THRESHOLDS": bad}).safety()
