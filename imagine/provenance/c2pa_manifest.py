"""C2PA: a signed manifest that says "created by a trained model", and reading one back.

Wraps ``c2pa-python`` (the Rust c2pa-rs SDK); it is imported only here. The
manifest holds one ``c2pa.created`` action with the IPTC digital source type
and the generator as software agent; no thumbnail, title or ingredient that
could carry personal data. Signing uses the certificate chain and key from
settings; verification trusts the configured anchors in addition to the SDK's
own list, and otherwise reports a well-formed manifest from an unknown signer
as valid but untrusted.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagine.provenance.config import TRAINED_ALGORITHMIC_MEDIA, ProvenanceConfig
from imagine.provenance.errors import C2paMisconfigured

MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
CREATED = "c2pa.created"


@dataclass(frozen=True)
class C2paFindings:
    present: bool
    state: str | None = None  # the SDK's verdict: "Trusted", "Valid" or "Invalid"
    digital_source_type: str | None = None  # from the c2pa.created action
    actions: tuple[str, ...] = ()
    claim_generator: str | None = None  # "name version" of the signing software
    signer: str | None = None  # issuer organisation of the signing certificate
    failures: tuple[str, ...] = ()  # validation failure codes, e.g. signingCredential.untrusted
    error: str | None = None  # why a present manifest could not be read at all

    @property
    def valid(self) -> bool:
        """Signature, certificate and content hashes all check out (trusted or not)."""
        return self.state in ("Valid", "Trusted")

    @property
    def trusted(self) -> bool:
        return self.state == "Trusted"


def manifest_definition(config: ProvenanceConfig, fmt: str) -> dict[str, Any]:
    agent = {"name": config.generator, "version": config.generator_version}
    return {
        "claim_generator_info": [agent],
        "format": MIME[fmt],
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": CREATED,
                            "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                            "softwareAgent": agent,
                        }
                    ]
                },
            }
        ],
    }


def sign(data: bytes, fmt: str, config: ProvenanceConfig) -> bytes:
    """``data`` (an encoded image) with a signed manifest embedded."""
    import c2pa

    assert config.c2pa_cert is not None and config.c2pa_key is not None
    cert, key = _read_pem(config.c2pa_cert), _read_pem(config.c2pa_key)
    context = _context(config, {"builder": {"thumbnail": {"enabled": False}}})
    out = io.BytesIO()
    try:
        info = c2pa.C2paSignerInfo(config.c2pa_alg, cert, key, config.c2pa_tsa_url)
        builder = c2pa.Builder(manifest_definition(config, fmt), context=context)
        with c2pa.Signer.from_info(info) as signer, builder:
            builder.sign(signer, MIME[fmt], io.BytesIO(data), out)
    except c2pa.C2paError as exc:
        raise C2paMisconfigured(f"C2PA signing failed: {exc}") from None
    return out.getvalue()


def read(data: bytes, fmt: str, config: ProvenanceConfig) -> C2paFindings:
    """What the embedded manifest says and whether it validates; ``present=False`` if none."""
    import c2pa

    try:
        reader = c2pa.Reader.try_create(MIME[fmt], io.BytesIO(data), context=_context(config))
    except c2pa.C2paError as exc:
        return C2paFindings(present=True, state="Invalid", error=str(exc))
    if reader is None:
        return C2paFindings(present=False)
    with reader:
        manifest = reader.get_active_manifest() or {}
        state = reader.get_validation_state()
        results = reader.get_validation_results() or {}
    actions = [
        action
        for assertion in manifest.get("assertions", [])
        if str(assertion.get("label", "")).startswith("c2pa.actions")
        for action in assertion.get("data", {}).get("actions", [])
    ]
    created: dict[str, Any] = next((a for a in actions if a.get("action") == CREATED), {})
    failures = results.get("activeManifest", {}).get("failure", [])
    generator = (manifest.get("claim_generator_info") or [{}])[0]
    return C2paFindings(
        present=True,
        state=state,
        digital_source_type=created.get("digitalSourceType"),
        actions=tuple(str(a.get("action")) for a in actions),
        claim_generator=" ".join(str(generator[k]) for k in ("name", "version") if k in generator)
        or None,
        signer=(manifest.get("signature_info") or {}).get("issuer"),
        failures=tuple(str(f.get("code")) for f in failures),
    )


def _context(config: ProvenanceConfig, extra: dict[str, Any] | None = None) -> Any:
    import c2pa

    settings: dict[str, Any] = dict(extra or {})
    if config.c2pa_trust_anchors is not None:
        settings["trust"] = {"user_anchors": _read_pem(config.c2pa_trust_anchors).decode()}
    return c2pa.Context.from_dict(settings)


def _read_pem(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise C2paMisconfigured(f"cannot read {path}: {exc.strerror}") from None
