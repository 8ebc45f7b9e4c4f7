"""The expansion cache: repeated requests are answered from memory."""

from __future__ import annotations

import pytest

from llm_prompting import PromptingConfig, expand
from llm_prompting.cache import LRUCache
from llm_prompting.prompting import cache_for


def test_least_recently_used_entries_go_first():
    cache: LRUCache[int] = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recent
    cache.put("c", 3)
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c")) == (1, 3)
    assert (cache.hits, cache.misses, len(cache)) == (3, 1, 2)


def test_size_zero_remembers_nothing():
    cache: LRUCache[int] = LRUCache(0)
    cache.put("a", 1)
    assert cache.get("a") is None
    with pytest.raises(ValueError):
        LRUCache(-1)


def test_expand_hits_the_cache_on_the_same_request():
    config = PromptingConfig()
    cache = cache_for(config)
    first = expand("me as a knight", "photo", config)
    again = expand("  me as a knight ", "photo", config)  # surrounding spaces do not matter
    assert again is first
    assert (cache.hits, cache.misses) == (1, 1)
    expand("me as a knight", "anime", config)
    expand("me as a knight", "photo", config.replace(subject="the user"))
    assert (cache.hits, cache.misses) == (1, 3)


def test_the_cache_can_be_turned_off():
    config = PromptingConfig(cache_size=0)
    assert expand("me as a knight", "photo", config) is not expand(
        "me as a knight", "photo", config
    )
