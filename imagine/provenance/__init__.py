"""Provenance marks on every generated image, and reading them back.

    marked = mark(image, generation_id, settings.provenance(), "PNG")
    path.write_bytes(marked.data)             # sidecar: marked.summary()
    findings = verify(path.read_bytes(), settings.provenance())

``mark`` adds an invisible watermark carrying ``watermark_id(generation_id)``
(keyed with the deployment's secret), XMP with the IPTC digital source type
``trainedAlgorithmicMedia``, a signed C2PA manifest when a certificate and key
are configured (``Settings.provenance()`` always configures one: the local
chain when none is set), and optionally a visible label. ``verify`` reports
all of them; on other images it says "no marks found".
"""

from PIL import Image

from imagine.provenance import c2pa_manifest, metadata, watermark
from imagine.provenance.c2pa_manifest import Edit
from imagine.provenance.config import DEFAULT_LABEL, TRAINED_ALGORITHMIC_MEDIA, ProvenanceConfig
from imagine.provenance.errors import C2paMisconfigured, ProvenanceError, WatermarkFailed
from imagine.provenance.marking import MarkedImage, mark, watermark_id
from imagine.provenance.verification import Findings, verify

__all__ = [
    "DEFAULT_LABEL",
    "TRAINED_ALGORITHMIC_MEDIA",
    "C2paMisconfigured",
    "Edit",
    "Findings",
    "MarkedImage",
    "ProvenanceConfig",
    "ProvenanceError",
    "WatermarkFailed",
    "mark",
    "signing_status",
    "signing_warnings",
    "verify",
    "watermark_id",
]


LOCAL_CHAIN_WARNING = (
    "C2PA manifests are signed with the local chain made on first start: they validate, "
    "but no verifier trusts its root. For production, set IMAGINE_C2PA_CERT and "
    "IMAGINE_C2PA_KEY to a certificate from a CA that verifiers trust"
)
NO_TSA_WARNING = (
    "no C2PA time-stamp authority (IMAGINE_C2PA_TSA_URL): manifests stop validating "
    "when the signing certificate expires"
)


def signing_status(config: ProvenanceConfig) -> str:
    """For readiness output: "on" after a test signature (with a note when the chain is
    the local one), or "off" and why.

    Raises ``C2paMisconfigured`` when a certificate and key are configured but
    cannot sign, so a service does not start marking images without C2PA.
    """
    if not config.signing:
        return "off: no C2PA certificate and key configured (IMAGINE_C2PA_CERT, IMAGINE_C2PA_KEY)"
    probe = metadata.encode(Image.new("RGB", (8, 8)), "PNG", metadata.xmp_packet(config), 95)
    c2pa_manifest.sign(probe, "PNG", config, "00" * watermark.ID_BYTES)
    return "on: local chain, untrusted" if config.c2pa_local else "on"


def signing_warnings(config: ProvenanceConfig) -> tuple[str, ...]:
    """What an operator should hear at start about C2PA signing."""
    if not config.signing:
        return ()
    local = (LOCAL_CHAIN_WARNING,) if config.c2pa_local else ()
    return local + (() if config.c2pa_tsa_url else (NO_TSA_WARNING,))
