"""More photos for a stored identity, or new photos in place of its own (issue 20).

The photos are checked and embedded as enrollment does it (``identity.enrollment.enroll``:
one usable face each, all of one person) before this module is called. Then one unit of
work takes the account's turn first (``take_turn``), so that it reads the identity as the
last change left it and two changes cannot lose each other's photos; checks that each
photo matches the identity's own face at the backend's match threshold (``not_same_face``:
the identity's consent covers that person only) and that the photos are the account's face
(``check_account_face``: ``not_account_face``); and gives the identity its new profile,
sealed under a fresh data key, the previous key destroyed. Adding makes the profile of all
the photos together (``identity.enrollment.extend``); replacing makes it of the new ones
alone. Either way the identity keeps its id, name, consent and images, and its capture
becomes ``upload``: its face no longer comes from a camera capture alone.

All or nothing: a refusal changes nothing but the audit log, and any other failure rolls the
unit of work back. Each change and each refusal is audited (``identity_photos``: the action,
the decision, the lowest similarity to the identity and the threshold; never an embedding).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session

from api.account_face import NotAccountFace, check_account_face, take_turn
from api.crypto import EmbeddingCipher
from api.deps import owned
from api.errors import ApiError, Conflict
from api.services import Services
from api.tables import AuditEvent, Consent, Identity, IdentityKey, utcnow
from identity.enrollment import IdentityProfile, StoredProfile, extend, match_stored
from identity.errors import NotSameFace

ADD, REPLACE = "add", "replace"


@dataclass(frozen=True)
class Changed:
    identity: Identity  # as stored now, detached
    consent_version: str  # of the consent the identity was enrolled under


def photos_record(items: list[dict], profile: IdentityProfile) -> dict:
    """``Identity.photos``: each photo's quality figures and the profile's mean length (what
    adding photos later needs, ``StoredProfile``); no pixels, no embedding."""
    return {"items": items, "mean_length": profile.mean_length}


def stored_profile(
    cipher: EmbeddingCipher, identity: Identity, wrapped_key: bytes | None
) -> StoredProfile:
    items = identity.photos["items"]
    embedding = cipher.decrypt(identity.embedding_encrypted, identity.id, wrapped_key)
    keypoints = None
    if identity.keypoints_encrypted is not None and wrapped_key is not None:
        keypoints = cipher.decrypt_keypoints(identity.keypoints_encrypted, identity.id, wrapped_key)
    return StoredProfile(embedding, len(items), mean_length(identity), keypoints)


def mean_length(identity: Identity) -> float:
    """Recorded since photos can be added. An identity enrolled before records none: for one
    enrollment it is the mean of the photos' similarities to the profile (the sum of
    e_i · s/|s| over the photos is |s|, for s their summed embeddings), to 4 decimals. A
    camera capture counts as one photo of length 1."""
    recorded = identity.photos.get("mean_length")
    if recorded is not None:
        return float(recorded)
    items = identity.photos["items"]
    if identity.capture == "live" or not items:
        return 1.0
    return float(np.mean([item["similarity_to_profile"] for item in items]))


def change_photos(
    services: Services, user_id: str, identity_id: str, added: IdentityProfile, action: str
) -> Changed:
    """Add ``added``'s photos to the user's identity, or replace its photos with them.
    Raises ``NotSameFace`` or ``NotAccountFace``
    (audited), or ``not_found``, ``too_many_photos``, ``identity_incompatible``."""
    assert action in (ADD, REPLACE)
    with services.db.session() as session:
        result = _change(session, services, user_id, identity_id, added, action)
    if isinstance(result, _Refusal):
        with services.db.session() as session:  # the change rolled back; its record stays
            session.add_all(result.events)
        raise result.error
    services.db.checkpoint()  # SQLite: the previous profile's pages leave the WAL
    return result


@dataclass(frozen=True)
class _Refusal:
    error: ApiError | NotSameFace
    events: list[AuditEvent]


def _change(
    session: Session,
    services: Services,
    user_id: str,
    identity_id: str,
    added: IdentityProfile,
    action: str,
) -> Changed | _Refusal:
    take_turn(session, user_id)  # first: what follows is read after the changes before it
    identity = owned(session, Identity, user_id, identity_id, "identity")
    if (identity.backend, identity.embedding_dim) != (added.backend, added.embedding_dim):
        raise Conflict(
            f"this identity was enrolled with {identity.backend}; the service now uses "
            f"{added.backend}: enroll again",
            code="identity_incompatible",
        )
    kept = list(identity.photos["items"]) if action == ADD else []
    check_room(len(kept), len(added.photos), services.settings.max_enroll_photos)
    key = session.get(IdentityKey, identity.id)
    stored = stored_profile(services.cipher, identity, key.wrapped_key if key else None)
    threshold = added.match_threshold
    audit = PhotosAudit(identity.id, action, len(added.photos), threshold)
    try:
        scores = match_stored(stored, added, threshold)
    except NotSameFace as exc:
        return _Refusal(exc, [audit.record("refused", exc.similarity, exc.code)])
    check = check_account_face(session, services.cipher, user_id, added)
    if check.refused:
        return _Refusal(
            NotAccountFace(check.reason or "not this account's face"),
            [
                check.audit(user_id, "upload"),
                audit.record("refused", min(scores), NotAccountFace.code),
            ],
        )

    profile = extend(stored, added) if action == ADD else added
    sealed, sealed_keypoints, wrapped = services.cipher.seal_identity(
        profile.embedding, profile.keypoints, identity.id
    )
    identity.embedding_encrypted = sealed
    identity.keypoints_encrypted = sealed_keypoints
    identity.model_id = profile.model_id
    identity.photos = photos_record(kept + profile.summary()["photos"], profile)
    identity.capture = "upload"
    identity.last_used_at = utcnow()  # a use: retention counts from it
    if key is None:  # enrolled before data keys and not resealed at start
        session.add(IdentityKey(identity_id=identity.id, wrapped_key=wrapped))
    else:
        key.wrapped_key = wrapped  # the previous data key is gone: crypto-shredding
    session.add(check.audit(user_id, "upload", identity.id, identity.consent_id))
    session.add(audit.record("stored", min(scores), total=len(identity.photos["items"])))
    session.flush()
    consent = session.get(Consent, identity.consent_id)
    return Changed(identity, consent.policy_version if consent else "unknown")


def check_room(held: int, adding: int, limit: int) -> None:
    """``too_many_photos`` when the identity would hold more than ``limit`` photos."""
    if held + adding > limit:
        raise ApiError(
            f"an identity holds at most {limit} photos; this one holds {held}, so add at "
            f"most {max(limit - held, 0)} (or replace its photos)",
            code="too_many_photos",
        )


@dataclass(frozen=True)
class PhotosAudit:
    identity_id: str
    action: str  # ADD | REPLACE
    photos: int  # sent
    threshold: float

    def record(
        self, decision: str, similarity: float, code: str | None = None, total: int | None = None
    ) -> AuditEvent:
        """``decision`` "stored" (``total``: the photos the identity holds now) or "refused"
        (``code``: why); ``similarity``: the lowest of the photos' to the identity."""
        detail: dict[str, object] = {
            "action": self.action,
            "decision": decision,
            "photos": self.photos,
            "similarity": round(similarity, 4),
            "threshold": self.threshold,
        }
        if code is not None:
            detail["code"] = code
        if total is not None:
            detail["total"] = total
        return AuditEvent(kind="identity_photos", subject=self.identity_id, detail=detail)
