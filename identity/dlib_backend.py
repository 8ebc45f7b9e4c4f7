"""dlib face analysis with the models shipped in ``face_recognition_models``.

HOG detector, 5-point shape predictor, ResNet-29 embedding (128-d; dlib's own
LFW accuracy 99.38%). Works offline on any machine: the model files ship in a
PyPI package and are found through importlib, because the package's own
``__init__`` imports ``pkg_resources``, which current setuptools no longer has.

The ResNet runs on ONNX Runtime from dlib's own weights (``dlib_resnet.py``:
same descriptors, about 9 ms instead of 145 ms per face on one core);
``resnet="dlib"`` runs it in dlib instead.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
    landmark_layout = "dlib-5"  # eye corners (two each) and the base of the nose
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
    # HOG finds faces down to its 80 px window, at the scale it scans.
    hog_window = 80
    # Two passes (see the README). The coarse pass scans a copy no
    # longer than coarse_side; when its largest face is at least twice the
    # window there, every face half that size or more (the multiple_faces
    # rule) was visible too, and it decides. Otherwise the fine pass scans at
    # the scale where half the largest face fills the window, or, with no face
    # yet, at the finest scale: the photo capped at detect_max_side, doubled
    # when that is under upsample_below_side, so faces down to 40 px are found.
    coarse_side = 1024
    detect_max_side = 1600
    upsample_below_side = 800

    def __init__(self, resnet: str = "onnxruntime") -> None:
        if resnet not in ("onnxruntime", "dlib"):
            raise ValueError(f"resnet must be 'onnxruntime' or 'dlib', got {resnet!r}")
        try:
            import dlib
        except ImportError as exc:  # pragma: no cover - dlib-bin is a core dependency
            raise AnalyzerUnavailable(f"dlib is not installed ({exc})") from None
        folder = models_folder()
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._landmarks = dlib.shape_predictor(str(folder / MODEL_FILES["landmarks"]))
        if resnet == "onnxruntime":
            from identity.dlib_resnet import DlibResNet

            self._resnet: Callable[[np.ndarray], np.ndarray] = DlibResNet(
                folder / MODEL_FILES["embedding"]
            )
        else:
            encoder = dlib.face_recognition_model_v1(str(folder / MODEL_FILES["embedding"]))
            self._resnet = lambda chips: np.array(
                encoder.compute_face_descriptor(list(chips)), np.float32
            )

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        longest = max(image.shape[:2])
        finest = min(1.0, self.detect_max_side / longest)
        if longest * finest < self.upsample_below_side:
            finest *= 2
        coarse = min(finest, 1.0, self.coarse_side / longest)
        found = self._scan(image, coarse)
        real = [min(b.width(), b.height()) for b, s in found if s >= self.min_detection_score]
        largest = max(real, default=0)  # photo pixels
        if largest * coarse < 2 * self.hog_window:
            fine = min(finest, 2 * self.hog_window / largest) if largest else finest
            if fine > coarse:
                found = self._scan(image, fine)
        return sorted(
            (self._face(image, box, score) for box, score in found),
            key=lambda f: f.score,
            reverse=True,
        )

    def _scan(self, image: np.ndarray, scale: float) -> list[tuple[Any, float]]:
        """HOG detections in ``image`` resized by ``scale``: (rectangle in photo pixels, score)."""
        work = image if scale == 1.0 else _resize(image, scale)
        boxes, scores, _ = self._detector.run(work, 0, 0.0)
        return [
            (
                self._dlib.rectangle(
                    int(box.left() / scale),
                    int(box.top() / scale),
                    int(box.right() / scale),
                    int(box.bottom() / scale),
                ),
                float(score),
            )
            for box, score in zip(boxes, scores, strict=True)
        ]

    def _face(self, image: np.ndarray, rect: Any, score: float) -> DetectedFace:
        shape = self._landmarks(image, rect)
        points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)  # [5, 2]
        eye_a, eye_b = points[0:2].mean(axis=0), points[2:4].mean(axis=0)
        left, right = (eye_a, eye_b) if eye_a[0] <= eye_b[0] else (eye_b, eye_a)
        return DetectedFace(
            box=(rect.left(), rect.top(), rect.right(), rect.bottom()),
            score=score,
            left_eye=(float(left[0]), float(left[1])),
            right_eye=(float(right[0]), float(right[1])),
            nose=(float(points[4][0]), float(points[4][1])),
            landmarks=points,
            native=shape,
        )

    def embed(self, image: np.ndarray, face: DetectedFace) -> np.ndarray:
        # dlib's compute_face_descriptor: a 150 px chip with 25% padding, no jitter.
        chip = self._dlib.get_face_chip(image, face.native, size=150, padding=0.25)
        descriptor = self._resnet(np.asarray(chip, dtype=np.uint8)[None])[0]  # [128] raw
        return l2_normalize(descriptor)  # [128]

    def align(self, image: np.ndarray, face: DetectedFace, size: int) -> np.ndarray:
        chip = self._dlib.get_face_chip(image, face.native, size=size, padding=0.25)
        return np.asarray(chip, dtype=np.uint8)


def _resize(image: np.ndarray, scale: float) -> np.ndarray:
    from PIL import Image

    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # Shrinking: area averaging (anti-aliased, and a third faster than bilinear).
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(image).resize(size, resample))
