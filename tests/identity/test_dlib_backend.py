"""The dlib backend's own machinery: the ONNX port of dlib's ResNet and the two detection passes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from identity.dlib_backend import MODEL_FILES, DlibFaceAnalyzer, models_folder
from identity.dlib_resnet import UnexpectedModel, read_layers
from identity.enrollment import enroll
from identity.errors import MultipleFaces
from tests.photos import astronaut_image, encode, group, hopper, package_file


def photo_faces(analyzer):
    for data in (encode(astronaut_image()), hopper(), group()):
        pixels = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        for face in analyzer.detect(pixels):
            if face.score >= analyzer.min_detection_score:
                yield pixels, face


def test_onnx_resnet_gives_dlibs_own_descriptors(dlib_analyzer):
    import dlib

    reference = dlib.face_recognition_model_v1(str(models_folder() / MODEL_FILES["embedding"]))
    pairs = list(photo_faces(dlib_analyzer))
    assert len(pairs) >= 6  # two portraits and the group photo's faces
    for pixels, face in pairs[:4]:  # dlib's own ResNet takes 150 ms a face
        expected = np.array(reference.compute_face_descriptor(pixels, face.native))
        expected /= np.linalg.norm(expected)
        got = dlib_analyzer.embed(pixels, face)
        assert float(np.dot(expected, got)) > 1 - 1e-6
        assert np.abs(expected - got).max() < 1e-5


def test_the_resnet_runtime_is_a_choice(dlib_analyzer):
    pixels = np.asarray(astronaut_image())
    face = dlib_analyzer.detect(pixels)[0]
    in_dlib = DlibFaceAnalyzer(resnet="dlib")  # what the benchmark compares against
    assert float(np.dot(in_dlib.embed(pixels, face), dlib_analyzer.embed(pixels, face))) > 1 - 1e-6
    with pytest.raises(ValueError, match="'torch'"):
        DlibFaceAnalyzer(resnet="torch")


def test_another_dlib_model_file_is_refused():
    with pytest.raises(UnexpectedModel, match="shape_predictor"):
        read_layers(models_folder() / MODEL_FILES["landmarks"])


def with_second_face(photo: Image.Image, ratio: float) -> bytes:
    """``photo`` of the astronaut with a copy of her head ``ratio`` times as large
    pasted into its bottom-right corner, over the flag and the shuttle."""
    side = photo.width
    head = photo.crop((int(side * 0.25), int(side * 0.06), int(side * 0.6), int(side * 0.41)))
    small = head.resize((round(head.width * ratio), round(head.height * ratio)))
    canvas = photo.copy()
    canvas.paste(small, (side - small.width - side // 50, side - small.height - side // 50))
    return encode(canvas, quality=95)


def test_a_half_size_face_beside_a_small_face_is_still_found(dlib_analyzer):
    # The astronaut's face is 90 px in 512: only the upsampled pass sees a 50 px one.
    with pytest.raises(MultipleFaces):
        enroll([with_second_face(astronaut_image(), 0.6)], dlib_analyzer)


def test_a_large_face_is_judged_on_the_coarse_pass(dlib_analyzer):
    # 2048 px: her face is 350 px, 175 px in the 1024 px coarse copy, so the
    # coarse pass alone decides, and it must still see a face half that size.
    big = astronaut_image().resize((2048, 2048), Image.Resampling.BICUBIC)
    (photo,) = enroll([encode(big, quality=90)], dlib_analyzer).photos
    assert photo.quality.faces_detected == 1 and photo.quality.face_px > 300
    with pytest.raises(MultipleFaces):
        enroll([with_second_face(big, 0.6)], dlib_analyzer)


def enlarged(image: Image.Image, box: tuple[int, int, int, int] | None = None) -> bytes:
    """``image`` cropped to ``box``, enlarged to at least 256 px (the enrollment minimum)."""
    crop = image.crop(box) if box else image
    k = -(-256 // min(crop.size))
    return encode(crop.resize((crop.width * k, crop.height * k), Image.Resampling.BICUBIC))


@pytest.mark.parametrize("name", ["astronaut", "hopper"])
def test_a_tight_crop_of_a_photo_enrolls_as_the_same_person(dlib_analyzer, name):
    """Cropped to the detector's own face box, the face fills the frame: dlib's HOG
    detector still finds it, without padding, and the embedding stays the person's."""
    photo = astronaut_image() if name == "astronaut" else Image.open(io.BytesIO(hopper()))
    photo = photo.convert("RGB")
    whole = enroll([encode(photo)], dlib_analyzer)
    face = max(dlib_analyzer.detect(np.asarray(photo)), key=lambda f: f.score)
    tight = enroll([enlarged(photo, tuple(int(v) for v in face.box))], dlib_analyzer)
    assert not tight.warnings and tight.photos[0].quality.visible > 0.95
    assert float(tight.embedding @ whole.embedding) >= dlib_analyzer.match_threshold


def test_insightfaces_aligned_sample_face_enrolls(dlib_analyzer):
    """``Tom_Hanks_54745.png`` in the insightface wheel is a 112 px ArcFace-aligned crop:
    a face with no margin at all."""
    hanks = Image.open(package_file("insightface", "data", "images", "Tom_Hanks_54745.png"))
    (photo,) = enroll([enlarged(hanks.convert("RGB"))], dlib_analyzer).photos
    assert photo.quality.faces_detected == 1 and photo.quality.face_px > 200
