"""Enrollment and erasure of a user's face identity."""

from __future__ import annotations

import unicodedata
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, File, Form, Response, UploadFile, status
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.account_face import (
    PERSONAL,
    LiveCaptureRequired,
    NotAccountFace,
    check_account_face,
)
from api.deps import Auth, AuthFirstRoute, ClientAddress, ServicesDep, owned
from api.erasure import erase_identity, finish_erasure
from api.errors import ApiError, Conflict
from api.identity_photos import photos_record
from api.region import Decision, parse_region
from api.region.address import IPAddress
from api.schemas import IdentityPublic, IdentityUpdate, error_responses
from api.services import Services
from api.tables import NAME_CHARS, Consent, Identity, IdentityKey, User, new_id
from identity.enrollment import IdentityProfile, enroll

router = APIRouter(prefix="/v1/identities", tags=["identities"], route_class=AuthFirstRoute)
# The enrollment form's fields, shared by uploads and camera captures (api/routes/capture.py)
ConsentForm = Annotated[str, Form(description='"true": you accept the consent text')]
ConsentVersionForm = Annotated[str, Form(description="the version of the text you were shown")]
ResidenceForm = Annotated[str, Form(description="ISO 3166-1/-2 code, e.g. US-CA")]
NameForm = Annotated[
    str | None, Form(description=f"to tell your identities apart, 1-{NAME_CHARS} characters")
]
ERRORS = error_responses(400, 401, 403, 404, 409, 413, 415, 422, 429, 451)


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
        capture="live" if identity.capture == "live" else "upload",
        retention_until=identity.last_used_at + timedelta(days=retention_days),
        warnings=list(warnings),
    )


def owned_identity(session: Session, user_id: str, identity_id: str) -> Identity:
    return owned(session, Identity, user_id, identity_id, "identity")


def identity_public(
    session: Session, identity: Identity, retention_days: int, warnings: tuple[str, ...] = ()
) -> IdentityPublic:
    """``to_public`` with the version of the consent the identity was enrolled under."""
    consent = session.get(Consent, identity.consent_id)
    version = consent.policy_version if consent else "unknown"
    return to_public(identity, version, retention_days, warnings)


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=IdentityPublic, responses=ERRORS
)
async def create_identity(
    services: ServicesDep,
    auth: Auth,
    address: ClientAddress,
    photos: Annotated[list[UploadFile], File(description="1-5 photos of you: JPEG, PNG or WebP")],
    consent: ConsentForm,
    consent_version: ConsentVersionForm,
    residence: ResidenceForm,
    name: NameForm = None,
) -> IdentityPublic:
    """Enroll your face from 1-5 photos. The photos are analysed and discarded.

    A personal account enrolls its holder's face only: its first enrollment sets the
    account's face, and a later one of another face is refused (422 ``not_account_face``).
    """
    user = (await auth.identify(services.db)).user
    name = checked_name(name) if name is not None and name.strip() else None
    residence, decision = check_consent(services, address, consent, consent_version, residence)
    if services.settings.require_live_capture:
        await run_in_threadpool(refuse_uploads, services, user.id)
    data = await read_photos(photos, services.settings.max_enroll_photos)
    profile = await run_in_threadpool(enroll_photos, services, data)
    return await run_in_threadpool(
        store_identity,
        services,
        user.id,
        profile,
        residence,
        decision.to_dict(),
        "upload",
        name,
    )


def check_consent(
    services: Services,
    address: IPAddress | None,
    consent: str,
    consent_version: str,
    residence: str,
) -> tuple[str, Decision]:
    """The declared residence and the gate's decision, once consent is given to the
    current text: the same for uploads and camera captures."""
    if consent.strip().lower() != "true":
        raise ApiError("enrollment needs consent=true", code="consent_required")
    if consent_version != services.consent.version:
        raise Conflict(
            f"consent version {consent_version!r} is not the current one "
            f"({services.consent.version}); show the current text from GET /v1/consent",
            code="consent_outdated",
        )
    region = parse_region(residence)
    return region, services.gate.require("enroll", address, region)


def refuse_uploads(services: Services, user_id: str) -> None:
    """IMAGINE_REQUIRE_LIVE_CAPTURE: a personal account's face comes from the camera only,
    so it may not upload photos (to enroll, add or replace); operators still may."""
    with services.db.session() as session:
        kind = session.scalar(select(User.kind).where(User.id == user_id)) or PERSONAL
    if kind == PERSONAL:
        raise LiveCaptureRequired(
            "this service enrolls a personal account's face from a camera capture only "
            "(POST /v1/identities/live, as the web gallery's 'Use my camera' does)"
        )


async def read_photos(photos: list[UploadFile], limit: int) -> list[bytes]:
    """The uploads' bytes, once their number is 1 to ``limit``."""
    if not 1 <= len(photos) <= limit:
        raise ApiError(
            f"send 1-{limit} photos, not {len(photos)}",
            code="too_many_photos" if len(photos) > limit else "photos_required",
        )
    return [await photo.read() for photo in photos]


def enroll_photos(services: Services, photos: list[bytes]) -> IdentityProfile:
    """Each photo checked and embedded as enrollment does (identity.enrollment.enroll)."""
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


def store_identity(
    services: Services,
    user_id: str,
    profile: IdentityProfile,
    residence: str,
    decision: dict,
    capture: str,
    name: str | None = None,
) -> IdentityPublic:
    """Check the face against the account's (api/account_face.py), then store the consent
    and the identity, in one unit of work; a refused face stores its audit record only."""
    with services.db.session() as session:
        check = check_account_face(session, services.cipher, user_id, profile)
        if not check.refused:
            row = _insert(session, services, user_id, profile, residence, decision, capture, name)
            session.add(check.audit(user_id, capture, row.id, row.consent_id))
    if check.refused:
        with services.db.session() as session:
            session.add(check.audit(user_id, capture))
        raise NotAccountFace(check.reason or "not this account's face")
    c = services.consent
    return to_public(row, c.version, c.retention_days, profile.warnings)


def _insert(
    session: Session,
    services: Services,
    user_id: str,
    profile: IdentityProfile,
    residence: str,
    decision: dict,
    capture: str,
    name: str | None,
) -> Identity:
    c = services.consent
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
        photos=photos_record(summary["photos"], profile),
        name=name,
        capture=capture,
    )
    session.add_all([record, identity])
    session.flush()  # the identity row first: its key row refers to it
    session.add(IdentityKey(identity_id=identity_id, wrapped_key=wrapped_key))
    return identity


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
        return identity_public(session, identity, services.settings.retention_days)


@router.patch("/{identity_id}", response_model=IdentityPublic, responses=ERRORS)
def update_identity(
    identity_id: str, body: IdentityUpdate, auth: Auth, services: ServicesDep
) -> IdentityPublic:
    """Rename the identity."""
    with services.db.session() as session:
        identity = owned_identity(session, auth.user(session).id, identity_id)
        identity.name = checked_name(body.name)
        return identity_public(session, identity, services.settings.retention_days)


@router.delete("/{identity_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
def delete_identity(identity_id: str, auth: Auth, services: ServicesDep) -> Response:
    """Erase the face embedding, every image made from it, and its queued or running jobs."""
    with services.db.session() as session:
        identity = owned_identity(session, auth.user(session).id, identity_id)
        keys = erase_identity(session, identity, "user_request")
    finish_erasure(services.db, services.storage, keys)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
