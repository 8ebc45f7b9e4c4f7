"""``mark``: the one call that makes a generated image recognisable as AI-generated.

In order: the optional visible label, the invisible watermark (payload derived
from the generation id), XMP with the IPTC digital source type, then a signed
C2PA manifest when a key is configured (it must come last: it hashes the file),
which records the watermark too.
The watermark is read back from the encoded bytes before they are returned;
when it does not read, the strength is doubled (up to 16x, for tiny or
noise-like images) and, failing that, nothing is returned.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import asdict, dataclass
from typing import Any

from PIL import Image

from imagine.provenance import c2pa_manifest, metadata, watermark
from imagine.provenance.c2pa_manifest import Edit
from imagine.provenance.config import ProvenanceConfig
from imagine.provenance.errors import WatermarkFailed
from imagine.provenance.label import draw_label

FORMATS = ("PNG", "JPEG", "WEBP")
STRENGTH_STEPS = (1, 2, 4, 8, 16)  # multiples of watermark.STRENGTH tried in turn


@dataclass(frozen=True)
class MarkedImage:
    data: bytes  # the encoded image, ready to store
    format: str  # "PNG" | "JPEG" | "WEBP"
    watermark_id: str  # 16 hex digits, the payload; see ``watermark_id()``
    watermark_key_id: str  # fingerprint of the deployment's watermark key
    watermark_strength: float  # luma levels RMS where the texture mask is 1
    c2pa_signed: bool
    label: bool

    def summary(self) -> dict[str, Any]:
        """For the JSON sidecar and the job record (no image bytes)."""
        info = asdict(self)
        del info["data"]
        return {"watermark_scheme": watermark.SCHEME, **info}


def watermark_id(generation_id: str) -> str:
    """The 64-bit watermark payload of a generation, as 16 hex digits.

    A hash, so the id itself is not written into pixels; the service keeps this
    value next to the image to look it up from a verified watermark.
    """
    if not generation_id:
        raise ValueError("generation_id must not be empty")
    digest = hashlib.sha256(b"imagine-me/generation/" + generation_id.encode()).digest()
    return digest[: watermark.ID_BYTES].hex()


def mark(
    image: Image.Image,
    generation_id: str,
    config: ProvenanceConfig,
    fmt: str = "PNG",
    *,
    quality: int = 95,
    edit: Edit | None = None,
) -> MarkedImage:
    """Encode ``image`` as ``fmt`` with every provenance mark; see the module docstring.

    ``generation_id`` may be a generation's id or an image's own id: whatever
    the caller wants the watermark to lead back to. ``edit`` makes the C2PA
    manifest an edit of an original (its ingredient) instead of a creation.
    Raises ``WatermarkFailed`` for images too small to carry the payload,
    ``C2paMisconfigured`` when signing is configured but fails.
    """
    fmt = fmt.upper()
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    wid = watermark_id(generation_id)
    payload = bytes.fromhex(wid)
    rgb = image.convert("RGB")
    labelled = config.label and bool(config.label_text.strip())
    if labelled:
        rgb = draw_label(rgb, config.label_text)
    w, h = rgb.size
    if min(w, h) < watermark.MIN_SIDE:
        raise WatermarkFailed(f"a {w}x{h} image is too small to carry a watermark")
    xmp = metadata.xmp_packet(config)
    for step in STRENGTH_STEPS:
        strength = watermark.STRENGTH * step
        marked = watermark.embed(rgb, payload, config.scheme, strength)
        data = metadata.encode(marked, fmt, xmp, quality)
        found = watermark.detect(Image.open(io.BytesIO(data)), [config.scheme], search=False)
        if found.payload == wid:
            break
    else:
        raise WatermarkFailed(f"the watermark does not read back from this {w}x{h} image")
    if config.signing:
        data = c2pa_manifest.sign(data, fmt, config, wid, edit)
    return MarkedImage(data, fmt, wid, config.scheme.key_id, strength, config.signing, labelled)
