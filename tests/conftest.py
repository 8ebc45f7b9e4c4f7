from __future__ import annotations

from pathlib import Path

import pytest

from identity.analyzer import FaceAnalyzer, FaceSettings, get_analyzer


@pytest.fixture(scope="session")
def dlib_analyzer() -> FaceAnalyzer:
    return get_analyzer(FaceSettings(backend="dlib"))


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    """One model cache per test session: the smoke weights are built into it once."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="session")
def smoke(model_cache):
    """The smoke pipeline for 128-d (dlib) embeddings, built once per test session."""
    from imagine.models import ModelConfig, load_pipeline

    return load_pipeline(ModelConfig(profile="smoke", cache=model_cache, embedding_dim=128))
