"""Provenance marks on every generated image, and reading them back.

    marked = mark(image, generation_id, settings.provenance(), "PNG")
    path.write_bytes(marked.data)             # sidecar: marked.summary()
    findings = verify(path.read_bytes(), settings.provenance())

``mark`` adds an invisible watermark carrying ``watermark_id(generation_id)``,
XMP with the IPTC digital source type ``trainedAlgorithmicMedia``, a signed
C2PA manifest when a certificate and key are configured, and optionally a
visible label. ``verify`` reports all of them; on other images it says
"no marks found".
"""

from PIL import Image

from imagine.provenance import c2pa_manifest, metadata
from imagine.provenance.config import DEFAULT_LABEL, TRAINED_ALGORITHMIC_MEDIA, ProvenanceConfig
from imagine.provenance.errors import C2paMisconfigured, ProvenanceError, WatermarkFailed
from imagine.provenance.marking import MarkedImage, mark, watermark_id
from imagine.provenance.verification import Findings, verify

__all__ = [
    "DEFAULT_LABEL",
    "TRAINED_ALGORITHMIC_MEDIA",
    "C2paMisconfigured",
    "Findings",
    "MarkedImage",
    "ProvenanceConfig",
    "ProvenanceError",
    "WatermarkFailed",
    "mark",
    "signing_status",
    "verify",
    "watermark_id",
]


def signing_status(config: ProvenanceConfig) -> str:
    """For readiness output: "on" after a test signature, or "off" and why.

    Raises ``C2paMisconfigured`` when a certificate and key are configured but
    cannot sign, so a service does not start marking images without C2PA.
    """
    if not config.signing:
        return "off: no C2PA certificate and key configured (IMAGINE_C2PA_CERT, IMAGINE_C2PA_KEY)"
    probe = metadata.encode(Image.new("RGB", (8, 8)), "PNG", metadata.xmp_packet(config), 95)
    c2pa_manifest.sign(probe, "PNG", config)
    return "on"
