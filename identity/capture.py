"""Live capture: camera frames that follow a head-turn challenge, in, an ``IdentityProfile`` out.

The web gallery's "Use my camera" (issue 19) asks the person to turn their head in an order
the server chose at random, and sends a few frames taken meanwhile. The checks, in order,
each a ``step`` of ``CaptureFailed``:

1. ``frames``: between ``min_frames`` and ``max_frames`` frames, each downscaled to at most
   ``max_side`` px (the check's time is bounded: about 0.1 s a frame with dlib on one core);
2. ``face``: every frame shows exactly one face, large enough (``select_face``);
3. ``liveness``: a passive presentation-attack check of each face, when one is plugged in
   (``LivenessCheck``; none ships yet);
4. ``same_person``: every two frames at or above the backend's match threshold;
5. ``challenge``: the head's yaw (from the face landmarks: the nose's offset from the eye
   midpoint over the eye distance, ``identity.quality.yaw``) goes past ``turn_yaw`` to
   each side the challenge names, in its order, measured from the yaw of the first
   ``lead_frames`` (the capture starts with the person looking at the camera, so a camera
   off to one side does not count as a turn);
6. ``quality``: the most frontal frame passes the enrollment quality gates.

What this does not stop: a video of the person turning their head in the asked order, or
a live person holding up such a video, passes. A passive anti-spoofing model behind
``LivenessCheck`` is the next step.

Direction: frames are as the camera sends them (not mirrored). A person turning to their
own left shows the camera their right cheek: the nose moves to the image's right, and the
yaw proxy grows.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from PIL import Image

from identity.analyzer import DetectedFace, FaceAnalyzer, l2_normalize
from identity.enrollment import EnrolledPhoto, EnrollmentConfig, IdentityProfile
from identity.errors import IdentityError
from identity.ingest import load_photo
from identity.quality import QUALITY_CROP, check, measure, select_face, yaw

TURNS = ("left", "right")
MAX_CHALLENGE_STEPS = 3


class CaptureFailed(IdentityError):
    """A camera capture was refused; ``step`` names the check that failed."""

    code = "capture_failed"

    def __init__(self, message: str, *, step: str, photo: int | None = None):
        super().__init__(message, photo=photo)
        self.step = step  # "frames" | "face" | "liveness" | "same_person" | "challenge" | "quality"


@dataclass(frozen=True)
class CaptureConfig:
    min_frames: int = 4
    max_frames: int = 12
    max_side: int = 640  # px: frames are downscaled to this before analysis
    lead_frames: int = 2  # the first frames, looking at the camera: the frontal yaw
    # Yaw proxy beyond the frontal yaw that counts as a turn: about 10 degrees of head turn
    # (0.5 is about 45); a still face stays within a few hundredths.
    turn_yaw: float = 0.10


class LivenessCheck(Protocol):
    """A passive presentation-attack (anti-spoofing) check of one face in one frame: is it
    a live face rather than a photo, a screen or a mask? The next step (README,
    "Responsible use"); a model would be registered and configured like a face backend."""

    name: str

    def is_live(self, image: np.ndarray, face: DetectedFace) -> bool:
        """``image`` is the [H, W, 3] uint8 RGB frame, ``face`` its one face."""
        ...


def new_challenge(steps: int) -> tuple[str, ...]:
    """``steps`` head turns, alternating sides, starting on a side chosen at random."""
    if not 1 <= steps <= MAX_CHALLENGE_STEPS:
        raise ValueError(f"steps={steps}: a challenge has 1-{MAX_CHALLENGE_STEPS} turns")
    first = TURNS.index(secrets.choice(TURNS))
    return tuple(TURNS[(first + i) % 2] for i in range(steps))


def describe(challenge: Sequence[str]) -> str:
    """'turn your head left, then right'"""
    return "turn your head " + ", then ".join(challenge)


@dataclass(frozen=True)
class Frame:
    pixels: np.ndarray  # [H, W, 3] uint8 RGB, at most max_side px
    face: DetectedFace
    faces_detected: int
    yaw: float
    embedding: np.ndarray  # [D] float32, L2-normalised


def check_capture(
    frames: Sequence[bytes],
    challenge: Sequence[str],
    analyzer: FaceAnalyzer,
    config: EnrollmentConfig | None = None,
    capture: CaptureConfig | None = None,
    liveness: LivenessCheck | None = None,
) -> IdentityProfile:
    """Check ``frames`` (encoded images, in capture order) against ``challenge``; raises
    ``CaptureFailed`` naming the step (``frames`` for a frame that is no usable image)."""
    config, capture = config or EnrollmentConfig(), capture or CaptureConfig()
    # 1. frames
    least = max(capture.min_frames, capture.lead_frames + len(challenge))
    if not least <= len(frames) <= capture.max_frames:
        raise CaptureFailed(
            f"{len(frames)} frames were sent; this capture has {least}-{capture.max_frames}",
            step="frames",
        )
    # 2-3. one face in each, live
    seen = [_frame(data, i, analyzer, config, capture) for i, data in enumerate(frames)]
    if liveness is not None:
        for i, frame in enumerate(seen):
            if not liveness.is_live(frame.pixels, frame.face):
                raise CaptureFailed(
                    f"frame {i + 1}: the face does not look live ({liveness.name})",
                    step="liveness",
                    photo=i,
                )
    # 4. one person throughout
    for (i, a), (j, b) in itertools.combinations(enumerate(seen), 2):
        score = float(np.dot(a.embedding, b.embedding))
        if score < analyzer.match_threshold:
            raise CaptureFailed(
                f"frames {i + 1} and {j + 1} do not show the same person "
                f"(similarity {score:.3f}, threshold {analyzer.match_threshold})",
                step="same_person",
                photo=j,
            )
    # 5. the head turns as asked, in order
    yaws = [f.yaw for f in seen]
    follow_challenge(yaws, challenge, capture.turn_yaw, capture.lead_frames)
    # 6. the most frontal frame is a usable enrollment photo
    base = float(np.median(yaws[: capture.lead_frames]))
    best = min(range(len(seen)), key=lambda i: abs(yaws[i] - base))
    frontal = seen[best]
    small = analyzer.align(frontal.pixels, frontal.face, QUALITY_CROP)
    quality = measure(frontal.pixels, frontal.face, small, frontal.faces_detected)
    try:
        check(quality, config.thresholds)
    except IdentityError as exc:
        raise CaptureFailed(
            f"frame {best + 1}: {exc.message}", step="quality", photo=best
        ) from None

    profile = l2_normalize(np.mean([f.embedding for f in seen], axis=0))  # [D]
    crop = Image.fromarray(analyzer.align(frontal.pixels, frontal.face, config.crop_size), "RGB")
    return IdentityProfile(
        embedding=profile,
        backend=analyzer.name,
        model_id=analyzer.model_id,
        match_threshold=analyzer.match_threshold,
        photos=(EnrolledPhoto(quality, float(np.dot(frontal.embedding, profile))),),
        crops=(crop,),
    )


def follow_challenge(
    yaws: Sequence[float], challenge: Sequence[str], turn_yaw: float, lead: int = 2
) -> None:
    """Raise ``CaptureFailed`` (step ``challenge``) unless the yaws after the first ``lead``
    go past ``turn_yaw`` from those first ones' (the frontal yaw) to each side of
    ``challenge``, in its order. Frames between the turns (turning, back to the middle,
    late) are passed over."""
    base = float(np.median(yaws[:lead]))
    want = iter(enumerate(challenge))
    index, side = next(want)
    for value in yaws[lead:]:
        offset = value - base
        if (offset >= turn_yaw) if side == "left" else (offset <= -turn_yaw):
            step = next(want, None)
            if step is None:
                return
            index, side = step
    spread = f"yaw {min(yaws) - base:+.2f} to {max(yaws) - base:+.2f} from the first frames'"
    raise CaptureFailed(
        f"turn {index + 1} of the challenge ({describe(challenge)}) was not seen: the head "
        f"did not turn {side} by {turn_yaw} after the turns before it ({spread})",
        step="challenge",
    )


def _frame(
    data: bytes,
    index: int,
    analyzer: FaceAnalyzer,
    config: EnrollmentConfig,
    capture: CaptureConfig,
) -> Frame:
    try:
        pixels = load_photo(data, config.limits).array()
    except IdentityError as exc:
        raise CaptureFailed(
            f"frame {index + 1}: {exc.message}", step="frames", photo=index
        ) from None
    scale = capture.max_side / max(pixels.shape[:2])
    if scale < 1:
        size = (round(pixels.shape[1] * scale), round(pixels.shape[0] * scale))
        pixels = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR))
    try:
        face, detected = select_face(analyzer.detect(pixels), analyzer, config.thresholds)
    except IdentityError as exc:
        raise CaptureFailed(f"frame {index + 1}: {exc.message}", step="face", photo=index) from None
    return Frame(pixels, face, detected, yaw(face), analyzer.embed(pixels, face))
