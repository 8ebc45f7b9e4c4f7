"""Errors of provenance marking and verification, each with a stable ``code``."""

from __future__ import annotations

from imagine.errors import ImagineError


class ProvenanceError(ImagineError):
    code = "provenance_error"


class C2paMisconfigured(ProvenanceError):
    """The C2PA certificate, key or trust anchors are unreadable or do not fit together."""

    code = "c2pa_misconfigured"


class WatermarkFailed(ProvenanceError):
    """The image could not carry a readable watermark (too small); it must not be stored."""

    code = "watermark_failed"


class InvalidWatermarkKey(ProvenanceError):
    """The configured watermark key (or its file) is missing, not base64 or not 32 bytes."""

    code = "invalid_setting"
