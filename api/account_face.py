"""One face per personal account (issue 19): an account makes images of its holder only.

A personal account's first enrollment sets its reference face (the enrollment's profile
embedding, sealed like an identity's: api/crypto.py); every later enrollment must match it
at the face backend's match threshold, or is refused with ``not_account_face``. Each check
is audited (decision and similarity, never an embedding). Erasing the account's last
identity erases the reference too, so a person may change their mind and enroll afresh.

An operator account (``imagine users create NAME --operator``) enrolls other people's faces
for studios and batch campaigns, on the consent it declares for each person; it has no
reference face and each of its enrollments is audited as ``operator_declared``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session

from api.crypto import EmbeddingCipher
from api.errors import ApiError
from api.tables import AccountFace, AccountFaceKey, AuditEvent, Identity, User
from identity.enrollment import IdentityProfile, similarity

PERSONAL, OPERATOR = "personal", "operator"
KINDS = (PERSONAL, OPERATOR)
CAPTURES = ("upload", "live")


class NotAccountFace(ApiError):
    code = "not_account_face"
    status = 422


class LiveCaptureRequired(ApiError):
    """IMAGINE_REQUIRE_LIVE_CAPTURE: a personal account enrolls from a camera capture only."""

    code = "live_capture_required"
    status = 403


def account_face_subject(user_id: str) -> str:
    """What the reference face's ciphertext and data key are bound to: never an identity id,
    so neither opens as an identity's."""
    return f"account-face:{user_id}"


@dataclass(frozen=True)
class FaceCheck:
    """The outcome of checking an enrollment against its account's face."""

    decision: str  # "reference_set" | "match" | "refused" | "operator_declared"
    similarity: float | None = None  # to the reference; None when there was none
    threshold: float | None = None
    reason: str | None = None  # why it was refused, for people

    @property
    def refused(self) -> bool:
        return self.decision == "refused"

    def audit(
        self,
        user_id: str,
        capture: str,
        identity_id: str | None = None,
        consent_id: str | None = None,
    ) -> AuditEvent:
        """The record of this check: for an enrollment stored, its identity and the consent
        (for an operator, the consent it declared for the person)."""
        detail: dict[str, object] = {"decision": self.decision, "capture": capture}
        if self.similarity is not None:
            detail |= {"similarity": round(self.similarity, 4), "threshold": self.threshold}
        if identity_id is not None:
            detail |= {"identity": identity_id, "consent": consent_id}
        return AuditEvent(kind="account_face_check", subject=user_id, detail=detail)


def take_turn(session: Session, user_id: str) -> None:
    """A write on the user's row: the unit of work holds it until it ends (a row lock on
    PostgreSQL, the write lock on SQLite), so the account's face-data changes take turns,
    and what it reads afterwards was committed by those before it."""
    session.execute(update(User).where(User.id == user_id).values(kind=User.kind))


def check_account_face(
    session: Session, cipher: EmbeddingCipher, user_id: str, profile: IdentityProfile
) -> FaceCheck:
    """Check ``profile`` against the account's face, in the unit of work that stores the
    enrollment; sets the reference when the account has none. Its first statement is
    ``take_turn``, so concurrent enrollments of one account cannot both set a reference."""
    take_turn(session, user_id)
    kind = session.scalar(select(User.kind).where(User.id == user_id))
    if kind == OPERATOR:
        return FaceCheck("operator_declared")
    found = session.execute(
        select(AccountFace, AccountFaceKey.wrapped_key)
        .join(AccountFaceKey, AccountFaceKey.user_id == AccountFace.user_id)
        .where(AccountFace.user_id == user_id)
    ).first()
    if found is None:
        set_reference(session, cipher, user_id, profile)
        return FaceCheck("reference_set")
    reference, wrapped = found
    threshold = profile.match_threshold
    if (reference.backend, reference.embedding_dim) != (profile.backend, profile.embedding_dim):
        return FaceCheck(
            "refused",
            threshold=threshold,
            reason=f"this account's face was enrolled with the {reference.backend} face "
            f"backend and cannot be compared with {profile.backend}'s; erase your face data "
            "to enroll afresh",
        )
    subject = account_face_subject(user_id)
    score = similarity(
        cipher.decrypt(reference.embedding_encrypted, subject, wrapped), profile.embedding
    )
    if score >= threshold:
        return FaceCheck("match", score, threshold)
    return FaceCheck(
        "refused",
        score,
        threshold,
        f"this face is not the one this account holds (similarity {score:.3f}, "
        f"threshold {threshold}); a personal account enrolls its holder's face only. To "
        "enroll a different face, erase your face data first",
    )


def set_reference(
    session: Session, cipher: EmbeddingCipher, user_id: str, profile: IdentityProfile
) -> None:
    subject = account_face_subject(user_id)
    sealed, wrapped = cipher.seal(profile.embedding, subject)
    session.add(
        AccountFace(
            user_id=user_id,
            embedding_encrypted=sealed,
            embedding_dim=profile.embedding_dim,
            backend=profile.backend,
            model_id=profile.model_id,
        )
    )
    session.flush()  # the face row first: its key row refers to it
    session.add(AccountFaceKey(user_id=user_id, wrapped_key=wrapped))


def erase_account_face(session: Session, user_id: str, reason: str) -> bool:
    """Delete the reference face and its data key (crypto-shredding); True if there was one."""
    session.execute(delete(AccountFaceKey).where(AccountFaceKey.user_id == user_id))
    gone = session.scalars(
        delete(AccountFace).where(AccountFace.user_id == user_id).returning(AccountFace.user_id)
    ).all()
    if gone:
        session.add(
            AuditEvent(kind="account_face_erased", subject=user_id, detail={"reason": reason})
        )
    return bool(gone)


def erase_if_faceless(session: Session, user_id: str, reason: str) -> bool:
    """After an identity is erased: the account's face goes with its last identity."""
    if session.scalar(select(exists().where(Identity.user_id == user_id))):
        return False
    return erase_account_face(session, user_id, reason)
