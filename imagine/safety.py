"""Output safety: every generated image is checked before it is stored.

A ``SafetyChecker`` looks at one image and returns a ``SafetyResult``: the
classes it detected with their best scores, and the classes at or above their
threshold ("flagged"). An image with any flagged class is unsafe: it is never
written, and its job records ``unsafe_output`` for it (``UnsafeOutput``).

Checkers are picked by name from ``CHECKERS``:

- ``nudenet``: NudeNet 3.4's detector (its ONNX model ships in the wheel);
  the optional ``safety`` extra. Its LICENSE file is AGPL-3.0 (the package
  metadata says MIT); see the README before you ship it.
- ``none``: no check at all. It must be chosen explicitly, and a service in
  production refuses to start on it unless the operator says so.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL import Image

from imagine.errors import ImagineError

# Per-class score thresholds (NudeNet class names). Classes not listed are
# reported but never block: faces, covered body parts, feet, belly, armpits and
# male chests are ordinary in portraits.
DEFAULT_THRESHOLDS: Mapping[str, float] = {
    "FEMALE_GENITALIA_EXPOSED": 0.35,
    "MALE_GENITALIA_EXPOSED": 0.35,
    "ANUS_EXPOSED": 0.35,
    "FEMALE_BREAST_EXPOSED": 0.4,
    "BUTTOCKS_EXPOSED": 0.4,
}


class UnsafeOutput(ImagineError):
    """A generated image failed the output check; it was not stored."""

    code = "unsafe_output"

    def __init__(self, result: SafetyResult):
        flagged = ", ".join(f"{c} {result.scores[c]:.2f}" for c in result.flagged)
        super().__init__("the image was withheld: it did not pass the output safety check")
        self.result = result
        self.detail = flagged  # for operators' logs, not for users


class SafetyUnavailable(ImagineError):
    """The configured checker cannot run (package missing): an operator error."""

    code = "safety_checker_unavailable"


@dataclass(frozen=True)
class SafetyResult:
    checker: str  # registry name of the checker that ran; "none" when nothing was checked
    scores: Mapping[str, float] = field(default_factory=dict)  # best score per detected class
    flagged: tuple[str, ...] = ()  # classes at or above their threshold
    seconds: float = 0.0

    @property
    def safe(self) -> bool:
        return not self.flagged

    def summary(self) -> dict[str, Any]:
        """For the sidecar and job record."""
        return {
            "checker": self.checker,
            "safe": self.safe,
            "flagged": list(self.flagged),
            "scores": {k: round(v, 3) for k, v in sorted(self.scores.items())},
        }


class SafetyChecker(Protocol):
    name: str

    def check(self, image: Image.Image) -> SafetyResult:
        """Judge one RGB image."""
        ...


@dataclass(frozen=True)
class SafetyConfig:
    checker: str = "nudenet"
    thresholds: tuple[tuple[str, float], ...] = tuple(sorted(DEFAULT_THRESHOLDS.items()))


def flag(scores: Mapping[str, float], thresholds: Iterable[tuple[str, float]]) -> tuple[str, ...]:
    """The classes whose score reaches their threshold, in threshold order."""
    return tuple(c for c, t in thresholds if c in scores and scores[c] >= t)


def parse_thresholds(entries: Iterable[str]) -> dict[str, float]:
    """``["CLASS=0.5", "FEET_EXPOSED=off"]`` -> ``{"CLASS": 0.5, "FEET_EXPOSED": inf}``."""
    out: dict[str, float] = {}
    for entry in entries:
        name, sep, value = entry.partition("=")
        name, value = name.strip().upper(), value.strip().lower()
        if not sep or not name:
            raise ValueError(f"{entry!r}: expected CLASS=score")
        if value == "off":
            out[name] = float("inf")
            continue
        try:
            score = float(value)
        except ValueError:
            raise ValueError(f"{entry!r}: score must be a number in [0, 1] or 'off'") from None
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"{entry!r}: score must be in [0, 1]")
        out[name] = score
    return out


class NoSafetyChecker:
    """Checks nothing and says so: every result has checker "none"."""

    name = "none"

    def check(self, image: Image.Image) -> SafetyResult:
        return SafetyResult(checker=self.name)


def _nudenet(config: SafetyConfig) -> SafetyChecker:
    if importlib.util.find_spec("nudenet") is None:
        raise SafetyUnavailable(
            "the nudenet output checker is not installed: install the 'safety' extra "
            "(pip install 'imagine-me[safety]'), or set IMAGINE_SAFETY_CHECKER=none "
            "to run without output checks"
        )
    from imagine.nudenet_backend import NudeNetChecker

    return NudeNetChecker(config.thresholds)


CHECKERS: dict[str, Callable[[SafetyConfig], SafetyChecker]] = {
    "nudenet": _nudenet,
    "none": lambda config: NoSafetyChecker(),
}

_cache: dict[SafetyConfig, SafetyChecker] = {}


def get_checker(config: SafetyConfig) -> SafetyChecker:
    """The checker named by ``config.checker``, built once per config value."""
    if config.checker not in CHECKERS:
        raise SafetyUnavailable(
            f"unknown safety checker {config.checker!r}; choose one of {sorted(CHECKERS)}"
        )
    if config not in _cache:
        _cache[config] = CHECKERS[config.checker](config)
    return _cache[config]


def screen(image: Image.Image, checker: SafetyChecker) -> SafetyResult:
    """``checker``'s result for ``image``; raises ``UnsafeOutput`` when it flags anything."""
    result = checker.check(image.convert("RGB"))
    if not result.safe:
        raise UnsafeOutput(result)
    return result
