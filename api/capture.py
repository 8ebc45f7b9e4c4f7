"""Head-turn challenges of the web gallery's camera capture (issue 19): chosen at random by
the server, single use, short-lived.

A challenge is issued to one user and stored as the SHA-256 of its nonce, so a copy of the
table answers none. Taking it deletes its row in the same statement that reads it: a
nonce is good for one capture, whatever that capture's outcome, and two requests racing
with one nonce cannot both have it. Issuing a challenge ends the user's earlier ones and
sweeps every expired one.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, or_
from sqlalchemy.orm import Session

from api.errors import ApiError
from api.tables import CaptureChallenge, utcnow
from identity.capture import new_challenge


class CaptureExpired(ApiError):
    """The capture's challenge is unknown, used, another user's, or past its time."""

    code = "capture_expired"
    status = 409


def _digest(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def issue_challenge(
    session: Session, user_id: str, steps: int, ttl_s: float
) -> tuple[str, tuple[str, ...], datetime]:
    """A new challenge for the user: (nonce, turns, expiry)."""
    now = utcnow()
    session.execute(
        delete(CaptureChallenge).where(
            or_(CaptureChallenge.user_id == user_id, CaptureChallenge.expires_at < now)
        )
    )
    nonce = secrets.token_urlsafe(32)
    turns = new_challenge(steps)
    expires_at = now + timedelta(seconds=ttl_s)
    session.add(
        CaptureChallenge(
            nonce_hash=_digest(nonce),
            user_id=user_id,
            steps={"items": list(turns)},
            created_at=now,
            expires_at=expires_at,
        )
    )
    return nonce, turns, expires_at


def take_challenge(session: Session, user_id: str, nonce: str) -> tuple[str, ...]:
    """The challenge's turns; it is used up. ``CaptureExpired`` when there is none to take."""
    taken = session.execute(
        delete(CaptureChallenge)
        .where(CaptureChallenge.nonce_hash == _digest(nonce), CaptureChallenge.user_id == user_id)
        .returning(CaptureChallenge.steps, CaptureChallenge.expires_at)
    ).first()
    if taken is None:
        raise CaptureExpired(
            "this capture's challenge is unknown or was already used: start the capture again"
        )
    steps, expires_at = taken
    if expires_at.tzinfo is None:  # SQLite's RETURNING bypasses the column type
        expires_at = expires_at.replace(tzinfo=utcnow().tzinfo)
    if expires_at < utcnow():
        raise CaptureExpired("this capture's challenge expired: start the capture again")
    return tuple(steps["items"])
