"""Erasing biometric data: an identity, every image and job derived from it, and its files.

Rows go in one transaction; then ``finish_erasure`` deletes the files (a crash in
between leaves orphan files, which ``sweep_orphans`` removes) and checkpoints SQLite's
WAL. A running job of the identity loses its row, so its worker cannot commit
(``jobs.complete`` checks the row) and deletes what it wrote.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from api.db import Database
from api.storage import FileStorage
from api.tables import AuditEvent, Generation, Identity, ImageRow, User, utcnow

log = logging.getLogger("api")


def erase_identity(session: Session, identity: Identity, reason: str) -> list[str]:
    """Delete the identity and everything derived; returns storage keys to delete after commit."""
    keys = list(
        session.scalars(select(ImageRow.storage_key).where(ImageRow.identity_id == identity.id))
    )
    session.execute(delete(ImageRow).where(ImageRow.identity_id == identity.id))
    jobs = len(
        session.scalars(
            delete(Generation).where(Generation.identity_id == identity.id).returning(Generation.id)
        ).all()
    )
    session.delete(identity)
    session.add(
        AuditEvent(
            kind="identity_erased",
            subject=identity.id,
            detail={"reason": reason, "images": len(keys), "jobs": jobs},
        )
    )
    return keys


def erase_user(session: Session, user: User) -> list[str]:
    keys = []
    for identity in session.scalars(select(Identity).where(Identity.user_id == user.id)).all():
        keys += erase_identity(session, identity, "user_deleted")
    session.execute(delete(Generation).where(Generation.user_id == user.id))
    session.delete(user)
    session.add(AuditEvent(kind="user_deleted", subject=user.id, detail={}))
    return keys


def finish_erasure(db: Database, storage: FileStorage, keys: list[str]) -> None:
    """After an erasure commits: delete its files, and leave no copy of the erased rows in
    SQLite's WAL (a copy of IMAGINE_HOME, such as a backup, would carry it)."""
    delete_files(storage, keys)
    if not db.checkpoint():
        log.warning("erasure: readers kept the SQLite WAL from being emptied; it will be later")


def delete_files(storage: FileStorage, keys: list[str]) -> None:
    for key in keys:
        storage.delete(key)


def expired_identities(session: Session, retention_days: int) -> list[Identity]:
    cutoff = utcnow() - timedelta(days=retention_days)
    return list(session.scalars(select(Identity).where(Identity.last_used_at < cutoff)).all())


def sweep_orphans(session: Session, storage: FileStorage) -> int:
    """Delete stored files no image row points at (left by crashes between write and commit).

    Files younger than an hour are left alone: a worker may be about to commit them.
    """
    known = set(session.scalars(select(ImageRow.storage_key)))
    removed = 0
    for key in storage.keys() - known:
        if storage.age_seconds(key) > 3600:
            storage.delete(key)
            removed += 1
    return removed
