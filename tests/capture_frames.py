"""Camera frames of a head turning, made from one real photo, for the live-capture tests.

A webcam-like 640x480 frame of scikit-image's astronaut portrait is warped to turn the
head: the middle of the face (nose and mouth, which stand out from the face) is moved
sideways more than the eyes and cheeks, as a head turned by about 20 degrees shows them
to a camera. The landmark yaw proxy (``identity.quality.yaw``) then moves by about ±0.15
while the face stays the same person to the face backend (``test_capture.py`` checks
both). ``y4m`` writes frames as a YUV4MPEG2 video, the format of Chromium's fake camera
(``--use-file-for-fake-video-capture``).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

from tests.photos import astronaut_image, encode

SIZE = (640, 480)  # a webcam's frame
# The astronaut's face in the 512x512 photo (dlib's detection and nose landmark), and the
# part of the photo a webcam would frame: scaled by 640 / 360 into SIZE.
CROP = (60, 0, 420, 270)
FACE_BOX = (172.0, 73.0, 270.0, 172.0)
NOSE = (224.0, 134.0)
PEAK = 0.45  # radians of the warp at a full turn


@cache
def still() -> np.ndarray:
    """[480, 640, 3] uint8: the frame of a face looking at the camera."""
    return np.asarray(astronaut_image().crop(CROP).resize(SIZE, Image.Resampling.LANCZOS))


def _in_frame(x: float, y: float) -> tuple[float, float]:
    scale = SIZE[0] / (CROP[2] - CROP[0])
    return (x - CROP[0]) * scale, (y - CROP[1]) * scale


def turned(theta: float) -> np.ndarray:
    """The still frame with the head turned by ``theta`` (radians, about; positive: to the
    person's own left, so the nose moves to the image's right)."""
    image = still()
    x0, y0 = _in_frame(*FACE_BOX[:2])
    x1, y1 = _in_frame(*FACE_BOX[2:])
    nx, ny = _in_frame(*NOSE)
    width = x1 - x0
    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    # Depth in front of the eyes: most at the nose, less over the whole head.
    nose = np.exp(-(((xs - nx) / (0.22 * width)) ** 2 + ((ys - ny) / (0.35 * width)) ** 2))
    head = np.exp(
        -(((xs - (x0 + x1) / 2) / (0.8 * width)) ** 4 + ((ys - (y0 + y1) / 2) / (0.9 * width)) ** 4)
    )
    source = np.clip(xs - width * np.sin(theta) * (0.35 * nose + 0.15 * head), 0, w - 1.001)
    left = source.astype(np.int32)  # [H, W] column sampled, and the weight of the next one
    frac = (source - left)[..., None]
    rows = np.arange(h)[:, None]
    out = image[rows, left] * (1 - frac) + image[rows, left + 1] * frac
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def jpeg(frame: np.ndarray) -> bytes:
    return encode(frame, "JPEG", quality=90)


def head_turns(thetas: Iterable[float]) -> list[bytes]:
    """JPEG frames, one per angle."""
    return [jpeg(turned(t)) for t in thetas]


def sweep(fps: int = 10, period_s: float = 2.0) -> list[np.ndarray]:
    """One period of a head turning to its left, holding, then to its right and holding:
    ``PEAK * clip(1.6 sin(2 pi t / period))``, so most frames are near a full turn."""
    count = round(fps * period_s)
    cache: dict[float, np.ndarray] = {}
    frames = []
    for i in range(count):
        theta = round(PEAK * float(np.clip(1.6 * np.sin(2 * np.pi * i / count), -1, 1)), 3)
        if theta not in cache:
            cache[theta] = turned(theta)
        frames.append(cache[theta])
    return frames


def y4m(path: Path, frames: list[np.ndarray], fps: int = 10) -> Path:
    """Write ``frames`` ([H, W, 3] uint8 RGB) as a YUV4MPEG2 video, 4:2:0 (full range)."""
    h, w = frames[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg XYSCSS=420JPEG\n".encode())
        for frame in frames:
            y, u, v = Image.fromarray(frame).convert("YCbCr").split()
            half = (w // 2, h // 2)
            f.write(b"FRAME\n")
            f.write(y.tobytes())
            f.write(u.resize(half, Image.Resampling.BILINEAR).tobytes())
            f.write(v.resize(half, Image.Resampling.BILINEAR).tobytes())
    return path
