"""Erasing biometric data: an identity, its data key, every image and job derived from it,
and its files; with an account's last identity, the account's reference face
(api/account_face.py).

Rows go in one transaction; then ``finish_erasure`` deletes the files (a crash in
between leaves orphan files, which ``sweep_orphans`` removes) and checkpoints SQLite's
WAL. A running job of the identity loses its row, so its worker cannot commit
(``jobs.complete`` checks the row) and deletes what it wrote.

Erasure is final because the embedding's data key is destroyed with its row (crypto-
shredding, api/crypto.py): a copy of the ciphertext that outlives the delete opens with
nothing that is left. SQLite also zeroes deleted rows (secure_delete) and empties its WAL.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from api.account_face import erase_account_face, erase_if_faceless
from api.crypto import EmbeddingCipher
from api.db import Database
from api.storage import Storage
from api.tables import AuditEvent, Generation, Identity, IdentityKey, ImageRow, User, utcnow

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
    session.execute(delete(IdentityKey).where(IdentityKey.identity_id == identity.id))
    session.delete(identity)
    session.add(
        AuditEvent(
            kind="identity_erased",
            subject=identity.id,
            detail={"reason": reason, "images": len(keys), "jobs": jobs},
        )
    )
    session.flush()  # the identity is gone before its account is asked for others
    erase_if_faceless(session, identity.user_id, reason)
    return keys


def erase_user(session: Session, user: User) -> list[str]:
    keys = []
    for identity in session.scalars(select(Identity).where(Identity.user_id == user.id)).all():
        keys += erase_identity(session, identity, "user_deleted")
    erase_account_face(session, user.id, "user_deleted")
    session.execute(delete(Generation).where(Generation.user_id == user.id))
    session.delete(user)
    session.add(AuditEvent(kind="user_deleted", subject=user.id, detail={}))
    return keys


def finish_erasure(db: Database, storage: Storage, keys: list[str]) -> None:
    """After an erasure commits: delete its files, and leave no copy of the erased rows in
    SQLite's WAL (a copy of IMAGINE_HOME, such as a backup, would carry it)."""
    delete_files(storage, keys)
    if not db.checkpoint():
        log.warning("erasure: readers kept the SQLite WAL from being emptied; it will be later")


def delete_files(storage: Storage, keys: list[str]) -> None:
    for key in keys:
        storage.delete(key)


def seal_legacy_embeddings(db: Database, cipher: EmbeddingCipher) -> int:
    """Give each identity enrolled before data keys (migration 0004) one, so that erasing it
    destroys a key too; returns how many were resealed. Their earlier ciphertext, under the
    master key alone, may outlive this in PostgreSQL dead tuples and in backups: those copies
    open with the master key (README, "Biometric data lifecycle")."""
    resealed = 0
    with db.session() as session:
        legacy = session.execute(
            select(Identity.id, Identity.embedding_encrypted)
            .outerjoin(IdentityKey, IdentityKey.identity_id == Identity.id)
            .where(IdentityKey.identity_id.is_(None))
        ).all()
        for identity_id, blob in legacy:
            try:
                embedding = cipher.decrypt(blob, identity_id, None)
            except ValueError as err:
                log.warning("not resealed: %s", err)  # another key; its jobs fail as before
                continue
            sealed, wrapped = cipher.seal(embedding, identity_id)
            # Guarded by the old blob: another process that resealed it first wins.
            changed = session.connection().execute(
                update(Identity)
                .where(Identity.id == identity_id, Identity.embedding_encrypted == blob)
                .values(embedding_encrypted=sealed)
            )
            if changed.rowcount:
                session.add(IdentityKey(identity_id=identity_id, wrapped_key=wrapped))
                resealed += 1
    if resealed:
        db.checkpoint()  # the legacy ciphertext leaves SQLite's WAL too
    return resealed


def expired_identities(session: Session, retention_days: int) -> list[Identity]:
    cutoff = utcnow() - timedelta(days=retention_days)
    return list(session.scalars(select(Identity).where(Identity.last_used_at < cutoff)).all())


def sweep_orphans(session: Session, storage: Storage, now: float | None = None) -> int:
    """Delete stored files no image row points at (left by crashes between write and commit).

    Files younger than an hour (at ``now``, default the current time) are left alone: a
    worker may be about to commit them.
    """
    known = set(session.scalars(select(ImageRow.storage_key)))
    removed = 0
    for key in storage.keys() - known:
        if storage.age_seconds(key, now) > 3600:
            storage.delete(key)
            removed += 1
    return removed
