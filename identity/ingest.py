"""Photo ingestion: bytes in, a clean RGB image out, or a clear refusal.

Order matters for safety: the byte limit is checked before anything is parsed,
the format is sniffed from magic bytes (never a file name or content type), and
the pixel limit is checked from the header before any pixel is decoded, so a
decompression bomb costs a header read. EXIF orientation is applied and then
every piece of metadata (EXIF, GPS, ICC, XMP, text chunks) is dropped: the
returned image is rebuilt from pixels alone.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, ImageOps

from identity.errors import ImageTooLarge, ImageTooSmall, InvalidImage, UnsupportedFormat

# Pillow would otherwise hand back a half-grey image for a truncated file.
ImageFile.LOAD_TRUNCATED_IMAGES = False

FORMATS = ("JPEG", "PNG", "WEBP")


@dataclass(frozen=True)
class IngestLimits:
    max_bytes: int = 10 * 1024 * 1024  # 10 MiB per photo
    max_pixels: int = 25_000_000  # 25 megapixels, checked from the header
    min_side: int = 256  # shortest side for enrollment photos, in pixels


@dataclass(frozen=True)
class Photo:
    """A decoded photo with no metadata left. ``image`` is RGB, upright."""

    image: Image.Image
    format: str  # "JPEG" | "PNG" | "WEBP", as sniffed from the bytes
    source_mode: str  # Pillow mode before conversion, e.g. "CMYK", "P", "I;16"

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size

    def array(self) -> np.ndarray:
        """[H, W, 3] uint8 RGB."""
        return np.asarray(self.image, dtype=np.uint8)


def sniff_format(data: bytes) -> str | None:
    """The image format from its magic bytes, or None when it is not one we accept."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def load_photo(
    data: bytes, limits: IngestLimits | None = None, *, enrollment: bool = True
) -> Photo:
    """Decode ``data`` into an upright RGB photo without metadata.

    Raises ``ImageTooLarge``, ``UnsupportedFormat``, ``InvalidImage`` and, for
    enrollment photos, ``ImageTooSmall``.
    """
    limits = limits or IngestLimits()
    if len(data) > limits.max_bytes:
        raise ImageTooLarge(
            f"the file is {len(data):,} bytes; the limit is {limits.max_bytes:,} bytes"
        )
    if not data:
        raise InvalidImage("the file is empty")
    fmt = sniff_format(data)
    if fmt is None:
        raise UnsupportedFormat("only JPEG, PNG and WebP images are accepted")

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=[fmt])
            width, height = img.size  # header only: no pixels decoded yet
            if width * height > limits.max_pixels:
                raise ImageTooLarge(
                    f"the image is {width}x{height} ({width * height / 1e6:.1f} megapixels); "
                    f"the limit is {limits.max_pixels / 1e6:.1f} megapixels"
                )
            img.load()
            upright = ImageOps.exif_transpose(img)
            source_mode = upright.mode
            rgb = _to_rgb(upright)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge(
            "the image is too large to decode safely; the limit is "
            f"{limits.max_pixels / 1e6:.1f} megapixels"
        ) from None
    except ImageTooLarge:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, Image.UnidentifiedImageError) as exc:
        raise InvalidImage(f"the {fmt} file is truncated or corrupt ({exc})") from None

    if enrollment and min(rgb.size) < limits.min_side:
        raise ImageTooSmall(
            f"the image is {rgb.size[0]}x{rgb.size[1]}; enrollment photos need a shortest side "
            f"of at least {limits.min_side} px"
        )
    return Photo(image=rgb, format=fmt, source_mode=source_mode)


def _to_rgb(img: Image.Image) -> Image.Image:
    """A fresh RGB image built from pixels only, so no metadata survives."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: scale to 8 bits (convert("L") would clip to 255).
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if arr.max() > 255 else 255.0
        grey = np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(np.stack([grey] * 3, axis=-1), "RGB")
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        span = float(arr.max() - arr.min()) or 1.0
        grey = ((arr - arr.min()) / span * 255.0 + 0.5).astype(np.uint8)
        return Image.fromarray(np.stack([grey] * 3, axis=-1), "RGB")
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        canvas.alpha_composite(rgba)
        img = canvas
    # Pixels only, pasted into a new image whose info is empty: no EXIF, ICC,
    # XMP or text chunk survives (a numpy round trip did the same, 20x slower).
    clean = Image.new("RGB", img.size)
    clean.paste(img.convert("RGB"))
    return clean
