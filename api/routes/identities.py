"""Enrollment and erasure of a user's face identity."""

from __future__ import annotations

import unicodedata
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, File, Form, Response, UploadFile, status
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.deps import Auth, AuthFirstRoute, ClientAddress, ServicesDep, owned
from api.erasure import erase_identity, finish_erasure
from api.errors import ApiError, Conflict
from api.region import parse_region
from api.schemas import IdentityPublic, IdentityUpdate, error_responses
from api.services import Services
from api.tables import NAME_CHARS, Consent, Identity, IdentityKey, new_id
from identity.enrollment import IdentityProfile, enroll

router = APIRouter(prefix="/v1/identities", tags=["identities"], route_class=AuthFirstRoute)
ERRORS = error_responses(400, 401, 404, 409, 413, 415, 422, 429, 451)


def to_public(
    identity: Identity,
    consent_version: str,
    retention_days: int,
    warnings: tuple[str, ...] = (),
) -> IdentityPublic:
    return IdentityPublic(
        id=identity.id,
        name=identity.name,
        created_at=identity.created_at,
        last_used_at=identity.last_used_at,
        backend=identity.backend,
        model_id=identity.model_id,
        embedding_dim=identity.embedding_dim,
        residence=identity.residence,
        consent_version=consent_version,
        photos=identity.photos["items"],
        retention_until=identity.last_used_at + timedelta(days=retention_days),
        warnings=list(warnings),
    )


def owned_identity(session: Session, user_id: str, identity_id: str) -> Identity:
    return owned(session, Identity, user_id, identity_id, "identity")


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=IdentityPublic, responses=ERRORS
)
async def create_identity(
    services: ServicesDep,
    auth: Auth,
    address: ClientAddress,
    photos: Annotated[list[UploadFile], File(description="1-5 photos of you: JPEG, PNG or WebP")],
    consent: Annotated[str, Form(description='"true": you accept the consent text')],
    consent_version: Annotated[str, Form(description="the version of the text you were shown")],
    residence: Annotated[str, Form(description="ISO 3166-1/-2 code, e.g. US-CA")],
    name: Annotated[
        str | None, Form(description=f"to tell your identities apart, 1-{NAME_CHARS} characters")
    ] = None,
) -> IdentityPublic:
    """Enroll your face from 1-5 photos. The photos are analysed and discarded."""
    user = (await auth.identify(services.db)).user
    name = checked_name(name) if name is not None and name.strip() else None
    if consent.strip().lower() != "true":
        raise ApiError("enrollment needs consent=true", code="consent_required")
    if consent_version != services.consent.version:
        raise Conflict(
            f"consent version {consent_version!r} is not the current one "
            f"({services.consent.version}); show the current text from GET /v1/consent",
            code="consent_outdated",
        )
    residence = parse_region(residence)
    decision = services.gate.require("enroll", address, residence)
    limit = services.settings.max_enroll_photos
    if not 1 <= len(photos) <= limit:
        raise ApiError(
            f"send 1-{limit} photos, not {len(photos)}",
            code="too_many_photos" if len(photos) > limit else "photos_required",
        )
    data = [await photo.read() for photo in photos]
    profile = await run_in_threadpool(_enroll, services, data)
    return await run_in_threadpool(
        _store, services, user.id, profile, residence, decision.to_dict(), name
    )


def _enroll(services: Services, photos: list[bytes]) -> IdentityProfile:
    with services.enroll_lock:  # one enrollment at a time: dlib is CPU-bound and not thread-safe
        return enroll(photos, services.analyzer(), services.settings.enrollment())


def checked_name(name: str) -> str:
    """``name`` trimmed, or ``invalid_request`` when it is empty, too long or has control
    characters (it is shown in pages and menus)."""
    text = " ".join(name.split())
    if not 1 <= len(text) <= NAME_CHARS or any(unicodedata.category(c)[0] == "C" for c in text):
        raise ApiError(
            f"an identity's name is 1-{NAME_CHARS} printable characters", code="invalid_request"
        )
    return text


def _store(
    services: Services,
    user_id: str,
    profile: IdentityProfile,
    residence: str,
    decision: dict,
    name: str | None,
) -> IdentityPublic:
    c = services.consent
    with services.db.session() as session:
        record = Consent(
            id=new_id("cns"),
            user_id=user_id,
            policy_version=c.version,
            text_sha256=c.sha256,
            purpose=c.purpose,
            retention_days=c.retention_days,
            residence=residence,
            gate_decision=decision,
        )
        identity_id = new_id("idn")
        summary = profile.summary()
        sealed, sealed_keypoints, wrapped_key = services.cipher.seal_identity(
            profile.embedding, profile.keypoints, identity_id
        )
        identity = Identity(
            id=identity_id,
            user_id=user_id,
            consent_id=record.id,
            residence=residence,
            embedding_encrypted=sealed,
            keypoints_encrypted=sealed_keypoints,
            embedding_dim=profile.embedding_dim,
            backend=profile.backend,
            model_id=profile.model_id,
            photos={"items": summary["photos"]},
            name=name,
        )
        session.add_all([record, identity])
        session.flush()  # the identity row first: its key row refers to it
        session.add(IdentityKey(identity_id=identity_id, wrapped_key=wrapped_key))
        return to_public(identity, c.version, c.retention_days, profile.warnings)


@router.get("", response_model=list[IdentityPublic], responses=ERRORS)
def list_identities(auth: Auth, services: ServicesDep) -> list[IdentityPublic]:
    """Your enrolled identities, newest first."""
    days = services.settings.retention_days
    with services.db.session() as session:
        rows = session.execute(
            select(Identity, Consent.policy_version)
            .outerjoin(Consent, Consent.id == Identity.consent_id)
            .where(Identity.user_id == auth.user(session).id)
            .order_by(Identity.created_at.desc(), Identity.id.desc())
        )
        return [to_public(identity, version or "unknown", days) for identity, version in rows]


@router.get("/{identity_id}", response_model=IdentityPublic, responses=ERRORS)
def read_identity(identity_id: str, auth: Auth, services: ServicesDep) -> IdentityPublic:
    with services.db.session() as session:
        identity = owned_identity(session, auth.user(session).id, identity_id)
        consent = session.get(Consent, identity.consent_id)
        version = consent.policy_version if consent else "unknown"
        return to_public(identity, version, services.settings.retention_days)


@router.patch("/{identity_id}", response_model=IdentityPublic, responses=ERRORS)
def update_identity(
    identity_id: str, body: IdentityUpdate, auth: Auth, services: ServicesDep
) -> IdentityPublic:
    """Rename the identity."""
    with services.db.session() as session:
        identity = owned_identity(session, auth.user(session).id, identity_id)
        identity.name = checked_name(body.name)
        consent = session.get(Consent, identity.consent_id)
        version = consent.policy_version if consent else "unknown"
        return to_public(identity, version, services.settings.retention_days)


@router.delete("/{identity_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
def delete_identity(identity_id: str, auth: Auth, services: ServicesDep) -> Response:
    """Erase the face embedding, every image made from it, and its queued or running jobs."""
    with services.db.session() as session:
        identity = owned_identity(session, auth.user(session).id, identity_id)
        keys = erase_identity(session, identity, "user_request")
    finish_erasure(services.db, services.storage, keys)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
