"""Repeated prompts skip the text encoders, with the same images as without the cache."""

from __future__ import annotations

import numpy as np
import pytest

from imagine.pipeline import PersonalizedPipeline, PromptText
from imagine.prompt_cache import PromptCache
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


def test_other_words_or_negative_prompt_are_encoded_again(smoke, calls):
    cached = PersonalizedPipeline(smoke)
    cached("me as an astronaut", unit(1), **SMALL)
    base = calls.count
    cached("me as a jazz singer", unit(1), **SMALL)
    assert calls.count > base
    base = calls.count
    text = PromptText(prompt="me as an astronaut", negative_prompt="blurry")
    cached("me as an astronaut", unit(1), text=text, **SMALL)
    assert calls.count > base
    base = calls.count
    cached("me as an astronaut", unit(1), guidance_scale=1.0, **SMALL)  # no negative half
    assert calls.count > base


def test_the_cache_keeps_the_most_recently_used():
    cache = PromptCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recent
    cache.put("c", 3)
    assert cache.get("b") is None and cache.get("a") == 1 and cache.get("c") == 3
    assert len(cache) == 2
    off = PromptCache(0)
    off.put("a", 1)
    assert off.get("a") is None and len(off) == 0
    with pytest.raises(ValueError, match="size"):
        PromptCache(-1)
