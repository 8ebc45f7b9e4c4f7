"""Database tables. The job row is the source of truth; executors only run work and report back.

Schema changes go through Alembic (``api/migrations``); ``tests/api/test_migrations.py``
checks that the migrations produce exactly these tables.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(12)}"


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map: ClassVar = {datetime: UTCDateTime, dict[str, Any]: JSON}


class User(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of the API key
    # "personal": enrolls its holder's face only (api/account_face.py); "operator": may enroll
    # other people's faces on their declared consent (studios, batch campaigns)
    kind: Mapped[str] = mapped_column(String(16), default="personal", server_default="personal")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebSession(Base):
    """A browser sign-in (api/sessions.py): only the SHA-256 of the cookie's token is stored."""

    __tablename__ = "web_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class Consent(Base):
    """Append-only: one row per consent given; never updated, kept after erasure (no biometrics)."""

    __tablename__ = "consents"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(32), index=True)
    policy_version: Mapped[str] = mapped_column(String(64))
    text_sha256: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(Text)
    retention_days: Mapped[int] = mapped_column(Integer)
    residence: Mapped[str] = mapped_column(String(16))
    gate_decision: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


NAME_CHARS = 80  # an identity's name, e.g. "Beach photos, May"


class Identity(Base):
    __tablename__ = "identities"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    consent_id: Mapped[str] = mapped_column(String(32))
    residence: Mapped[str] = mapped_column(String(16))
    # AES-GCM under the data key in identity_keys (legacy: under the master key), api/crypto.py
    embedding_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    embedding_dim: Mapped[int] = mapped_column(Integer)
    # InstantID's five face keypoints, sealed like the embedding; None when the backend
    # gave none (dlib) or the identity was enrolled before migration 0008
    keypoints_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    backend: Mapped[str] = mapped_column(String(32))
    model_id: Mapped[str] = mapped_column(String(128))
    photos: Mapped[dict[str, Any]] = mapped_column()  # per-photo quality figures, no pixels
    name: Mapped[str | None] = mapped_column(String(NAME_CHARS), default=None)  # the user's
    capture: Mapped[str] = mapped_column(String(16), default="upload", server_default="upload")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(default=utcnow)


class IdentityKey(Base):
    """An identity's data key, wrapped by the master key (api/crypto.py). Kept apart from the
    ciphertext so that erasure destroys it: leftover copies of the ciphertext then have no key."""

    __tablename__ = "identity_keys"
    identity_id: Mapped[str] = mapped_column(
        ForeignKey("identities.id", ondelete="CASCADE"), primary_key=True
    )
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)  # 60 bytes: nonce, key, tag
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AccountFace(Base):
    """A personal account's reference face: the embedding of its first enrollment, which
    every later one must match (issue 19). Sealed like an identity's embedding, bound to
    ``account_face_subject(user_id)``; erased with the account's last identity."""

    __tablename__ = "account_faces"
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    embedding_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    embedding_dim: Mapped[int] = mapped_column(Integer)
    backend: Mapped[str] = mapped_column(String(32))
    model_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AccountFaceKey(Base):
    """The reference face's data key, wrapped by the master key, apart from its ciphertext
    (as ``identity_keys``): erasure destroys it."""

    __tablename__ = "account_face_keys"
    user_id: Mapped[str] = mapped_column(
        ForeignKey("account_faces.user_id", ondelete="CASCADE"), primary_key=True
    )
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)  # 60 bytes: nonce, key, tag
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CaptureChallenge(Base):
    """A head-turn challenge of the camera capture, single use: taken by deleting its row."""

    __tablename__ = "capture_challenges"
    nonce_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    steps: Mapped[dict[str, Any]] = mapped_column()  # {"items": ["left", "right"]}
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class Generation(Base):
    """A job. queued -> running -> succeeded | failed | cancelled."""

    __tablename__ = "generations"
    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key", name="uq_generation_idempotency"),
        Index("ix_generation_claim", "status", "created_at"),
        Index("ix_generation_user_status", "user_id", "status"),  # the per-user queue cap
        Index("ix_generation_user_started", "user_id", "started_at"),  # users served in turn
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    identity_id: Mapped[str] = mapped_column(
        ForeignKey("identities.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), default="queued")
    request: Mapped[dict[str, Any]] = mapped_column()  # the validated request body
    expanded: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # 0..1
    step: Mapped[int] = mapped_column(Integer, default=0)
    total_steps: Mapped[int] = mapped_column(Integer, default=0)
    error_code: Mapped[str | None] = mapped_column(String(64), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    warnings: Mapped[dict[str, Any] | None] = mapped_column(default=None)  # {"items": [...]}
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(64), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), default=None)
    request_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class ImageRow(Base):
    __tablename__ = "images"
    __table_args__ = (Index("ix_images_gallery", "user_id", "created_at", "id"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    generation_id: Mapped[str] = mapped_column(
        ForeignKey("generations.id", ondelete="CASCADE"), index=True
    )
    identity_id: Mapped[str] = mapped_column(
        ForeignKey("identities.id", ondelete="CASCADE"), index=True
    )
    index: Mapped[int] = mapped_column(Integer)
    storage_key: Mapped[str] = mapped_column(String(128), unique=True)  # random, never client-given
    seed: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    identity_similarity: Mapped[float | None] = mapped_column(Float, default=None)
    meta: Mapped[dict[str, Any]] = mapped_column()  # the sidecar, as `imagine generate` writes it
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    """Erasures, retention sweeps and requeues; never biometric data or full addresses."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(64))  # an id, e.g. idn_..., gen_...
    detail: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
