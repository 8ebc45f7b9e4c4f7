from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imagine.pipeline import PersonalizedPipeline
from tests.photos import astronaut, astronaut_reframed, group, hopper


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


@pytest.fixture
def photos(portrait) -> Path:
    """The portrait's folder, with a group photo, another face and a reframed portrait."""
    folder = portrait.parent
    (folder / "group.jpg").write_bytes(group())
    (folder / "hopper.jpg").write_bytes(hopper())
    (folder / "reframed.png").write_bytes(astronaut_reframed())
    return folder
