"""Repeated prompts skip the text encoders, with the same images as without the cache."""

from __future__ import annotations

import numpy as np
import pytest

from imagine.pipeline import PersonalizedPipeline
from llm_prompting import ExpandedPrompt
from tests.imagine.conftest import unit

SMALL = {"width": 64, "height": 64, "steps": 2, "seed": 5}


class EncoderCalls:
    """Counts forward passes of both text encoders (a forward hook; nothing is replaced)."""

    def __init__(self, pipe):
        self.count = 0
        self.handles = [
            encoder.register_forward_hook(self.hook)
            for encoder in (pipe.text_encoder, pipe.text_encoder_2)
        ]

    def hook(self, module, args, output) -> None:
        self.count += 1

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


@pytest.fixture
def calls(smoke):
    counter = EncoderCalls(smoke.pipe)
    yield counter
    counter.close()


def pixels(result) -> np.ndarray:
    return np.asarray(result.images[0].image, dtype=np.int16)


def test_a_repeated_prompt_is_encoded_once(smoke, calls):
    cached = PersonalizedPipeline(smoke)
    first = cached("me as an astronaut", unit(1), **SMALL)
    encoded = calls.count
    assert encoded > 0
    again = cached("me as an astronaut", unit(2), **SMALL)  # another face, same words
    assert calls.count == encoded
    assert cached.prompt_cache.hits == 1
    uncached = PersonalizedPipeline(smoke, prompt_cache_size=0)
    assert np.array_equal(pixels(uncached("me as an astronaut", unit(2), **SMALL)), pixels(again))
    assert not np.array_equal(pixels(first), pixels(again))


def test_the_cache_is_bounded_and_can_be_off(smoke, calls):
    small = PersonalizedPipeline(smoke, prompt_cache_size=1)
    small("me as an astronaut", unit(1), **SMALL)
    small("me as a jazz singer", unit(1), **SMALL)  # evicts the astronaut
    base = calls.count
    small("me as an astronaut", unit(1), **SMALL)
    assert calls.count > base and len(small.prompt_cache) == 1
    off = PersonalizedPipeline(smoke, prompt_cache_size=0)
    off("me", unit(1), **SMALL)
    base = calls.count
    off("me", unit(1), **SMALL)
    assert calls.count > base and len(off.prompt_cache) == 0


def test_other_words_or_negative_prompt_are_encoded_again(smoke, calls):
    cached = PersonalizedPipeline(smoke)
    cached("me as an astronaut", unit(1), **SMALL)
    base = calls.count
    cached("me as a jazz singer", unit(1), **SMALL)
    assert calls.count > base
    base = calls.count
    text = ExpandedPrompt(
        prompt="me as an astronaut",
        negative_prompt="blurry",
        style="",
        added=(),
        backend="test",
        model="test",
    )
    cached("me as an astronaut", unit(1), text=text, **SMALL)
    assert calls.count > base
    base = calls.count
    cached("me as an astronaut", unit(1), guidance_scale=1.0, **SMALL)  # no negative half
    assert calls.count > base
