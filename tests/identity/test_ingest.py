from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from identity.errors import ImageTooLarge, ImageTooSmall, InvalidImage, UnsupportedFormat
from identity.ingest import IngestLimits, load_photo, sniff_format
from tests.photos import astronaut, astronaut_image, encode


def gradient(mode: str = "RGB", size: tuple[int, int] = (300, 260)) -> Image.Image:
    w, h = size
    arr = np.zeros((h, w, 3), dtype=np.uint8)
    arr[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    arr[..., 1] = np.linspace(0, 255, h, dtype=np.uint8)[:, None]
    arr[..., 2] = 128
    img = Image.fromarray(arr).convert(mode)
    if "A" in mode:
        img.putalpha(200)  # a real alpha channel, so encoders keep it
    return img


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_accepts_the_three_formats_by_their_bytes(fmt):
    photo = load_photo(encode(gradient(), fmt))
    assert photo.format == fmt
    assert photo.image.mode == "RGB"
    assert photo.size == (300, 260)


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_refuses_other_image_formats(fmt):
    with pytest.raises(UnsupportedFormat) as err:
        load_photo(encode(gradient(), fmt))
    assert err.value.code == "unsupported_format"


def test_format_comes_from_bytes_not_names():
    png = encode(gradient(), "PNG")
    assert sniff_format(png) == "PNG"
    assert sniff_format(b"GIF89a" + png) is None
    assert sniff_format(b"<html><body>a.jpg</body></html>") is None


def test_byte_limit_is_checked_before_parsing():
    with pytest.raises(ImageTooLarge) as err:
        load_photo(b"\xff\xd8\xff" + b"\0" * 2000, IngestLimits(max_bytes=1000))
    assert err.value.code == "image_too_large"


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but carries almost no data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_from_the_header():
    bomb = _png_header_only(60_000, 60_000)  # 3.6 gigapixels in a few hundred bytes
    assert len(bomb) < 1000
    with pytest.raises(ImageTooLarge) as err:
        load_photo(bomb)
    assert "megapixels" in err.value.message


def test_pixel_limit_is_a_setting():
    with pytest.raises(ImageTooLarge):
        load_photo(encode(gradient(), "PNG"), IngestLimits(max_pixels=300 * 259))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_truncated_files_are_invalid_not_half_grey(fmt):
    data = encode(astronaut_image(), fmt)
    with pytest.raises(InvalidImage) as err:
        load_photo(data[: len(data) // 2])
    assert err.value.code == "invalid_image"


def test_garbage_after_a_valid_magic_is_invalid():
    with pytest.raises(InvalidImage):
        load_photo(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10)


def test_empty_file_is_invalid():
    with pytest.raises(InvalidImage):
        load_photo(b"")


def test_small_images_are_refused_for_enrollment_only():
    data = encode(gradient(size=(300, 200)), "PNG")
    with pytest.raises(ImageTooSmall) as err:
        load_photo(data)
    assert "256" in err.value.message
    assert load_photo(data, enrollment=False).size == (300, 200)


def _with_exif(orientation: int, gps: bool = True) -> bytes:
    img = gradient(size=(400, 300))
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    exif[0x010F] = "PhoneMaker"  # Make
    if gps:
        exif[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)}  # GPSInfo
    return encode(img, "JPEG", exif=exif.tobytes(), quality=95)


def test_exif_orientation_is_applied():
    photo = load_photo(_with_exif(orientation=6))  # rotate 90 degrees clockwise for display
    assert photo.size == (300, 400)
    # The top-left corner of the stored image (black-ish in red and green)
    # ends up at the top-right after a clockwise turn.
    arr = photo.array()
    assert arr[0, -1, 0] < 40 and arr[0, -1, 1] < 40


def test_all_metadata_is_dropped():
    photo = load_photo(_with_exif(orientation=1, gps=True))
    assert not photo.image.info
    assert not photo.image.getexif()
    # Re-encoding what we kept carries no GPS, no maker.
    kept = encode(photo.image, "JPEG")
    assert b"PhoneMaker" not in kept
    assert not Image.open(io.BytesIO(kept)).getexif()


def test_png_text_and_icc_are_dropped():
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "home address: 1 Main St")
    data = encode(gradient(), "PNG", pnginfo=info, icc_profile=b"fake-icc" * 10)
    photo = load_photo(data)
    assert not photo.image.info
    assert b"Main St" not in encode(photo.image, "PNG")


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [
        ("CMYK", "JPEG"),
        ("P", "PNG"),
        ("L", "PNG"),
        ("RGBA", "PNG"),
        ("LA", "PNG"),
        ("RGBA", "WEBP"),
    ],
)
def test_modes_become_rgb(mode, fmt):
    photo = load_photo(encode(gradient(mode), fmt))
    assert photo.image.mode == "RGB"
    assert photo.source_mode == mode


def test_transparent_pixels_become_white():
    rgba = Image.new("RGBA", (300, 300), (255, 0, 0, 0))
    photo = load_photo(encode(rgba, "PNG"))
    assert tuple(photo.array()[10, 10]) == (255, 255, 255)


def test_sixteen_bit_greyscale_keeps_its_range():
    arr = np.tile(np.linspace(0, 65535, 300, dtype=np.uint16), (280, 1))
    img = Image.fromarray(arr)
    assert img.mode == "I;16"
    photo = load_photo(encode(img, "PNG"))
    out = photo.array()[..., 0]
    assert out[0, 0] == 0 and out[0, -1] == 255
    assert 120 < out[0, 150] < 135  # mid-grey stays mid-grey instead of clipping to white


def test_real_portrait_round_trips(tmp_path):
    photo = load_photo(astronaut())
    assert photo.size == (512, 512)
    assert photo.array().shape == (512, 512, 3)
