"""Browser sign-in: an API key exchanged for a session cookie, and its CSRF token.

The cookie carries 256 random bits; the database keeps only their SHA-256 (as
for API keys), so a copy of the database signs nobody in. A session ends at
sign-out, when its user is deleted, or ``session_hours`` after sign-in.

State-changing requests authenticated by the cookie must send the session's
CSRF token in ``X-CSRF-Token`` (a synchronizer token: the page reads it from
``GET /v1/session``, which another origin cannot read). The token is an HMAC
of the cookie's secret, so it needs no storage and dies with the session.
Requests with a bearer API key need none: browsers never add that header on
their own.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Connection, Table, bindparam, delete, select
from sqlalchemy.orm import Session

from api.auth import Account, Unauthorized
from api.errors import ApiError, InvalidAddress
from api.region.address import IPNetwork, parse_ip
from api.tables import User, WebSession, utcnow

COOKIE = "imagine_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CsrfRefused(ApiError):
    """A cookie-authenticated request that changes state came without the session's token."""

    code = "csrf_failed"
    status = 403


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token(token: str) -> str:
    """The CSRF token of the session whose cookie holds ``token``."""
    return hmac.new(token.encode(), b"imagine-csrf", hashlib.sha256).hexdigest()


def start_session(session: Session, user: Account, hours: float) -> tuple[str, WebSession]:
    """A new session for ``user``: (the cookie's token, returned once; the row)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    row = WebSession(
        token_hash=_hash(token),
        user_id=user.id,
        created_at=now,
        expires_at=now + timedelta(hours=hours),
    )
    session.add(row)
    return token, row


# Every request signed in by cookie runs this: built once, on the tables' columns (Core).
_SESSION = cast(Table, WebSession.__table__).c
_USER = cast(Table, User.__table__).c
SESSION_USER = (
    select(_USER.id, _USER.name, _SESSION.expires_at)
    .join_from(WebSession.__table__, User.__table__, _SESSION.user_id == _USER.id)
    .where(_SESSION.token_hash == bindparam("token_hash"))
)


def session_for_token(db: Session | Connection, token: str) -> tuple[Account, datetime]:
    """The signed-in user and when their session ends, or Unauthorized when it is unknown
    or has ended."""
    row = db.execute(SESSION_USER, {"token_hash": _hash(token)}).first()
    if row is None or row.expires_at <= utcnow():
        raise Unauthorized("your session has ended; sign in again")
    return Account(row.id, row.name), row.expires_at


def check_csrf(token: str, sent: str | None) -> None:
    if not sent or not hmac.compare_digest(sent, csrf_token(token)):
        raise CsrfRefused(
            f"this request needs the {CSRF_HEADER} header of your session (GET /v1/session)"
        )


def end_session(session: Session, token: str) -> None:
    session.execute(delete(WebSession).where(WebSession.token_hash == _hash(token)))


def delete_expired_sessions(session: Session) -> int:
    result = session.execute(delete(WebSession).where(WebSession.expires_at <= utcnow()))
    return int(getattr(result, "rowcount", 0) or 0)


def came_over_https(
    scheme: str, peer: str | None, forwarded_proto: str | None, trusted: tuple[IPNetwork, ...]
) -> bool:
    """Whether the browser used HTTPS: the connection's own scheme, or the
    ``X-Forwarded-Proto`` of a trusted proxy (its last value: the one that proxy wrote)."""
    if scheme == "https":
        return True
    if not peer or not forwarded_proto:
        return False
    try:
        address = parse_ip(peer)
    except InvalidAddress:
        return False
    if not any(address.version == net.version and address in net for net in trusted):
        return False
    return forwarded_proto.split(",")[-1].strip().lower() == "https"
