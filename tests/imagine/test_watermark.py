"""The invisible watermark survives what sharing does to an image; unmarked images stay unmarked."""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.procedural import procedural_image
from imagine.provenance import ProvenanceConfig, WatermarkFailed, mark, verify, watermark_id
from imagine.provenance import watermark as wm
from tests.photos import astronaut_image, encode, group, hopper


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    return Image.open(io.BytesIO(encode(image, "JPEG", quality=quality)))


@pytest.fixture(scope="module")
def marked_1024() -> list[tuple[Image.Image, Image.Image, str]]:
    """(original, marked, watermark id) at the size SDXL produces: a procedural
    scene and a real portrait (scikit-image's astronaut, upscaled)."""
    originals = [
        procedural_image(3),
        astronaut_image().resize((1024, 1024), Image.Resampling.LANCZOS),
    ]
    out = []
    for i, original in enumerate(originals):
        marked = mark(original, f"generation-{i}", ProvenanceConfig())
        out.append((original, Image.open(io.BytesIO(marked.data)), marked.watermark_id))
    return out


@pytest.mark.parametrize(
    "attack",
    [
        pytest.param(lambda im: im, id="untouched"),
        pytest.param(lambda im: jpeg(im, 80), id="jpeg80"),
        pytest.param(lambda im: jpeg(im, 70), id="jpeg70"),
        pytest.param(lambda im: im.resize((512, 512), Image.Resampling.LANCZOS), id="resize50"),
        pytest.param(lambda im: im.crop((37, 61, 37 + 922, 61 + 922)), id="crop10"),
    ],
)
def test_payload_survives_sharing(marked_1024, attack):
    for _, marked, wid in marked_1024:
        found = wm.detect(attack(marked))
        assert found.found and found.payload == wid


def test_resize_is_reported_as_a_scale(marked_1024):
    _, marked, wid = marked_1024[0]
    assert wm.detect(marked).scale == 1.0
    assert wm.detect(marked.resize((512, 512))).scale == 0.5
    upscaled = wm.detect(marked.resize((2048, 2048), Image.Resampling.BICUBIC))
    assert upscaled.scale == 2.0 and upscaled.payload == wid


def test_watermark_is_invisible_by_psnr(marked_1024):
    for original, marked, _ in marked_1024:
        diff = np.asarray(marked, np.float32) - np.asarray(original, np.float32)
        psnr = 10 * np.log10(255**2 / np.mean(diff**2))
        assert psnr > 38, psnr
        # Luma only: the same change on R, G and B (up to rounding), so hues do not
        # shift; channels near 0 or 255 clip, so they are left out.
        rgb = np.asarray(original, np.float32)
        inside = ((rgb > 24) & (rgb < 231)).all(axis=-1)
        assert np.abs(diff[..., 0] - diff[..., 1])[inside].max() <= 1


@pytest.mark.parametrize(
    "photo",
    [
        pytest.param(lambda: astronaut_image(), id="astronaut"),
        pytest.param(lambda: Image.open(io.BytesIO(hopper())), id="hopper"),
        pytest.param(lambda: Image.open(io.BytesIO(group())), id="group"),
        pytest.param(lambda: procedural_image(11, (512, 512)), id="procedural"),
        pytest.param(
            lambda: Image.fromarray(np.random.default_rng(5).integers(0, 256, (300, 400, 3), "u1")),
            id="noise",
        ),
    ],
)
def test_unmarked_images_have_no_watermark(photo):
    found = wm.detect(photo())
    assert not found.found and found.payload is None


def test_random_bits_almost_never_pass_the_crc():
    rng = np.random.default_rng(0)
    passed = sum(wm.bits_payload(rng.standard_normal(wm.N_BITS)) is not None for _ in range(20000))
    assert passed == 0  # expected 20000 / 2**32


def test_payload_is_an_id_and_its_crc():
    payload = bytes.fromhex(watermark_id("gen-1"))
    bits = wm.payload_bits(payload)
    assert bits.shape == (96,) and set(np.unique(bits)) == {-1.0, 1.0}
    assert wm.bits_payload(bits) == payload
    flipped = bits.copy()
    flipped[7] *= -1
    assert wm.bits_payload(flipped) is None
    assert zlib.crc32(payload) == int.from_bytes(np.packbits(bits[64:] > 0).tobytes(), "big")


def test_ids_differ_per_generation_and_are_stable():
    assert watermark_id("gen-1") == watermark_id("gen-1")
    assert watermark_id("gen-1") != watermark_id("gen-2")
    assert len(watermark_id("gen-1")) == 16
    with pytest.raises(ValueError):
        watermark_id("")


def test_another_generations_mark_does_not_match(marked_1024):
    _, marked, wid = marked_1024[0]
    assert wm.detect(marked).payload == wid != watermark_id("generation-1")


@pytest.mark.parametrize("size", [(64, 64), (96, 80), (200, 150)])
def test_small_noise_images_still_carry_the_mark(size):
    """Smoke-profile outputs are small and pure noise: mark() raises the strength until
    the payload reads back, so every image it returns verifies."""
    noise = np.random.default_rng(sum(size)).integers(0, 256, (size[1], size[0], 3), "u1")
    marked = mark(Image.fromarray(noise), "smoke", ProvenanceConfig())
    found = wm.detect(Image.open(io.BytesIO(marked.data)))
    assert found.payload == marked.watermark_id == watermark_id("smoke")


def test_too_small_images_are_refused_not_left_unmarked():
    with pytest.raises(WatermarkFailed) as err:
        mark(Image.new("RGB", (63, 200)), "g", ProvenanceConfig())
    assert err.value.code == "watermark_failed"


def test_images_marked_by_this_scheme_keep_verifying():
    """A JPEG marked when tiled-ss-v1 was released: pattern derivation, payload layout
    and detector must keep reading it, or every image already out there stops verifying."""
    golden = Path(__file__).parent / "data" / "marked-tiled-ss-v1.jpg"
    findings = verify(golden.read_bytes(), ProvenanceConfig())
    assert findings.matches(watermark_id("golden-v1"))
    assert findings.watermark.scale == 1.0
