"""The ``nudenet`` output checker: NudeNet 3.4's 320 px ONNX detector, with per-class thresholds.

NudeNet (and through it onnxruntime and cv2) is imported only here. Its LICENSE
file is AGPL-3.0 although the package metadata says MIT: it is the optional
``safety`` extra. It takes a path, bytes or a BGR array, never a PIL image.
"""

from __future__ import annotations

import time

import numpy as np
from PIL import Image

from imagine.safety import SafetyResult, flag


class NudeNetChecker:
    name = "nudenet"

    def __init__(self, thresholds: tuple[tuple[str, float], ...]):
        from nudenet import NudeDetector

        self.thresholds = thresholds
        # Loads the bundled 320n.onnx (about 0.4 s). detect() keeps no state between
        # calls and onnxruntime sessions may run concurrently, so threads can share it.
        self._detector = NudeDetector()

    def check(self, image: Image.Image) -> SafetyResult:
        start = time.perf_counter()
        bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8)[:, :, ::-1])
        detections = self._detector.detect(bgr)  # [{"class", "score", "box"}], score >= 0.2
        scores: dict[str, float] = {}
        for d in detections:
            scores[d["class"]] = max(scores.get(d["class"], 0.0), float(d["score"]))
        return SafetyResult(
            checker=self.name,
            scores=scores,
            flagged=flag(scores, self.thresholds),
            seconds=time.perf_counter() - start,
        )
