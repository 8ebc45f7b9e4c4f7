"""Live capture checks (issue 19): one face, one person, the head turning as challenged."""

from __future__ import annotations

import numpy as np
import pytest

from identity.analyzer import FaceSettings, get_analyzer
from identity.capture import CaptureFailed, check_capture, follow_challenge, new_challenge
from identity.quality import yaw
from tests.capture_frames import PEAK, head_turns, turned
from tests.photos import group, hopper

LEFT, RIGHT = PEAK, -PEAK  # the person's own left: the nose moves to the image's right


@pytest.fixture(scope="module")
def analyzer():
    return get_analyzer(FaceSettings())


def test_the_yaw_estimator_tells_left_from_right_on_the_warped_frames(analyzer):
    def measured(theta: float) -> float:
        [face] = [f for f in analyzer.detect(turned(theta)) if f.score >= 0.5]
        return yaw(face)

    front, left, right = measured(0.0), measured(LEFT), measured(RIGHT)
    assert abs(front) < 0.05
    assert left - front > 0.12 and front - right > 0.12
    assert measured(LEFT / 2) - front > 0.05  # and it grows with the turn


def test_frames_that_follow_the_challenge_make_a_profile(analyzer):
    frames = head_turns([0, 0, LEFT, LEFT, LEFT, RIGHT, RIGHT, RIGHT])
    profile = check_capture(frames, ("left", "right"), analyzer)
    assert profile.embedding.shape == (128,) and profile.backend == "dlib"
    [photo] = profile.photos  # the most frontal frame's quality figures
    assert abs(photo.quality.yaw) < 0.05 and photo.similarity > 0.95


@pytest.mark.parametrize(
    ("thetas", "challenge", "message"),
    [
        ([0, 0, LEFT, LEFT, RIGHT, RIGHT], ("right", "left"), "turn 2 of the challenge"),
        ([0] * 8, ("left", "right"), "turn 1 of the challenge"),
        ([0, 0, LEFT, RIGHT, 0, 0], ("left", "right", "left"), "turn 3"),
    ],
    ids=["wrong-order", "still", "one-turn-short"],
)
def test_a_capture_that_does_not_follow_the_challenge_fails_there(
    analyzer, thetas, challenge, message
):
    with pytest.raises(CaptureFailed) as failed:
        check_capture(head_turns(thetas), challenge, analyzer)
    assert failed.value.step == "challenge" and failed.value.code == "capture_failed"
    assert message in failed.value.message


def test_every_frame_shows_one_face_of_one_person(analyzer):
    frames = head_turns([0, 0, LEFT, RIGHT])
    with pytest.raises(CaptureFailed) as failed:
        check_capture([*frames[:2], group(), *frames[2:]], ("left", "right"), analyzer)
    assert (failed.value.step, failed.value.photo) == ("face", 2)
    assert "frame 3" in failed.value.message
    with pytest.raises(CaptureFailed) as failed:
        check_capture([*frames, hopper()], ("left", "right"), analyzer)
    assert failed.value.step == "same_person" and failed.value.photo == 4
    with pytest.raises(CaptureFailed) as failed:
        check_capture([*frames[:3], b"not an image"], ("left", "right"), analyzer)
    assert (failed.value.step, failed.value.photo) == ("frames", 3)
    with pytest.raises(CaptureFailed) as failed:
        check_capture(frames[:2], ("left", "right"), analyzer)
    assert failed.value.step == "frames" and "4-12" in failed.value.message


def test_a_liveness_check_plugs_in_behind_its_protocol(analyzer):
    class Refuses:
        name = "always-spoof"

        def is_live(self, image: np.ndarray, face) -> bool:
            return False

    with pytest.raises(CaptureFailed) as failed:
        check_capture(
            head_turns([0, LEFT, RIGHT, 0]), ("left", "right"), analyzer, liveness=Refuses()
        )
    assert failed.value.step == "liveness" and "always-spoof" in failed.value.message


def test_challenges_alternate_sides_from_a_random_start():
    seen = {new_challenge(3) for _ in range(64)}
    assert seen == {("left", "right", "left"), ("right", "left", "right")}
    with pytest.raises(ValueError):
        new_challenge(4)


def test_turns_are_measured_from_the_first_frames_looking_at_the_camera():
    follow_challenge([0.3, 0.3, 0.45, 0.15, 0.3], ("left", "right"), 0.1)  # a camera off-axis
    follow_challenge([0, 0, 0.2, -0.2, -0.2, 0, 0.2], ("left", "right", "left"), 0.1)
    with pytest.raises(CaptureFailed):
        follow_challenge([0.0, -0.2, 0.2, 0.0], ("left", "right"), 0.1)  # right, then left
    with pytest.raises(CaptureFailed):
        follow_challenge([0.2, 0.2, 0.2, 0.0], ("left", "right"), 0.1)  # one turn, back
