"""Erasure is final (issue 16): afterwards nothing the service keeps opens the erased embedding.

An erased identity's ciphertext may outlive its row (SQLite free pages and WAL, PostgreSQL
dead tuples, backups); what must not outlive it is any key that opens it.
"""

from __future__ import annotations

import contextlib
import os
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi.testclient import TestClient
from sqlalchemy import LargeBinary, select, update

from api.auth import create_user
from api.cli import main
from api.crypto import KEY, NONCE, WRAPPED_KEY, EmbeddingCipher, load_key
from api.main import sweep_once
from api.services import Services
from api.tables import Base, Identity, IdentityKey, utcnow
from tests.api.conftest import auth, enroll, idle_client


def stored(services: Services, identity_id: str) -> tuple[bytes, bytes | None]:
    """(ciphertext, wrapped data key) of an identity, as the database holds them."""
    with services.db.session() as s:
        key = s.get(IdentityKey, identity_id)
        return s.get(Identity, identity_id).embedding_encrypted, key and key.wrapped_key


def files_under(home: Path) -> list[Path]:
    """Every file IMAGINE_HOME holds (not the shared model cache it links to)."""
    return [Path(root) / name for root, _, names in os.walk(home) for name in names]


def traces(home: Path, identity_id: str, blob: bytes, cipher: EmbeddingCipher) -> list[str]:
    """What the files under ``home`` still hold of an identity's embedding: copies of its
    ciphertext, and any run of bytes that opens with the master key as its data key or as
    its embedding (the format before data keys)."""
    found = []
    for path in files_under(home):
        data = path.read_bytes()
        if blob in data:
            found.append(f"{path.name}: the ciphertext")
        for i in range(len(data) - WRAPPED_KEY + 1):
            for size, opens in ((WRAPPED_KEY, cipher.unwrap), (len(blob), legacy(cipher))):
                try:
                    opens(data[i : i + size], identity_id)
                    found.append(f"{path.name}@{i}: {size} bytes open with the master key")
                except ValueError:
                    pass
    return found


def legacy(cipher: EmbeddingCipher):
    return lambda blob, identity_id: cipher.decrypt(blob, identity_id, None)


def erase(how: str, client: TestClient, services: Services, key: str, identity_id: str) -> None:
    if how == "request":
        assert client.delete(f"/v1/identities/{identity_id}", headers=auth(key)).status_code == 204
    elif how == "retention":
        with services.db.session() as s:
            s.execute(
                update(Identity)
                .where(Identity.id == identity_id)
                .values(last_used_at=utcnow() - timedelta(days=10_000))
            )
        assert sweep_once(services)["expired_identities"] == 1
    else:  # another process, beside the running server
        environ = {"IMAGINE_HOME": str(services.settings.home)}
        assert main(["users", "delete", "alice"], environ) == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("how", ["request", "retention", "users_delete"])
def test_no_file_under_home_opens_an_erased_embedding(make_services, how):
    services = make_services(database_url=None)  # the default: SQLite under IMAGINE_HOME
    home = services.settings.home
    with idle_client(services) as client:
        with services.db.session() as s:
            alice, bob = create_user(s, "alice")[1], create_user(s, "bob")[1]
        kept = enroll(client, bob)["id"]
        erased = enroll(client, alice)["id"]
        kept_blob, erased_blob = stored(services, kept)[0], stored(services, erased)[0]
        erase(how, client, services, alice, erased)
        # A copy of IMAGINE_HOME taken now (a backup of the running service)...
        assert traces(home, erased, erased_blob, services.cipher) == []
    services.db.engine.dispose()
    # ...and the files once the service has stopped.
    assert traces(home, erased, erased_blob, services.cipher) == []
    # The scan does find what was not erased: the ciphertext and its wrapped key.
    assert len(traces(home, kept, kept_blob, services.cipher)) == 2


def test_erasure_destroys_the_data_key(client, user_key, services):
    """On every backend: a captured ciphertext opens with nothing the database holds."""
    key = user_key("alice")
    enroll(client, key)  # another identity, whose key stays
    erased = enroll(client, key)["id"]
    blob, wrapped = stored(services, erased)
    assert wrapped is not None and len(wrapped) == WRAPPED_KEY
    assert services.cipher.decrypt(blob, erased, wrapped).shape == (128,)

    assert client.delete(f"/v1/identities/{erased}", headers=auth(key)).status_code == 204
    with services.db.session() as s:
        assert s.get(IdentityKey, erased) is None
        ids = [erased, *s.scalars(select(Identity.id))]
        values = [
            value
            for table in Base.metadata.sorted_tables
            for column in table.columns
            if isinstance(column.type, LargeBinary)
            for value in s.scalars(select(column))
            if value is not None  # identities.keypoints_encrypted: none with dlib
        ]
    candidates = [v for v in values if len(v) == KEY]  # any value taken as a raw key
    for value in values:  # any value unwrapped as some identity's data key
        for identity_id in ids:
            with contextlib.suppress(ValueError):
                candidates.append(services.cipher.unwrap(value, identity_id))
    assert len(candidates) == 1  # the other identity's data key
    for data_key in candidates:
        with pytest.raises(InvalidTag):
            AESGCM(data_key).decrypt(blob[:NONCE], blob[NONCE:], erased.encode())
    with pytest.raises(ValueError):
        services.cipher.decrypt(blob, erased, None)  # nor does the master key alone


def test_embeddings_enrolled_before_data_keys_are_resealed_at_start(make_services, user_key):
    """Migration 0004 cannot give old identities a data key (it has no master key); the next
    start does, and until then they open with the master key as before."""
    services = make_services()
    with idle_client(services) as client:
        identity_id = enroll(client, user_key("alice"))["id"]
    blob, wrapped = stored(services, identity_id)
    embedding = services.cipher.decrypt(blob, identity_id, wrapped)
    # Make it what an older release stored: the embedding under the master key, no key row.
    old = legacy_blob(services, embedding, identity_id)
    with services.db.session() as s:
        s.delete(s.get(IdentityKey, identity_id))
        s.get(Identity, identity_id).embedding_encrypted = old
    assert (services.cipher.decrypt(old, identity_id, None) == embedding).all()

    restarted = make_services()
    blob, wrapped = stored(restarted, identity_id)
    assert wrapped is not None and blob != old
    assert (restarted.cipher.decrypt(blob, identity_id, wrapped) == embedding).all()
    with pytest.raises(ValueError):
        restarted.cipher.decrypt(blob, identity_id, None)


def legacy_blob(services: Services, embedding, identity_id: str) -> bytes:
    """The format before data keys: nonce + AES-GCM(master key, embedding, identity id)."""
    master = AESGCM(load_key(None, None, services.settings.home))
    nonce = os.urandom(NONCE)
    return nonce + master.encrypt(nonce, embedding.astype("<f4").tobytes(), identity_id.encode())
