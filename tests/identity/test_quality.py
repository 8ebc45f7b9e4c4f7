"""The gates on hand-made detections: what counts as a face, a second face, a bad pose."""

from __future__ import annotations

import numpy as np
import pytest

from identity.analyzer import DetectedFace
from identity.errors import FaceTooSmall, LowQuality, MultipleFaces, NoFace
from identity.quality import FaceQuality, QualityThresholds, check, measure, select_face


class Backend:
    name, model_id, embedding_dim = "fake", "fake-v1", 8
    min_detection_score, match_threshold = 0.5, 0.9


def face(x: float, y: float, size: float, score: float = 1.0, yaw: float = 0.0) -> DetectedFace:
    eye_y, half = y + size * 0.4, size * 0.2
    cx = x + size / 2
    return DetectedFace(
        box=(x, y, x + size, y + size),
        score=score,
        left_eye=(cx - half, eye_y),
        right_eye=(cx + half, eye_y),
        nose=(cx + yaw * 2 * half, y + size * 0.65),
        landmarks=np.zeros((5, 2), np.float32),
    )


T = QualityThresholds()


def test_low_score_detections_are_not_faces():
    with pytest.raises(NoFace):
        select_face([face(10, 10, 200, score=0.2)], Backend(), T)
    main, count = select_face([face(10, 10, 200), face(300, 10, 190, score=0.12)], Backend(), T)
    assert main.box[0] == 10 and count == 1


def test_small_background_faces_do_not_count():
    main, count = select_face([face(10, 10, 200), face(400, 40, 60, score=2.0)], Backend(), T)
    assert main.size == 200 and count == 2


def test_a_second_face_of_similar_size_is_refused():
    with pytest.raises(MultipleFaces) as err:
        select_face([face(10, 10, 200), face(300, 10, 150)], Backend(), T)
    assert "2 faces" in err.value.message


def test_largest_face_must_be_big_enough():
    with pytest.raises(FaceTooSmall):
        select_face([face(10, 10, 60)], Backend(), T)


def quality(**changes) -> FaceQuality:
    base = dict(
        face_px=200,
        detection_score=1.0,
        faces_detected=1,
        sharpness=300.0,
        yaw=0.0,
        brightness=120.0,
        visible=1.0,
    )
    return FaceQuality(**{**base, **changes})


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"yaw": 0.5}, "turned"),
        ({"yaw": -0.5}, "turned"),
        ({"brightness": 10.0}, "dark"),
        ({"brightness": 250.0}, "overexposed"),
        ({"sharpness": 5.0}, "blurry"),
        ({"visible": 0.6}, "cut off"),
    ],
)
def test_each_quality_criterion_has_its_message(change, words):
    with pytest.raises(LowQuality) as err:
        check(quality(**change), T)
    assert words in err.value.message
    assert err.value.code == "low_quality"


def test_good_quality_passes():
    check(quality(), T)


def test_measure_reads_pose_and_edges():
    image = np.full((300, 300, 3), 128, np.uint8)
    crop = np.random.default_rng(1).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    turned = measure(image, face(50, 50, 150, yaw=0.6), crop, 1)
    assert turned.yaw == pytest.approx(0.6, abs=1e-6)
    cut = measure(image, face(200, 50, 200), crop, 1)
    assert cut.visible == pytest.approx(0.5)
    assert measure(image, face(50, 50, 150), crop, 1).sharpness > 1000  # noise is "sharp"
