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
        """Some mark says so: this deployment's watermark, or the trained-model source type
        in XMP or a valid C2PA manifest. A legacy watermark (a public key) does not count."""
        return (
            (self.watermark.found and not self.watermark.legacy)
            or self.digital_source_type == TRAINED_ALGORITHMIC_MEDIA
            or (self.c2pa.valid and self.c2pa.digital_source_type == TRAINED_ALGORITHMIC_MEDIA)
        )

    @property
    def status(self) -> str:
        """One stable word for the headline: ``invalid`` (a C2PA manifest that does not
        validate: tampered or damaged; said first, whatever else is found),
        ``ai_generated``, ``legacy_mark`` (only a tiled-ss-v1 watermark), ``marked``
        (marks that do not say AI-generated) or ``unmarked``."""
        if self.c2pa.present and not self.c2pa.valid:
            return "invalid"
        if self.ai_generated:
            return "ai_generated"
        if self.watermark.found and self.watermark.legacy:
            return "legacy_mark"
        return "marked" if self.marked else "unmarked"

    def matches(self, watermark_id: str) -> bool:
        """Whether the watermark carries ``watermark_id`` (see ``marking.watermark_id``)."""
        return self.watermark.found and self.watermark.payload == watermark_id

    def to_dict(self) -> dict[str, Any]:
        c2pa = asdict(self.c2pa) | {"valid": self.c2pa.valid, "trusted": self.c2pa.trusted}
        wm = self.watermark
        return {
            "status": self.status,
            "marked": self.marked,
            "ai_generated": self.ai_generated,
            "summary": self.headline(),
            "format": self.format,
            "watermark": {
                "found": wm.found,
                "payload": wm.payload,
                "scheme": wm.scheme,
                "key": self.key_owner(),
                "key_id": wm.key_id,
                "legacy": wm.legacy,
                "bit_errors": wm.bit_errors,
                "bits": wm.bits,
                "bit_accuracy": wm.bit_accuracy,
                "scale": wm.scale,
                "aspect": wm.aspect,
                "flip": wm.flip,
                "confidence": wm.confidence,
            },
            "iptc": {"digital_source_type": self.digital_source_type, "generator": self.generator},
            "c2pa": c2pa,
        }

    def key_owner(self) -> str | None:
        """Whose key the watermark matched, in words."""
        if not self.watermark.found:
            return None
        if self.watermark.legacy:
            return "the public tiled-ss-v1 key (anyone can make this mark)"
        return f"this deployment's key ({self.watermark.key_id})"

    def headline(self) -> str:
        status = self.status
        if status == "invalid":
            why = ", ".join(self.c2pa.failures) or self.c2pa.error or "does not validate"
            rest = "marked as AI-generated" if self.ai_generated else "no other claim checks out"
            return f"TAMPERED OR INVALID: the C2PA manifest does not validate ({why}); {rest}"
        return {
            "ai_generated": "marked as AI-generated",
            "legacy_mark": "legacy mark only: a tiled-ss-v1 watermark, whose key is public",
            "marked": "marked, not as AI-generated",
            "unmarked": "no marks found",
        }[status]

    def describe(self) -> list[str]:
        """Human-readable lines, one per kind of mark."""
        wm = self.watermark
        lines = [self.headline()]
        if wm.found:
            where = f"{wm.scale:g}x the marked size"
            if wm.aspect not in (None, 1.0):
                where += f", stretched {wm.aspect:g}x vertically"
            if wm.flip not in (None, "none"):
                where += f", flipped {wm.flip}"
            if wm.legacy:
                lines.append(
                    f"legacy watermark: found, id {wm.payload}, {wm.scheme} with "
                    f"{self.key_owner()}; no error correction (at {where})"
                )
            else:
                lines.append(
                    f"watermark: found, id {wm.payload}, {wm.scheme} with {self.key_owner()}; "
                    f"{wm.bit_errors} of {wm.bits} bits corrected, bit accuracy "
                    f"{wm.bit_accuracy:.1%} (at {where})"
                )
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
        watermark=watermark.detect(photo.image, config.readable),
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
