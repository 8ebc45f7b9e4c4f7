"""The insightface backend through insightface's real ``FaceAnalysis``, on a tiny generated pack.

The pack's detector answers with fixed detections (see ``insightface_pack.py``);
everything after it is real: SCRFD decoding and NMS, ``norm_crop`` alignment,
ONNX Runtime inference, our quality gates and enrollment.
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from identity.analyzer import FaceSettings, get_analyzer
from identity.enrollment import enroll, similarity
from identity.errors import (
    AnalyzerUnavailable,
    FaceTooSmall,
    IdentityMismatch,
    MultipleFaces,
    NoFace,
)
from identity.insightface_backend import InsightFaceAnalyzer, providers_for
from imagine.cli import main
from tests.identity.insightface_pack import ASTRONAUT, write_pack
from tests.photos import astronaut, astronaut_image, encode

PHOTO = (512, 512)  # the astronaut photo the packs are built for
NEIGHBOUR = ASTRONAUT.scaled(1.0, dx=150)  # a second face of the same size beside hers


def analyzer_for(root: Path, pack: str = "tiny", device: str = "cpu") -> InsightFaceAnalyzer:
    return InsightFaceAnalyzer.from_settings(
        FaceSettings(
            backend="insightface", insightface_root=root, insightface_pack=pack, device=device
        )
    )


@pytest.fixture(scope="module")
def one_face(tmp_path_factory) -> InsightFaceAnalyzer:
    return analyzer_for(write_pack(tmp_path_factory.mktemp("one"), [ASTRONAUT], PHOTO))


def same_person_again() -> bytes:
    """Another photo of the astronaut: upscaled to 640 px, brighter, PNG."""
    img = astronaut_image().resize((640, 640), Image.Resampling.BICUBIC)
    return encode(ImageEnhance.Brightness(img).enhance(1.1), "PNG")


def test_portrait_enrolls_with_512d_arcface_embedding(one_face):
    profile = enroll([astronaut()], one_face)
    assert profile.backend == "insightface"
    assert profile.model_id == "tiny/w600k_tiny"
    assert one_face.embedding_dim == 512  # read from the recognition model
    assert profile.embedding.shape == (512,) and profile.embedding.dtype == np.float32
    assert np.linalg.norm(profile.embedding) == pytest.approx(1.0, abs=1e-5)
    (photo,) = profile.photos
    assert photo.quality.faces_detected == 1
    assert photo.quality.detection_score == pytest.approx(0.9)
    assert photo.quality.face_px == 92  # the detector's box, decoded back to photo pixels
    assert abs(photo.quality.yaw) < 0.1 and photo.quality.sharpness > 100
    assert profile.crops[0].size == (224, 224)
    assert not profile.warnings  # found on the photo itself, no padding needed


def test_alignment_levels_the_eyes_on_the_arcface_template(one_face):
    pixels = np.asarray(astronaut_image())
    (face,) = one_face.detect(pixels)
    assert face.left_eye == pytest.approx((204.0, 100.0), abs=0.5)
    assert face.nose == pytest.approx((225.5, 125.5), abs=0.5)
    # Mark the eyes in the photo: they must land on ArcFace's template eye
    # positions (38.3, 51.7) and (73.5, 51.5) in the 112 px crop.
    marked = pixels.copy()
    for x, y in (face.left_eye, face.right_eye):
        marked[round(y) - 1 : round(y) + 2, round(x) - 1 : round(x) + 2] = (255, 0, 255)
    crop = one_face.align(marked, face, 112).astype(int)
    magenta = (crop[:, :, 0] > 200) & (crop[:, :, 1] < 80) & (crop[:, :, 2] > 200)
    ys, xs = np.nonzero(magenta)
    assert len(xs) > 0
    for cx in (38.3, 73.5):
        near = np.abs(xs - cx) < 4
        assert near.any() and np.abs(ys[near] - 51.6).max() < 4
    with pytest.raises(ValueError, match="size=100"):
        one_face.align(pixels, face, 100)


def test_embedding_depends_on_the_face_not_the_background(one_face):
    pixels = np.asarray(astronaut_image())
    (face,) = one_face.detect(pixels)
    reference = one_face.embed(pixels, face)
    background = pixels.copy()
    background[300:, 350:] = 0  # the flag and the space shuttle, far from the face
    assert np.dot(one_face.embed(background, face), reference) == pytest.approx(1.0, abs=1e-5)
    covered = pixels.copy()
    covered[95:150, 195:255] = 0  # eyes, nose and mouth under a black patch
    assert np.dot(one_face.embed(covered, face), reference) < 0.9


def test_two_photos_of_the_same_person_enroll_together(one_face):
    profile = enroll([astronaut(), same_person_again()], one_face)
    assert len(profile.photos) == 2
    assert all(p.similarity >= one_face.match_threshold for p in profile.photos)
    assert profile.photos[1].quality.face_px == 115  # the same face, 640/512 larger


def test_faces_that_do_not_match_are_refused(one_face):
    # The tiny recognizer follows pixel correlation: inverted colours score about -1.
    inverted = encode(ImageOps.invert(astronaut_image()))
    a = enroll([astronaut()], one_face).embedding
    b = enroll([inverted], one_face).embedding
    assert similarity(a, b) < one_face.match_threshold
    with pytest.raises(IdentityMismatch) as err:
        enroll([astronaut(), inverted], one_face)
    assert "threshold 0.3" in err.value.message


@pytest.mark.parametrize(
    ("others", "error", "detected"),
    [
        ([NEIGHBOUR], MultipleFaces, None),
        # a small background face and a low-score false positive are not a second person
        ([ASTRONAUT.scaled(0.4, dx=300, dy=250)], None, 2),
        ([dataclasses.replace(NEIGHBOUR, score=0.3)], None, 1),
    ],
    ids=["second-person", "small-background-face", "low-score"],
)
def test_second_faces(tmp_path, others, error, detected):
    analyzer = analyzer_for(write_pack(tmp_path, [ASTRONAUT, *others], PHOTO))
    if error is not None:
        with pytest.raises(error):
            enroll([astronaut()], analyzer)
    else:
        (photo,) = enroll([astronaut()], analyzer).photos
        assert photo.quality.faces_detected == detected and photo.quality.face_px == 92


def test_no_face_and_small_face(tmp_path):
    with pytest.raises(NoFace):
        enroll([astronaut()], analyzer_for(write_pack(tmp_path / "none", [], PHOTO)))
    small = analyzer_for(write_pack(tmp_path / "small", [ASTRONAUT.scaled(0.6)], PHOTO))
    with pytest.raises(FaceTooSmall):
        enroll([astronaut()], small)


def test_cli_enrolls_with_the_insightface_backend(capsys, tmp_path):
    root = write_pack(tmp_path / "home", [ASTRONAUT], PHOTO, pack="buffalo_tiny")
    photo = tmp_path / "me.jpg"
    photo.write_bytes(astronaut())
    env = {"IMAGINE_INSIGHTFACE_ROOT": str(root), "IMAGINE_INSIGHTFACE_PACK": "buffalo_tiny"}
    code = main(["enroll", str(photo), "--backend", "insightface", "--json"], environ=env)
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert result["backend"] == "insightface" and result["embedding_dim"] == 512
    assert result["model_id"] == "buffalo_tiny/w600k_tiny" and result["match_threshold"] == 0.3


def test_cli_without_a_pack_is_a_clear_user_error(capsys, tmp_path):
    photo = tmp_path / "me.jpg"
    photo.write_bytes(astronaut())
    code = main(["enroll", str(photo), "--backend", "insightface"], environ={})
    _, err = capsys.readouterr()
    assert code == 2
    assert err.startswith("error: face_backend_unavailable: ")
    assert "IMAGINE_INSIGHTFACE_ROOT" in err and "Traceback" not in err


def unavailable(root: Path | None, pack: str = "buffalo_l") -> str:
    before = sorted(root.rglob("*")) if root else []
    with pytest.raises(AnalyzerUnavailable) as err:
        get_analyzer(
            FaceSettings(backend="insightface", insightface_root=root, insightface_pack=pack)
        )
    assert (sorted(root.rglob("*")) if root else []) == before  # nothing created or fetched
    assert err.value.code == "face_backend_unavailable"
    return err.value.message


def test_missing_root_or_pack_names_the_expected_folder(tmp_path):
    assert "IMAGINE_INSIGHTFACE_ROOT" in unavailable(None)
    message = unavailable(tmp_path)
    assert str(tmp_path / "models" / "buffalo_l") in message and "det_10g.onnx" in message
    assert "never downloaded" in message


def test_empty_or_broken_pack_folders(tmp_path):
    (tmp_path / "models" / "empty").mkdir(parents=True)
    assert "holds no .onnx files" in unavailable(tmp_path, "empty")
    write_pack(tmp_path, [ASTRONAUT], PHOTO, pack="nodet", detector=False)
    assert "no face detector among ['w600k_tiny.onnx']" in unavailable(tmp_path, "nodet")
    write_pack(tmp_path, [ASTRONAUT], PHOTO, pack="norec", recognizer=False)
    assert "no ArcFace recognition model" in unavailable(tmp_path, "norec")
    write_pack(tmp_path, [ASTRONAUT], PHOTO, pack="nokps", keypoints=False)
    assert "no 5-point keypoints" in unavailable(tmp_path, "nokps")
    write_pack(tmp_path, [ASTRONAUT], PHOTO, pack="antelopev2/antelopev2")  # unzipped in place
    assert "move them up one level" in unavailable(tmp_path, "antelopev2")
    (tmp_path / "models" / "corrupt").mkdir()
    (tmp_path / "models" / "corrupt" / "det_10g.onnx").write_bytes(b"not a model")
    assert "could not load" in unavailable(tmp_path, "corrupt")


def test_execution_providers():
    assert providers_for("cpu") == ["CPUExecutionProvider"]
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        assert providers_for("auto")[0] == "CUDAExecutionProvider"
    else:
        assert providers_for("auto") == ["CPUExecutionProvider"]
        with pytest.raises(AnalyzerUnavailable, match="onnxruntime-gpu"):
            providers_for("cuda")
    with pytest.raises(AnalyzerUnavailable, match="'tpu'"):
        providers_for("tpu")


def tight_crop() -> tuple[bytes, tuple[int, int], int]:
    """The astronaut's face box alone, enlarged 3x (276x306): a face that fills the frame.
    Returns the JPEG, its size, and the margin ``detect`` pads it with."""
    x0, y0, x1, y1 = (int(v) for v in ASTRONAUT.box)
    crop = astronaut_image().crop((x0, y0, x1, y1))
    crop = crop.resize((crop.width * 3, crop.height * 3), Image.Resampling.BICUBIC)
    margin = round(InsightFaceAnalyzer.pad_ratio * max(crop.size))
    return encode(crop, quality=95), crop.size, margin


def test_a_face_that_fills_the_frame_is_found_on_a_padded_copy(tmp_path):
    """The pack's detector, like SCRFD on a face larger than its anchors, finds the face only
    when the photo has a black margin; it is built for the padded copy's geometry."""
    data, (width, height), margin = tight_crop()
    x0, y0 = ASTRONAUT.box[:2]
    in_crop = ASTRONAUT.scaled(3.0, dx=-3 * x0, dy=-3 * y0)  # the face in the crop's pixels
    padded_size = (width + 2 * margin, height + 2 * margin)
    root = write_pack(
        tmp_path, [in_crop.scaled(1.0, dx=margin, dy=margin)], padded_size, needs_margin=True
    )
    analyzer = analyzer_for(root)
    profile = enroll([data], analyzer)
    (warning,) = profile.warnings
    assert warning.startswith("photo 1: the face fills the frame") and "padded" in warning
    assert profile.summary()["warnings"] == [warning]
    # The face is reported in the photo's own pixels, not the padded copy's.
    (face,) = analyzer.detect(np.asarray(Image.open(io.BytesIO(data))))
    assert face.padded
    assert face.left_eye == pytest.approx(in_crop.kps[0], abs=2.0)
    assert face.nose == pytest.approx(in_crop.kps[2], abs=2.0)
    assert profile.photos[0].quality.face_px == pytest.approx(min(width, height), abs=3)
    # And its embedding is the same person as the face in the whole photo.
    whole = enroll([astronaut()], analyzer_for(write_pack(tmp_path / "w", [ASTRONAUT], PHOTO)))
    assert not whole.warnings
    assert similarity(profile.embedding, whole.embedding) >= analyzer.match_threshold
