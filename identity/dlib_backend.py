"""dlib face analysis with the models shipped in ``face_recognition_models``.

HOG detector, 5-point shape predictor, ResNet-29 embedding (128-d; dlib's own
LFW accuracy 99.38%). Works offline on any machine: the model files ship in a
PyPI package and are found through importlib, because the package's own
``__init__`` imports ``pkg_resources``, which current setuptools no longer has.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from identity.analyzer import DetectedFace, l2_normalize
from identity.errors import AnalyzerUnavailable

MODEL_FILES = {
    "landmarks": "shape_predictor_5_face_landmarks.dat",
    "embedding": "dlib_face_recognition_resnet_model_v1.dat",
}


def models_folder() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise AnalyzerUnavailable(
            "the dlib backend needs the face_recognition_models package (pip install "
            "face_recognition_models)"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    missing = [name for name in MODEL_FILES.values() if not (folder / name).is_file()]
    if missing:
        raise AnalyzerUnavailable(f"dlib model files missing from {folder}: {', '.join(missing)}")
    return folder


class DlibFaceAnalyzer:
    name = "dlib"
    model_id = "dlib_face_recognition_resnet_model_v1"
    embedding_dim = 128
    # HOG scores: real frontal faces score about 0.6-3; the astronaut photo's
    # spurious "face" on the suit scores 0.12 (PITFALLS.md), and a 20-degree
    # rotation of it adds a 0.46 one on the rotated border.
    min_detection_score = 0.5
    # Cosine similarity of L2-normalised descriptors. dlib's documented cut-off
    # is a Euclidean distance of 0.6 on raw descriptors (norm about 1.45), which
    # is a cosine of about 1 - 0.6**2 / (2 * 1.45**2) = 0.914.
    match_threshold = 0.91
    # Detection runs on a copy no longer than this; larger photos are scaled down.
    detect_max_side = 1600
    # Below this longest side the image is upsampled once, so faces down to
    # about 40 px are found (HOG's window is 80 px).
    upsample_below_side = 800

    def __init__(self) -> None:
        try:
            import dlib
        except ImportError as exc:  # pragma: no cover - dlib-bin is a core dependency
            raise AnalyzerUnavailable(f"dlib is not installed ({exc})") from None
        folder = models_folder()
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._landmarks = dlib.shape_predictor(str(folder / MODEL_FILES["landmarks"]))
        self._encoder = dlib.face_recognition_model_v1(str(folder / MODEL_FILES["embedding"]))

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        height, width = image.shape[:2]
        scale = min(1.0, self.detect_max_side / max(height, width))
        work = image if scale == 1.0 else _resize(image, scale)
        upsample = 1 if max(work.shape[:2]) < self.upsample_below_side else 0
        boxes, scores, _ = self._detector.run(work, upsample, 0.0)
        faces = []
        for box, score in zip(boxes, scores, strict=True):
            rect = self._dlib.rectangle(
                int(box.left() / scale),
                int(box.top() / scale),
                int(box.right() / scale),
                int(box.bottom() / scale),
            )
            shape = self._landmarks(image, rect)
            points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)  # [5, 2]
            eye_a, eye_b = points[0:2].mean(axis=0), points[2:4].mean(axis=0)
            left, right = (eye_a, eye_b) if eye_a[0] <= eye_b[0] else (eye_b, eye_a)
            faces.append(
                DetectedFace(
                    box=(rect.left(), rect.top(), rect.right(), rect.bottom()),
                    score=float(score),
                    left_eye=(float(left[0]), float(left[1])),
                    right_eye=(float(right[0]), float(right[1])),
                    nose=(float(points[4][0]), float(points[4][1])),
                    landmarks=points,
                    native=shape,
                )
            )
        return sorted(faces, key=lambda f: f.score, reverse=True)

    def embed(self, image: np.ndarray, face: DetectedFace) -> np.ndarray:
        descriptor = self._encoder.compute_face_descriptor(image, face.native)
        return l2_normalize(np.asarray(descriptor, dtype=np.float32))  # [128]

    def align(self, image: np.ndarray, face: DetectedFace, size: int) -> np.ndarray:
        chip = self._dlib.get_face_chip(image, face.native, size=size, padding=0.25)
        return np.asarray(chip, dtype=np.uint8)


def _resize(image: np.ndarray, scale: float) -> np.ndarray:
    from PIL import Image

    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
