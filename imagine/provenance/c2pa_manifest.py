"""C2PA: a signed manifest that says "created by a trained model", and reading one back.

Wraps ``c2pa-python`` (the Rust c2pa-rs SDK); it is imported only here. A new
image's manifest holds a ``c2pa.created`` action with the IPTC digital source
type and the generator as software agent, then ``c2pa.watermarked``; a
``c2pa.soft-binding`` assertion carries the watermark's payload, so that a copy
whose manifest was stripped can be matched back through its watermark. An
edit (the labelled download) names its original as a ``parentOf`` ingredient,
whose own manifest comes along, and records ``c2pa.opened``, ``c2pa.edited``
and ``c2pa.watermarked``. No thumbnail, title or data that could identify a
person. Signing uses the certificate chain and key from
settings; verification trusts the configured anchors in addition to the SDK's
own list, and otherwise reports a well-formed manifest from an unknown signer
as valid but untrusted.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagine.provenance.config import TRAINED_ALGORITHMIC_MEDIA, ProvenanceConfig
from imagine.provenance.errors import C2paMisconfigured

MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
CREATED = "c2pa.created"
OPENED, EDITED, WATERMARKED = "c2pa.opened", "c2pa.edited", "c2pa.watermarked"
SOFT_BINDING = "c2pa.soft-binding"
PARENT = "original"  # the ingredient's label, and the title it is given


@dataclass(frozen=True)
class Edit:
    """What makes a manifest an edit: the original's bytes and what was done to it."""

    parent: bytes  # the original, as stored (its manifest comes along)
    parent_format: str  # "PNG" | "JPEG" | "WEBP"
    description: str  # the c2pa.edited action's words, e.g. "drew the visible label"


@dataclass(frozen=True)
class C2paFindings:
    present: bool
    state: str | None = None  # the SDK's verdict: "Trusted", "Valid" or "Invalid"
    digital_source_type: str | None = None  # from the c2pa.created action
    actions: tuple[str, ...] = ()
    claim_generator: str | None = None  # "name version" of the signing software
    signer: str | None = None  # issuer organisation of the signing certificate
    ingredients: tuple[str, ...] = ()  # "relationship: title", e.g. "parentOf: original"
    soft_binding: str | None = None  # "alg:payload hex" of the watermark the manifest names
    failures: tuple[str, ...] = ()  # validation failure codes, e.g. signingCredential.untrusted
    error: str | None = None  # why a present manifest could not be read at all

    @property
    def valid(self) -> bool:
        """Signature, certificate and content hashes all check out (trusted or not)."""
        return self.state in ("Valid", "Trusted")

    @property
    def trusted(self) -> bool:
        return self.state == "Trusted"


def manifest_definition(
    config: ProvenanceConfig, fmt: str, watermark_id: str, edit: Edit | None = None
) -> dict[str, Any]:
    agent = {"name": config.generator, "version": config.generator_version}
    if edit is None:
        first = [
            {
                "action": CREATED,
                "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                "softwareAgent": agent,
            }
        ]
    else:
        first = [
            {"action": OPENED, "parameters": {"ingredientIds": [PARENT]}, "softwareAgent": agent},
            {"action": EDITED, "description": edit.description, "softwareAgent": agent},
        ]
    actions = [*first, {"action": WATERMARKED, "softwareAgent": agent}]
    binding = {
        "alg": f"com.imagine-me.{config.scheme.name}",
        "blocks": [{"scope": {}, "value": base64.b64encode(bytes.fromhex(watermark_id)).decode()}],
    }
    return {
        "claim_generator_info": [agent],
        "format": MIME[fmt],
        "assertions": [
            {"label": "c2pa.actions.v2", "data": {"actions": actions}},
            {"label": SOFT_BINDING, "data": binding},
        ],
    }


def sign(
    data: bytes, fmt: str, config: ProvenanceConfig, watermark_id: str, edit: Edit | None = None
) -> bytes:
    """``data`` (an encoded image) with a signed manifest embedded."""
    import c2pa

    assert config.c2pa_cert is not None and config.c2pa_key is not None
    cert, key = _read_pem(config.c2pa_cert), _read_pem(config.c2pa_key)
    context = _context(config, {"builder": {"thumbnail": {"enabled": False}}})
    out = io.BytesIO()
    try:
        info = c2pa.C2paSignerInfo(config.c2pa_alg, cert, key, config.c2pa_tsa_url)
        definition = manifest_definition(config, fmt, watermark_id, edit)
        builder = c2pa.Builder(definition, context=context)
        with c2pa.Signer.from_info(info) as signer, builder:
            if edit is not None:
                ingredient = {"title": PARENT, "relationship": "parentOf", "label": PARENT}
                builder.add_ingredient(
                    ingredient, MIME[edit.parent_format], io.BytesIO(edit.parent)
                )
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
        store = json.loads(reader.json())
        state = reader.get_validation_state()
        results = reader.get_validation_results() or {}
    manifests = store.get("manifests", {})
    manifest = manifests.get(store.get("active_manifest"), {})
    actions = _actions(manifest)
    failures = results.get("activeManifest", {}).get("failure", [])
    generator = (manifest.get("claim_generator_info") or [{}])[0]
    ingredients = manifest.get("ingredients", [])
    binding: dict[str, Any] = next(
        (
            a.get("data", {})
            for a in manifest.get("assertions", [])
            if a.get("label") == SOFT_BINDING
        ),
        {},
    )
    return C2paFindings(
        present=True,
        state=state,
        digital_source_type=_source_type(manifests, manifest),
        actions=tuple(str(a.get("action")) for a in actions),
        claim_generator=" ".join(str(generator[k]) for k in ("name", "version") if k in generator)
        or None,
        signer=(manifest.get("signature_info") or {}).get("issuer"),
        failures=tuple(str(f.get("code")) for f in failures),
        ingredients=tuple(f"{i.get('relationship')}: {i.get('title')}" for i in ingredients),
        soft_binding=_binding(binding),
    )


def _actions(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        action
        for assertion in manifest.get("assertions", [])
        if str(assertion.get("label", "")).startswith("c2pa.actions")
        for action in assertion.get("data", {}).get("actions", [])
    ]


def _source_type(manifests: dict[str, Any], manifest: dict[str, Any], depth: int = 0) -> str | None:
    """The c2pa.created action's digital source type, in this manifest or (for an edit)
    its parent's, a few generations back at most."""
    created = next((a for a in _actions(manifest) if a.get("action") == CREATED), None)
    if created is not None:
        return created.get("digitalSourceType")
    parent = next(
        (i for i in manifest.get("ingredients", []) if i.get("relationship") == "parentOf"), None
    )
    if parent is None or depth >= 4:
        return None
    return _source_type(manifests, manifests.get(parent.get("active_manifest"), {}), depth + 1)


def _binding(data: dict[str, Any]) -> str | None:
    try:
        value = base64.b64decode(data["blocks"][0]["value"]).hex()
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return f"{data.get('alg')}:{value}"


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
