"""The ``FaceAnalyzer`` protocol, the face record it returns, and the backend registry.

A backend detects faces, aligns them and embeds them. Everything that judges a
face (size, pose, sharpness, how many faces count) lives in ``quality.py`` and
works on any backend's output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class DetectedFace:
    """One detection in the analysed image, in its pixel coordinates."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    score: float  # detector confidence, on the backend's own scale
    left_eye: tuple[float, float]  # eye centre with the smaller x in the image
    right_eye: tuple[float, float]
    nose: tuple[float, float]  # nose tip (insightface) or base (dlib)
    landmarks: np.ndarray = field(repr=False)  # [K, 2] float32, the backend's own layout
    native: object = field(default=None, repr=False, compare=False)  # backend handle
    padded: bool = False  # found only on a copy of the photo padded with a margin

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def size(self) -> float:
        """The shorter side of the box, in pixels."""
        return min(self.width, self.height)


class FaceAnalyzer(Protocol):
    name: str  # registry name: "dlib", "insightface"
    model_id: str  # which weights, e.g. "dlib_face_recognition_resnet_model_v1"
    embedding_dim: int  # 128 for dlib, 512 for ArcFace
    min_detection_score: float  # detections below this are false positives
    match_threshold: float  # cosine similarity at or above which two faces are one person
    # what DetectedFace.landmarks hold: "insightface-5" (eye centres, nose tip, mouth
    # corners: the keypoints InstantID's IdentityNet was trained on) or "dlib-5"
    landmark_layout: str

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        """Faces in ``image`` ([H, W, 3] uint8 RGB), best first; may include low scores."""
        ...

    def embed(self, image: np.ndarray, face: DetectedFace) -> np.ndarray:
        """[D] float32, L2-normalised identity embedding of ``face``."""
        ...

    def align(self, image: np.ndarray, face: DetectedFace, size: int) -> np.ndarray:
        """[size, size, 3] uint8 RGB crop, eyes levelled and centred."""
        ...


@dataclass(frozen=True)
class FaceSettings:
    """What the backends need to start; filled from the service settings."""

    backend: str = "dlib"
    insightface_root: Path | None = None  # folder holding models/<pack>/*.onnx
    insightface_pack: str = "buffalo_l"
    device: str = "auto"  # "auto" | "cpu" | "cuda": execution provider for insightface


def _dlib(settings: FaceSettings) -> FaceAnalyzer:
    from identity.dlib_backend import DlibFaceAnalyzer

    return DlibFaceAnalyzer()


def _insightface(settings: FaceSettings) -> FaceAnalyzer:
    from identity.insightface_backend import InsightFaceAnalyzer

    return InsightFaceAnalyzer.from_settings(settings)


ANALYZERS: dict[str, Callable[[FaceSettings], FaceAnalyzer]] = {
    "dlib": _dlib,
    "insightface": _insightface,
}

_cache: dict[FaceSettings, FaceAnalyzer] = {}


def get_analyzer(settings: FaceSettings) -> FaceAnalyzer:
    """The analyzer named by ``settings.backend``, built once per settings value."""
    if settings.backend not in ANALYZERS:
        raise ValueError(
            f"unknown face backend {settings.backend!r}; choose one of {sorted(ANALYZERS)}"
        )
    if settings not in _cache:
        _cache[settings] = ANALYZERS[settings.backend](settings)
    return _cache[settings]


def l2_normalize(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    norm = float(np.linalg.norm(v))
    if norm == 0.0 or not np.isfinite(norm):
        raise ValueError("cannot normalise a zero or non-finite embedding")
    return v / norm
