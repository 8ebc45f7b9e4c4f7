from __future__ import annotations

import numpy as np
import pytest

from imagine.pipeline import PersonalizedPipeline


@pytest.fixture
def pipeline(smoke) -> PersonalizedPipeline:
    return PersonalizedPipeline(smoke)


def unit(seed: int, dim: int = 128) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)
