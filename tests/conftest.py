from __future__ import annotations

import pytest

from identity.analyzer import FaceAnalyzer, FaceSettings, get_analyzer


@pytest.fixture(scope="session")
def dlib_analyzer() -> FaceAnalyzer:
    return get_analyzer(FaceSettings(backend="dlib"))
