"""mark() and verify(): metadata, C2PA, the visible label; what check_and_mark() lets through."""

from __future__ import annotations

import base64
import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.procedural import procedural_image
from identity.errors import UnsupportedFormat
from imagine.errors import ImagineError
from imagine.outputs import check_and_mark
from imagine.provenance import (
    TRAINED_ALGORITHMIC_MEDIA,
    C2paMisconfigured,
    ProvenanceConfig,
    mark,
    signing_status,
    signing_warnings,
    verify,
    watermark_id,
)
from imagine.safety import NoSafetyChecker, SafetyResult, UnsafeOutput
from tests.photos import astronaut, encode

KEY = bytes(range(32))  # a watermark key for these tests
MARKS = ProvenanceConfig(watermark_key=KEY)

GENERATION = "gen-7f3a-alice@example.com"  # ids may embed anything: none of it may leak


@pytest.fixture(scope="module")
def scene() -> Image.Image:
    return procedural_image(21, (320, 256))


@pytest.fixture
def signing(c2pa_chain) -> ProvenanceConfig:
    return ProvenanceConfig(watermark_key=KEY, c2pa_cert=c2pa_chain.chain, c2pa_key=c2pa_chain.key)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_marked_images_verify_in_every_format(scene, fmt):
    marked = mark(scene, GENERATION, MARKS, fmt)
    assert Image.open(io.BytesIO(marked.data)).format == fmt
    findings = verify(marked.data, MARKS)
    assert findings.marked and findings.ai_generated
    assert findings.headline() == "marked as AI-generated"
    assert findings.format == fmt
    assert findings.matches(watermark_id(GENERATION))
    assert findings.digital_source_type == TRAINED_ALGORITHMIC_MEDIA
    assert findings.generator == "Imagine Me 0.1.0"
    assert not findings.c2pa.present  # no key configured


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_metadata_names_the_generator_and_no_person(scene, fmt):
    marked = mark(scene, GENERATION, MARKS, fmt)
    image = Image.open(io.BytesIO(marked.data))
    xmp = image.info.get("xmp")
    assert xmp and TRAINED_ALGORITHMIC_MEDIA.encode() in xmp
    assert b"Iptc4xmpExt:DigitalSourceType" in xmp and b"Imagine Me" in xmp
    for private in (GENERATION, "alice", watermark_id(GENERATION)):
        assert private.encode() not in marked.data
    assert not image.getexif()  # no EXIF (no camera, time or GPS)
    if fmt == "PNG":
        assert set(image.info) <= {"xmp", "XML:com.adobe.xmp"}


def test_unmarked_photo_reports_no_marks():
    findings = verify(astronaut(), MARKS)
    assert not findings.marked and not findings.ai_generated
    assert findings.headline() == "no marks found"
    assert findings.to_dict()["summary"] == "no marks found"


def test_metadata_alone_is_reported_even_when_pixels_lost_the_watermark(scene):
    marked = mark(scene, GENERATION, MARKS, "JPEG")
    xmp = Image.open(io.BytesIO(marked.data)).info["xmp"]
    other = encode(procedural_image(5, (256, 256)), "JPEG", xmp=xmp)
    findings = verify(other, MARKS)
    assert not findings.watermark.found
    assert findings.marked and findings.ai_generated


def test_verify_refuses_what_is_not_an_image():
    with pytest.raises(UnsupportedFormat):
        verify(b"GIF89a not ours", MARKS)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_c2pa_manifest_is_signed_and_valid(scene, signing, fmt):
    marked = mark(scene, GENERATION, signing, fmt)
    assert marked.c2pa_signed
    c2pa = verify(marked.data, MARKS).c2pa
    assert c2pa.present and c2pa.valid and not c2pa.trusted
    assert c2pa.failures == ("signingCredential.untrusted",)  # test CA not configured
    assert c2pa.actions == ("c2pa.created", "c2pa.watermarked")
    assert c2pa.digital_source_type == TRAINED_ALGORITHMIC_MEDIA
    # The watermark's payload as a soft binding: a stripped copy can be matched back.
    assert c2pa.soft_binding == f"com.imagine-me.tiled-ss-v2:{watermark_id(GENERATION)}"
    assert c2pa.ingredients == ()
    assert c2pa.claim_generator == "Imagine Me 0.1.0"
    assert c2pa.signer == "Imagine Me tests"
    assert verify(marked.data, signing).matches(watermark_id(GENERATION))


def test_c2pa_trusted_when_the_root_is_a_trust_anchor(scene, signing, c2pa_chain):
    marked = mark(scene, GENERATION, signing, "PNG")
    findings = verify(
        marked.data, ProvenanceConfig(watermark_key=KEY, c2pa_trust_anchors=c2pa_chain.root)
    )
    assert findings.c2pa.state == "Trusted" and findings.c2pa.trusted
    assert "valid, trusted signer" in findings.describe()[-1]


def test_c2pa_detects_edited_pixels(scene, signing):
    data = bytearray(mark(scene, GENERATION, signing, "JPEG").data)
    sos = data.rindex(b"\xff\xda")  # start of scan: entropy-coded pixels follow
    data[sos + 200] ^= 0x10
    findings = verify(bytes(data), MARKS)
    assert findings.c2pa.present and not findings.c2pa.valid
    assert findings.c2pa.state == "Invalid"
    assert any("mismatch" in f for f in findings.c2pa.failures)
    # Issue 21 point 7: tampering leads the headline, before any other claim.
    assert findings.status == "invalid"
    assert findings.headline().startswith("TAMPERED OR INVALID: the C2PA manifest")
    assert findings.to_dict()["summary"] == findings.headline()


def test_signing_status_for_readiness(signing, tmp_path):
    assert signing_status(MARKS).startswith("off: ")
    assert signing_status(signing) == "on"
    broken = replace(signing, c2pa_key=tmp_path / "missing.key")
    with pytest.raises(C2paMisconfigured) as err:
        signing_status(broken)
    assert err.value.code == "c2pa_misconfigured"


def test_signing_with_the_wrong_key_fails_loudly(scene, signing, c2pa_chain):
    wrong = replace(signing, c2pa_key=Path(c2pa_chain.root))  # a certificate, not a key
    with pytest.raises(C2paMisconfigured):
        mark(scene, GENERATION, wrong, "PNG")


def test_visible_label_in_the_corner_and_still_verifies():
    flat = Image.new("RGB", (512, 384), (90, 120, 160))
    plain = np.asarray(Image.open(io.BytesIO(mark(flat, "g", MARKS).data)), float)
    labelled = mark(flat, "g", ProvenanceConfig(watermark_key=KEY, label=True))
    assert labelled.label
    pixels = np.asarray(Image.open(io.BytesIO(labelled.data)), float)
    changed = np.abs(pixels - plain).max(axis=-1) > 40  # text and box, not the watermark
    ys, xs = np.nonzero(changed)
    assert len(ys) > 200
    assert xs.min() > 512 / 2 and ys.min() > 384 * 3 / 4  # bottom-right corner only
    assert verify(labelled.data, MARKS).matches(watermark_id("g"))


def test_visible_label_fits_on_a_tiny_image():
    tiny = mark(
        Image.new("RGB", (64, 64), (200, 200, 200)),
        "g",
        ProvenanceConfig(watermark_key=KEY, label=True),
    )
    dark = np.asarray(Image.open(io.BytesIO(tiny.data))).max(axis=-1) < 120  # the label's box
    ys, xs = np.nonzero(dark)
    assert len(xs) > 50 and xs.min() > 0 and ys.min() > 32  # inside, bottom half


class FlagEverything:
    """A checker that refuses every image, through the SafetyChecker protocol."""

    name = "flag-everything"

    def check(self, image: Image.Image) -> SafetyResult:
        return SafetyResult(self.name, {"TEST_CLASS": 0.99}, ("TEST_CLASS",))


def test_check_and_mark_refuses_unsafe_images_before_any_bytes_exist(scene):
    with pytest.raises(UnsafeOutput) as err:
        check_and_mark(scene, GENERATION, checker=FlagEverything(), provenance=MARKS)
    assert err.value.code == "unsafe_output"
    assert err.value.result.flagged == ("TEST_CLASS",)
    assert "withheld" in err.value.message


def test_check_and_mark_marks_safe_images(scene):
    done = check_and_mark(scene, GENERATION, checker=NoSafetyChecker(), provenance=MARKS)
    assert verify(done.data, MARKS).matches(watermark_id(GENERATION))
    summary = done.summary()
    assert summary["safety"] == {"checker": "none", "safe": True, "flagged": [], "scores": {}}
    assert summary["provenance"]["watermark_id"] == watermark_id(GENERATION)
    assert summary["provenance"]["c2pa_signed"] is False


def test_settings_build_the_provenance_config(c2pa_chain):
    from imagine.settings import Settings

    env = {
        "IMAGINE_C2PA_CERT": str(c2pa_chain.chain),
        "IMAGINE_C2PA_KEY": str(c2pa_chain.key),
        "IMAGINE_VISIBLE_LABEL": "true",
        "IMAGINE_LABEL_TEXT": "Made with AI",
        "IMAGINE_MAX_UPLOAD_BYTES": "1000",
        "IMAGINE_WATERMARK_KEY": base64.b64encode(KEY).decode(),
    }
    config = Settings.from_env(env).provenance()
    assert config.signing and config.label and config.label_text == "Made with AI"
    assert config.c2pa_cert == c2pa_chain.chain and config.limits.max_bytes == 1000
    assert config.watermark_key == KEY and not config.c2pa_local


def test_a_fresh_install_signs_with_a_local_chain_and_its_own_key(scene, tmp_path):
    """Issue 21 points 4 and 5: nothing configured, yet every output carries a C2PA
    manifest that c2pa-python's Reader validates, and a watermark under a key of its own."""
    import c2pa

    from imagine.settings import Settings

    config = Settings.from_env({"IMAGINE_HOME": str(tmp_path / "home")}).provenance()
    key_file = tmp_path / "home" / "watermark.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert config.watermark_key != KEY and len(config.watermark_key) == 32
    assert config.signing and config.c2pa_local
    assert signing_status(config) == "on: local chain, untrusted"
    assert any("IMAGINE_C2PA_CERT" in w for w in signing_warnings(config))
    assert any("IMAGINE_C2PA_TSA_URL" in w for w in signing_warnings(config))
    marked = mark(scene, GENERATION, config, "JPEG")
    assert marked.c2pa_signed
    with c2pa.Reader("image/jpeg", io.BytesIO(marked.data)) as reader:
        assert reader.get_validation_state() == "Valid"  # valid, untrusted root
    again = Settings.from_env({"IMAGINE_HOME": str(tmp_path / "home")}).provenance()
    assert again.watermark_key == config.watermark_key and again.c2pa_cert == config.c2pa_cert
    assert verify(marked.data, again).matches(watermark_id(GENERATION))
    assert not verify(marked.data, MARKS).watermark.found  # another deployment's key


def test_watermark_key_settings_are_checked(tmp_path):
    from imagine.settings import Settings

    for env, words in (
        ({"IMAGINE_WATERMARK_KEY": "not base64!"}, "must be base64"),
        ({"IMAGINE_WATERMARK_KEY": base64.b64encode(b"short").decode()}, "32 bytes"),
        ({"IMAGINE_WATERMARK_KEY_FILE": str(tmp_path / "missing.key")}, "no such file"),
        ({"IMAGINE_C2PA_CERT": str(tmp_path / "c.pem")}, "go together"),
    ):
        with pytest.raises(ImagineError) as err:
            Settings.from_env({"IMAGINE_HOME": str(tmp_path), **env}).provenance()
        assert err.value.code == "invalid_setting" and words in err.value.message
