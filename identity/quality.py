"""Quality gates: is there exactly one usable face in this photo?

Every criterion is measurable and backend-independent; the thresholds are
documented in the README ("Enrollment quality gates") and were calibrated on
the real photos the tests use (scikit-image's astronaut, matplotlib's Grace
Hopper portrait, insightface's group photo) and blurred/rotated variants.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from identity.analyzer import DetectedFace, FaceAnalyzer
from identity.errors import FaceTooSmall, LowQuality, MultipleFaces, NoFace

QUALITY_CROP = 128  # px; sharpness and exposure are measured on this aligned crop


@dataclass(frozen=True)
class QualityThresholds:
    min_face_px: int = 80  # shorter side of the face box, in photo pixels (HOG's window)
    # Another face at least this fraction of the main face's size is a second
    # person in the photo; smaller ones are background and ignored.
    significant_face_ratio: float = 0.5
    # Variance of the Laplacian of the 128 px grey aligned crop. Sharp portraits
    # measure 150-2500; a Gaussian blur of sigma 2 px on a 90 px face gives 8.
    min_sharpness: float = 25.0
    # |horizontal nose offset from the eye midpoint| / eye distance, in the
    # eye-levelled frame: 0 frontal, about 0.5 at 45 degrees of yaw.
    max_yaw: float = 0.35
    min_brightness: float = 35.0  # mean grey level (0-255) of the aligned crop
    max_brightness: float = 225.0
    # Share of the face box that must lie inside the photo (cut-off faces).
    min_visible: float = 0.9


@dataclass(frozen=True)
class FaceQuality:
    """Per-photo figures reported to the user; none of them is biometric."""

    face_px: int
    detection_score: float
    faces_detected: int  # detections above the backend's false-positive floor
    sharpness: float
    yaw: float
    brightness: float
    visible: float

    def to_dict(self) -> dict[str, float | int]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def select_face(
    faces: list[DetectedFace], analyzer: FaceAnalyzer, thresholds: QualityThresholds
) -> tuple[DetectedFace, int]:
    """The one face to enroll and the number of real detections; refuses 0 or several."""
    real = [f for f in faces if f.score >= analyzer.min_detection_score]
    if not real:
        raise NoFace("no face was found in the photo")
    main = max(real, key=lambda f: f.size)
    others = [
        f for f in real if f is not main and f.size >= thresholds.significant_face_ratio * main.size
    ]
    if others:
        raise MultipleFaces(f"{len(others) + 1} faces were found; the photo must show only you")
    if main.size < thresholds.min_face_px:
        raise FaceTooSmall(
            f"the face is {main.size:.0f} px across; at least {thresholds.min_face_px} px is needed"
        )
    return main, len(real)


def measure(
    image: np.ndarray,
    face: DetectedFace,
    crop: np.ndarray,
    faces_detected: int,
) -> FaceQuality:
    """Quality figures of ``face``; ``crop`` is its aligned [128, 128, 3] uint8 crop."""
    grey = crop.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return FaceQuality(
        face_px=round(face.size),
        detection_score=face.score,
        faces_detected=faces_detected,
        sharpness=_laplacian_variance(grey),
        yaw=yaw(face),
        brightness=float(grey.mean()),
        visible=_visible_share(face, image.shape[1], image.shape[0]),
    )


def check(quality: FaceQuality, thresholds: QualityThresholds) -> None:
    """Raise ``LowQuality`` naming the first criterion the face fails."""
    t = thresholds
    if quality.visible < t.min_visible:
        raise LowQuality("the face is cut off by the edge of the photo")
    if abs(quality.yaw) > t.max_yaw:
        raise LowQuality(
            f"the face is turned too far to the side (yaw {quality.yaw:+.2f}, limit ±{t.max_yaw}); "
            "look at the camera"
        )
    if quality.brightness < t.min_brightness:
        raise LowQuality(f"the face is too dark (brightness {quality.brightness:.0f})")
    if quality.brightness > t.max_brightness:
        raise LowQuality(f"the face is overexposed (brightness {quality.brightness:.0f})")
    if quality.sharpness < t.min_sharpness:
        raise LowQuality(
            f"the face is blurry (sharpness {quality.sharpness:.0f}, minimum {t.min_sharpness:.0f})"
        )


def _laplacian_variance(grey: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian: a standard focus measure (Pech-Pacheco 2000)."""
    lap = grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4 * grey[1:-1, 1:-1]
    return float(lap.var())


def yaw(face: DetectedFace) -> float:
    """Head-turn proxy from the landmarks: the nose's offset from the eye midpoint along the
    eye axis, over the eye distance; 0 frontal, positive when the nose is towards the
    image's right (the person turned to their own left), about ±0.5 at 45 degrees."""
    left, right, nose = (
        np.array(p, dtype=np.float64) for p in (face.left_eye, face.right_eye, face.nose)
    )
    axis = right - left
    distance = float(np.linalg.norm(axis))
    if distance == 0.0:
        return float("inf")
    return float(np.dot(nose - (left + right) / 2, axis / distance) / distance)


def _visible_share(face: DetectedFace, width: int, height: int) -> float:
    x0, y0, x1, y1 = face.box
    area = max(1e-6, (x1 - x0) * (y1 - y0))
    ix = max(0.0, min(x1, width) - max(x0, 0))
    iy = max(0.0, min(y1, height) - max(y0, 0))
    return ix * iy / area
