"""What marking and verification need, filled from the service settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from identity.ingest import IngestLimits
from imagine import __version__
from imagine.provenance.watermark import LEGACY, KeyedScheme, Scheme

GENERATOR = "Imagine Me"
# IPTC NewsCodes digital source type for output of a trained generative model.
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
DEFAULT_LABEL = "Imagined with AI"


@dataclass(frozen=True)
class ProvenanceConfig:
    # 32 secret bytes: the deployment's watermark key (``keys.load_watermark_key``).
    watermark_key: bytes = field(repr=False)
    generator: str = GENERATOR
    generator_version: str = __version__
    c2pa_cert: Path | None = None  # PEM: the signing certificate, then its intermediates
    c2pa_key: Path | None = None  # PEM: the signing certificate's private key
    c2pa_alg: str = "es256"  # es256 | es384 | es512 | ps256 | ps384 | ps512 | ed25519
    c2pa_tsa_url: str | None = None  # RFC 3161 time-stamp authority; none by default
    c2pa_trust_anchors: Path | None = None  # PEM roots that verification treats as trusted
    c2pa_local: bool = False  # the chain is the local one made on first start (untrusted)
    label: bool = False  # draw the visible label on marked images
    label_text: str = DEFAULT_LABEL
    limits: IngestLimits = field(default_factory=IngestLimits)  # for images given to verify

    @property
    def signing(self) -> bool:
        """Whether marked images get a signed C2PA manifest (a certificate and key are set)."""
        return self.c2pa_cert is not None and self.c2pa_key is not None

    @cached_property
    def scheme(self) -> KeyedScheme:
        """The watermark this deployment writes (its patterns are cached here)."""
        return KeyedScheme(self.watermark_key)

    @property
    def readable(self) -> tuple[Scheme, ...]:
        """The watermarks verification reads: this deployment's, then the legacy public one."""
        return (self.scheme, LEGACY)
