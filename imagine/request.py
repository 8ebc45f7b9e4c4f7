"""One generation request, as every entry point takes it: its fields, limits and checks.

The CLI (``imagine generate``), batch manifests, the API and its worker all describe
a request with ``GenerationSpec`` and check it with ``GenerationSpec.checked``, so a
request means the same and fails with the same stable code wherever it comes in.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Protocol, TypeGuard

from imagine.errors import ImagineError
from llm_prompting import PromptingConfig, check_prompt

SEED_LIMIT = 2**32  # seeds are uint32: every entry point accepts exactly these


class InvalidArgument(ImagineError, ValueError):
    """A generation argument out of bounds; the message names it and repeats the value."""

    code = "invalid_argument"


@dataclass(frozen=True)
class GenerationLimits:
    max_images: int = 8  # n per request
    max_steps: int = 100
    min_side: int = 64
    max_side: int = 2048
    side_multiple: int = 8  # the VAE downsamples by 8
    max_best_of: int = 4
    max_prompt_chars: int = PromptingConfig.max_prompt_chars  # after check_prompt's NFC


class SpecDefaults(Protocol):
    """What fills a request's unset fields: a model profile's defaults."""

    @property
    def steps(self) -> int: ...

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...

    @property
    def adapter_scale(self) -> float: ...


@dataclass(frozen=True)
class GenerationSpec:
    """What a user asks for: n images of ``prompt`` (kept from ``n * best_of`` candidates by
    identity similarity), image k seeded ``seed + k`` (a random seed when None). Unset
    sizes, steps and adapter scale come from the model profile (``resolved``)."""

    prompt: str
    n: int = 1
    seed: int | None = None
    steps: int | None = None
    width: int | None = None
    height: int | None = None
    style: str | None = None
    adapter_scale: float | None = None
    best_of: int = 1

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> GenerationSpec:
        """The spec of a stored request (a job row's ``request``); other keys are ignored."""
        return cls(**{f.name: fields[f.name] for f in dataclasses.fields(cls) if f.name in fields})

    def resolved(self, defaults: SpecDefaults) -> GenerationSpec:
        """Unset steps, size and adapter scale taken from ``defaults``."""
        return dataclasses.replace(
            self,
            steps=defaults.steps if self.steps is None else self.steps,
            width=defaults.width if self.width is None else self.width,
            height=defaults.height if self.height is None else self.height,
            adapter_scale=defaults.adapter_scale
            if self.adapter_scale is None
            else self.adapter_scale,
        )

    def checked(self, lim: GenerationLimits) -> GenerationSpec:
        """This request within ``lim``, its prompt as ``check_prompt`` normalises it (store
        and use that one); ``InvalidArgument`` names the argument and the bad value, and a
        prompt can also fail with ``check_prompt``'s errors (``prompt_too_long``, ...).
        Unset steps or sizes are refused: resolve them first."""
        prompt = self.prompt
        if not isinstance(prompt, str) or not prompt.strip():
            raise InvalidArgument("prompt must be a non-empty string", code="invalid_prompt")
        prompt = check_prompt(prompt, lim.max_prompt_chars)
        if not _whole(self.n) or not 1 <= self.n <= lim.max_images:
            raise InvalidArgument(f"n must be 1-{lim.max_images}, got {self.n!r}", code="invalid_n")
        if not _whole(self.steps) or not 1 <= self.steps <= lim.max_steps:
            raise InvalidArgument(
                f"steps must be 1-{lim.max_steps}, got {self.steps!r}", code="invalid_steps"
            )
        for name, side in (("width", self.width), ("height", self.height)):
            if (
                not _whole(side)
                or not lim.min_side <= side <= lim.max_side
                or side % lim.side_multiple
            ):
                raise InvalidArgument(
                    f"{name} must be a multiple of {lim.side_multiple} in "
                    f"{lim.min_side}-{lim.max_side}, got {side!r}",
                    code="invalid_size",
                )
        if not _whole(self.best_of) or not 1 <= self.best_of <= lim.max_best_of:
            raise InvalidArgument(
                f"best_of must be 1-{lim.max_best_of}, got {self.best_of!r}",
                code="invalid_best_of",
            )
        check_seed(self.seed, self.n * self.best_of)  # n and best_of are known good here
        scale = self.adapter_scale
        if scale is not None and not 0.0 <= scale <= 2.0:
            raise InvalidArgument(
                f"adapter_scale must be 0-2, got {scale!r}", code="invalid_adapter_scale"
            )
        return dataclasses.replace(self, prompt=prompt)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(width, height, steps) of a resolved request: what jobs sharing a device batch
        have in common."""
        assert self.width and self.height and self.steps, f"not resolved: {self}"
        return self.width, self.height, self.steps

    def seeds(self, base: int) -> tuple[int, ...]:
        """The seed of each candidate image, from ``base`` (``seed``, or a random one)."""
        return tuple(base + k for k in range(self.n * self.best_of))


class InvalidSize(ImagineError):
    code = "invalid_size"


def parse_size(text: str, name: str = "--size") -> tuple[int, int]:
    """``"WxH"`` -> (W, H); ``GenerationSpec.checked`` checks the bounds. ``name`` is what
    the user typed.

    Shared by ``imagine generate``/``imagine batch`` (``--size``) and batch manifests (``size``).
    """
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise InvalidSize(f"{name} must look like 1024x1024, got {text!r}")
    return int(parts[0]), int(parts[1])


def _whole(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def check_seed(seed: int | None, count: int) -> None:
    """Image k of a request uses ``seed + k``: every one of the ``count`` seeds must be a
    valid seed, or the last images could not be asked for again by their own seed."""
    if seed is None:
        return
    highest = SEED_LIMIT - count
    if not 0 <= seed <= highest:
        raise InvalidArgument(
            f"seed must be 0-{highest}: image k uses seed + k, and the last of {count} "
            f"must stay below 2**32; got {seed!r}",
            code="invalid_seed",
        )
