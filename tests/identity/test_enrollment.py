"""Enrollment on real photos with the real dlib models (acceptance of issue 2)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from identity.enrollment import (
    EnrollmentConfig,
    StoredProfile,
    embed_largest_face,
    enroll,
    extend,
    match_stored,
    similarity,
)
from identity.errors import (
    FaceTooSmall,
    IdentityMismatch,
    InvalidImage,
    LowQuality,
    MultipleFaces,
    NoFace,
    NotSameFace,
    TooManyPhotos,
)
from tests.photos import (
    astronaut,
    astronaut_image,
    astronaut_reframed,
    encode,
    group,
    hopper,
    no_face,
)


def test_single_portrait_enrolls(dlib_analyzer):
    profile = enroll([astronaut()], dlib_analyzer)
    assert profile.embedding.shape == (128,)
    assert profile.embedding.dtype == np.float32
    assert np.linalg.norm(profile.embedding) == pytest.approx(1.0, abs=1e-5)
    assert profile.backend == "dlib"
    assert profile.model_id == "dlib_face_recognition_resnet_model_v1"
    (photo,) = profile.photos
    assert photo.quality.faces_detected == 1  # the 0.12 "face" on the suit is not counted
    assert 80 <= photo.quality.face_px <= 100
    assert profile.crops[0].size == (224, 224)


def test_summary_has_no_biometric_data(dlib_analyzer):
    summary = enroll([hopper()], dlib_analyzer).summary()
    assert summary["faces_found"] == 1 and summary["embedding_dim"] == 128
    flat = repr(summary)
    assert "embedding" not in flat.replace("embedding_dim", "")
    assert summary["warnings"] == []  # words for the user, never numbers
    assert all(
        not isinstance(v, list | np.ndarray) or k in ("photos", "warnings")
        for k, v in summary.items()
    )


def test_two_photos_of_the_same_person_enroll_together(dlib_analyzer):
    profile = enroll([astronaut(), astronaut_reframed()], dlib_analyzer)
    assert len(profile.photos) == 2
    assert all(p.similarity > 0.95 for p in profile.photos)


def test_different_people_are_refused(dlib_analyzer):
    with pytest.raises(IdentityMismatch) as err:
        enroll([astronaut(), hopper()], dlib_analyzer)
    assert err.value.code == "identity_mismatch"
    assert "photos 1 and 2" in err.value.message


def test_group_photo_is_refused(dlib_analyzer):
    with pytest.raises(MultipleFaces) as err:
        enroll([group()], dlib_analyzer)
    assert err.value.code == "multiple_faces"


def test_photo_without_a_face_is_refused(dlib_analyzer):
    with pytest.raises(NoFace):
        enroll([no_face()], dlib_analyzer)


def test_the_failing_photo_is_named(dlib_analyzer):
    with pytest.raises(NoFace) as err:
        enroll([astronaut(), no_face()], dlib_analyzer)
    assert err.value.photo == 1
    assert err.value.message.startswith("photo 2:")


def test_blurry_face_is_low_quality(dlib_analyzer):
    blurry = astronaut_image().filter(ImageFilter.GaussianBlur(2))
    with pytest.raises(LowQuality) as err:
        enroll([encode(blurry)], dlib_analyzer)
    assert "blurry" in err.value.message


def test_dark_face_is_low_quality(dlib_analyzer):
    dark = astronaut_image().point(lambda v: v // 6)
    with pytest.raises(LowQuality) as err:
        enroll([encode(dark)], dlib_analyzer)
    assert "dark" in err.value.message


def test_small_face_in_a_large_photo_is_too_small(dlib_analyzer):
    canvas = Image.new("RGB", (700, 700), (90, 110, 130))
    canvas.paste(astronaut_image().resize((340, 340)), (180, 180))  # face about 60 px
    with pytest.raises(FaceTooSmall):
        enroll([encode(canvas)], dlib_analyzer)


def test_at_most_five_photos(dlib_analyzer):
    with pytest.raises(TooManyPhotos):
        enroll([astronaut()] * 6, dlib_analyzer)
    with pytest.raises(InvalidImage):
        enroll([], dlib_analyzer)


def test_max_photos_is_configurable(dlib_analyzer):
    with pytest.raises(TooManyPhotos):
        enroll([astronaut()] * 2, dlib_analyzer, EnrollmentConfig(max_photos=1))


def test_similarity_verifies_and_rejects(dlib_analyzer):
    a = enroll([astronaut()], dlib_analyzer).embedding
    b = enroll([astronaut_reframed()], dlib_analyzer).embedding
    c = enroll([hopper()], dlib_analyzer).embedding
    assert similarity(a, b) >= dlib_analyzer.match_threshold
    assert similarity(a, c) < dlib_analyzer.match_threshold
    assert similarity(a, a) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError):
        similarity(a, np.ones(512))


def test_embed_largest_face_scores_images_without_gates(dlib_analyzer):
    pixels = np.asarray(astronaut_image())
    embedding = embed_largest_face(pixels, dlib_analyzer)
    assert embedding is not None and embedding.shape == (128,)
    noise = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    assert embed_largest_face(noise, dlib_analyzer) is None


def stored(profile) -> StoredProfile:
    """What an identity row keeps of ``profile``."""
    return StoredProfile(profile.embedding, len(profile.photos), profile.mean_length)


def test_photos_added_later_make_the_profile_of_all_enrolled_together(dlib_analyzer):
    larger = encode(astronaut_image().resize((640, 640), Image.Resampling.LANCZOS))
    together = enroll([astronaut(), astronaut_reframed(), larger], dlib_analyzer)
    for first, later in (
        ([astronaut()], [astronaut_reframed(), larger]),
        ([astronaut(), astronaut_reframed()], [larger]),
    ):
        base, added = enroll(first, dlib_analyzer), enroll(later, dlib_analyzer)
        assert base.mean_length < 1.0  # the length restores the stored photos' weight
        assert all(s >= 0.91 for s in match_stored(stored(base), added, 0.91))
        merged = extend(stored(base), added)
        np.testing.assert_allclose(merged.embedding, together.embedding, atol=1e-6)
        assert merged.mean_length == pytest.approx(together.mean_length, abs=1e-6)
        assert [p.similarity for p in merged.photos] == pytest.approx(
            [p.similarity for p in together.photos[len(first) :]], abs=1e-6
        )


def test_a_photo_of_someone_else_is_not_added(dlib_analyzer):
    base = enroll([astronaut()], dlib_analyzer)
    with pytest.raises(NotSameFace) as err:
        match_stored(stored(base), enroll([hopper()], dlib_analyzer), 0.91)
    assert err.value.code == "not_same_face" and err.value.photo == 0
    assert "not the face this identity holds" in err.value.message
