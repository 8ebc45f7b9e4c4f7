from __future__ import annotations

from dataclasses import dataclass
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
    from imagine.models.config import ModelConfig
    from imagine.models.loading import load_pipeline

    return load_pipeline(ModelConfig(profile="smoke", cache=model_cache, embedding_dim=128))


@dataclass(frozen=True)
class CertChain:
    chain: Path  # signing certificate, then the intermediate CA
    key: Path  # the signing certificate's private key
    root: Path  # the root CA, to be trusted explicitly


@pytest.fixture(scope="session")
def c2pa_chain(tmp_path_factory) -> CertChain:
    """A throwaway EC P-256 root -> intermediate -> signer chain that c2pa-rs accepts,
    made as a fresh install makes its local chain (``imagine.provenance.keys``)."""
    from imagine.provenance.keys import write_chain

    made = write_chain(tmp_path_factory.mktemp("c2pa"), "Imagine Me tests", days=2)
    return CertChain(made.chain, made.key, made.root)
