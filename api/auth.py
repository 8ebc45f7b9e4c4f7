"""API keys: shown once at creation, stored as SHA-256 (keys carry 256 random bits)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from api.errors import ApiError
from api.tables import User, new_id

KEY_PREFIX = "imk_"


class Unauthorized(ApiError):
    code = "unauthorized"
    status = 401


class UserExists(ApiError):
    code = "user_exists"
    status = 409


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_user(session: Session, name: str, kind: str = "personal") -> tuple[User, str]:
    """A new user and their API key (returned once; only its hash is stored). ``kind`` is
    ``personal`` (enrolls its holder's face only) or ``operator`` (api/account_face.py)."""
    name = name.strip()
    if not name or len(name) > 200:
        raise ApiError("a user name is 1-200 characters", code="invalid_name")
    if session.scalar(select(User).where(User.name == name)) is not None:
        raise UserExists(f"a user named {name!r} already exists")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    user = User(id=new_id("usr"), name=name, key_hash=hash_key(key), kind=kind)
    session.add(user)
    return user, key


def bearer_key(authorization: str | None) -> str:
    """The key of an ``Authorization: Bearer <key>`` header, or Unauthorized."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Unauthorized("send your API key as 'Authorization: Bearer <key>'")
    return authorization[7:].strip()


@dataclass(frozen=True)
class Account:
    """Who a request acts for: what routes need of its ``users`` row."""

    id: str
    name: str


# Every request runs this, so it is built once and selects plain columns: building a
# statement, or an ORM object from its row, costs more than running it.
_users = User.__table__.c
ACCOUNT_BY_KEY = select(_users.id, _users.name).where(_users.key_hash == bindparam("key_hash"))


def user_for_key(db: Session | Connection, authorization: str | None) -> Account:
    key = bearer_key(authorization)
    row = db.execute(ACCOUNT_BY_KEY, {"key_hash": hash_key(key)}).first()
    if row is None:
        raise Unauthorized("unknown API key")
    return Account(row.id, row.name)
