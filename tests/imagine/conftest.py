from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imagine.pipeline import PersonalizedPipeline
from tests.photos import astronaut


@pytest.fixture
def pipeline(smoke) -> PersonalizedPipeline:
    return PersonalizedPipeline(smoke)


def unit(seed: int, dim: int = 128) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture
def env(model_cache) -> dict[str, str]:
    """Environment for CLI runs; IMAGINE_HOME's model cache is shared so the smoke
    weights are built once per session."""
    home = model_cache.parent / "home"
    home.mkdir(exist_ok=True)
    if not (home / "models").exists():
        (home / "models").symlink_to(model_cache)
    return {"IMAGINE_HOME": str(home)}


@pytest.fixture
def portrait(tmp_path) -> Path:
    path = tmp_path / "me.jpg"
    path.write_bytes(astronaut())
    return path
