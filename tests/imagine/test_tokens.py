"""The prompt budget's counter, loaded without the pipeline (``imagine.tokens``)."""

from __future__ import annotations

import pytest

from imagine.models.config import ModelNotFound
from imagine.pipeline import PersonalizedPipeline
from imagine.tokens import token_counter


def test_the_smoke_counter_counts_like_the_pipeline(smoke):
    alone, loaded = token_counter("smoke"), PersonalizedPipeline(smoke).count_tokens
    for text in ("", "me as an astronaut", "café, 1920s jazz singer", "x " * 100):
        assert alone(text) == loaded(text)
    assert alone("x " * 100) == 102  # not truncated at 77: over-long text must show


def test_sdxl_without_its_tokenizers_names_the_folders(tmp_path):
    with pytest.raises(ModelNotFound, match="tokenizer/ and tokenizer_2/"):
        token_counter("sdxl", tmp_path)
    with pytest.raises(ModelNotFound, match="IMAGINE_MODEL_DIR"):
        token_counter("sdxl")
