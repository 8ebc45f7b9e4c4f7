"""``verify``: which provenance marks an image carries, and whether they check out."""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from typing import Any

from PIL import Image

from identity.ingest import load_photo
from imagine.provenance import c2pa_manifest, metadata, watermark
from imagine.provenance.c2pa_manifest import C2paFindings
from imagine.provenance.config import TRAINED_ALGORITHMIC_MEDIA, ProvenanceConfig
from imagine.provenance.watermark import Detection


@dataclass(frozen=True)
class Findings:
    format: str  # "PNG" | "JPEG" | "WEBP", sniffed from the bytes
    watermark: Detection
    digital_source_type: str | None  # IPTC DigitalSourceType from XMP
    generator: str | None  # xmp:CreatorTool
    c2pa: C2paFindings

    @property
    def marked(self) -> bool:
        return self.watermark.found or self.digital_source_type is not None or self.c2pa.present

    @property
    def ai_generated(self) -> bool:
        """Some mark says so: our watermark, or the trained-model source type in XMP or C2PA."""
        return (
            self.watermark.found
            or self.digital_source_type == TRAINED_ALGORITHMIC_MEDIA
            or (self.c2pa.valid and self.c2pa.digital_source_type == TRAINED_ALGORITHMIC_MEDIA)
        )

    def matches(self, watermark_id: str) -> bool:
        """Whether the watermark carries ``watermark_id`` (see ``marking.watermark_id``)."""
        return self.watermark.found and self.watermark.payload == watermark_id

    def to_dict(self) -> dict[str, Any]:
        c2pa = asdict(self.c2pa) | {"valid": self.c2pa.valid, "trusted": self.c2pa.trusted}
        return {
            "marked": self.marked,
            "ai_generated": self.ai_generated,
            "summary": self.headline(),
            "format": self.format,
            "watermark": asdict(self.watermark) | {"scheme": watermark.SCHEME},
            "iptc": {"digital_source_type": self.digital_source_type, "generator": self.generator},
            "c2pa": c2pa,
        }

    def headline(self) -> str:
        if not self.marked:
            return "no marks found"
        return "marked as AI-generated" if self.ai_generated else "marked, not as AI-generated"

    def describe(self) -> list[str]:
        """Human-readable lines, one per kind of mark."""
        wm = self.watermark
        lines = [self.headline()]
        if wm.found:
            lines.append(f"watermark: found, id {wm.payload} (at {wm.scale:g}x the marked size)")
        else:
            lines.append("watermark: none found")
        if self.digital_source_type:
            by = f", by {self.generator}" if self.generator else ""
            lines.append(f"IPTC digital source type: {self.digital_source_type}{by}")
        else:
            lines.append("IPTC digital source type: none")
        lines.append("C2PA: " + _describe_c2pa(self.c2pa))
        return lines


def verify(data: bytes, config: ProvenanceConfig) -> Findings:
    """Read every mark from an encoded image. Raises the identity package's
    ``UnsupportedFormat``, ``InvalidImage`` or ``ImageTooLarge`` for bad input."""
    photo = load_photo(data, config.limits, enrollment=False)
    with Image.open(io.BytesIO(data)) as opened:
        xmp = metadata.read_xmp(opened)
    return Findings(
        format=photo.format,
        watermark=watermark.detect(photo.image),
        digital_source_type=metadata.xmp_value(xmp, "Iptc4xmpExt:DigitalSourceType")
        if xmp
        else None,
        generator=metadata.xmp_value(xmp, "xmp:CreatorTool") if xmp else None,
        c2pa=c2pa_manifest.read(data, photo.format, config),
    )


def _describe_c2pa(c: C2paFindings) -> str:
    if not c.present:
        return "no manifest"
    if c.error:
        return f"unreadable manifest ({c.error})"
    verdict = {"Trusted": "valid, trusted signer", "Valid": "valid, untrusted signer"}.get(
        c.state or "", f"INVALID ({', '.join(c.failures) or c.state})"
    )
    parts = [verdict]
    if c.signer:
        parts.append(f"signed by {c.signer}")
    if c.actions:
        parts.append("actions " + ", ".join(c.actions))
    if c.digital_source_type:
        parts.append(f"source {c.digital_source_type}")
    return "; ".join(parts)
