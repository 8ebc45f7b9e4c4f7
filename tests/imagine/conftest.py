from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imagine.models import ModelConfig, load_pipeline
from imagine.pipeline import PersonalizedPipeline


@pytest.fixture(scope="session")
def smoke(model_cache):
    """The smoke pipeline for 128-d (dlib) embeddings, built once per test session."""
    return load_pipeline(ModelConfig(profile="smoke", cache=model_cache, embedding_dim=128))


@pytest.fixture
def pipeline(smoke) -> PersonalizedPipeline:
    return PersonalizedPipeline(smoke)


def unit(seed: int, dim: int = 128) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)
