"""Adding photos to an identity, and replacing them (issue 20), on SQLite and PostgreSQL:
the face becomes the profile of all its photos, a refused photo changes nothing, another
user's identity is not found, and live capture, when required, is not bypassed."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.account_face import take_turn
from api.services import Services
from api.tables import AuditEvent, Identity, IdentityKey
from identity.enrollment import enroll as enroll_photos
from identity.enrollment import similarity
from tests.api.conftest import WAIT_S, auth, enroll, idle_client
from tests.api.test_live_capture import capture, challenge, following
from tests.photos import astronaut, astronaut_image, astronaut_reframed, encode, group, hopper


@pytest.fixture
def client(idle):
    return idle


@pytest.fixture
def keys(accounts) -> dict[str, str]:
    return accounts


def send(client: TestClient, key: str, identity_id: str, photos: list[bytes], method="POST"):
    return client.request(
        method,
        f"/v1/identities/{identity_id}/photos",
        headers=auth(key),
        files=[("photos", (f"p{i}.jpg", p, "image/jpeg")) for i, p in enumerate(photos)],
    )


def larger() -> bytes:
    """A third photo of the astronaut: upscaled, so the face differs a little in pixels."""
    return encode(astronaut_image().resize((640, 640)))


def stored(services, identity_id: str) -> tuple:
    """Everything the identity keeps: refusals must leave each of these as it was."""
    with services.db.session() as s:
        row = s.get(Identity, identity_id)
        key = s.get(IdentityKey, identity_id)
        return (
            row.embedding_encrypted,
            row.keypoints_encrypted,
            key.wrapped_key,
            row.photos,
            row.capture,
            row.last_used_at,
        )


def face(services, identity_id: str) -> np.ndarray:
    with services.db.session() as s:
        row, key = s.get(Identity, identity_id), s.get(IdentityKey, identity_id)
        return services.cipher.decrypt(row.embedding_encrypted, row.id, key.wrapped_key)


def photo_audits(services) -> list[dict]:
    with services.db.session() as s:
        events = s.scalars(
            select(AuditEvent).where(AuditEvent.kind == "identity_photos").order_by(AuditEvent.id)
        )
        return [e.detail | {"subject": e.subject} for e in events]


def test_added_photos_join_the_identitys_face(client, keys, services):
    alice = keys["alice"]
    first = enroll(client, alice)
    before = face(services, first["id"])
    r = send(client, alice, first["id"], [astronaut_reframed(), larger()])
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["id"], body["name"], body["capture"]) == (first["id"], None, "upload")
    assert len(body["photos"]) == 3 and body["photos"][0] == first["photos"][0]
    listed = client.get(f"/v1/identities/{first['id']}", headers=auth(alice)).json()
    assert len(listed["photos"]) == 3

    # The face is the profile of the three photos enrolled together, re-sealed under a new key
    after = face(services, first["id"])
    together = enroll_photos([astronaut(), astronaut_reframed(), larger()], services.analyzer())
    np.testing.assert_allclose(after, together.embedding, atol=1e-5)
    assert similarity(before, after) >= 0.91 and not np.allclose(before, after)

    [audit] = photo_audits(services)
    assert audit["decision"] == "stored" and audit["action"] == "add"
    assert (audit["photos"], audit["total"], audit["subject"]) == (2, 3, first["id"])
    assert audit["similarity"] >= audit["threshold"] == 0.91
    with services.db.session() as s:
        check = s.scalars(
            select(AuditEvent)
            .where(AuditEvent.kind == "account_face_check")
            .order_by(AuditEvent.id.desc())
        ).first()
        assert check.detail["decision"] == "match" and check.detail["identity"] == first["id"]

    # An identity holds at most the enrollment's number of photos
    full = send(client, alice, first["id"], [astronaut(), astronaut(), astronaut()])
    assert full.status_code == 400 and full.json()["error"]["code"] == "too_many_photos"
    assert "add at most 2" in full.json()["error"]["message"]


def test_a_refused_photo_leaves_the_identity_as_it_was(client, keys, services):
    alice, studio = keys["alice"], keys["studio"]
    mine = enroll(client, alice)
    theirs = enroll(client, studio)  # an operator's: not held to an account face
    for key, identity in ((alice, mine), (studio, theirs)):
        was = stored(services, identity["id"])
        other = send(client, key, identity["id"], [astronaut_reframed(), hopper()])
        assert other.status_code == 422  # two people in one set: enrollment's own check
        assert other.json()["error"] | {"message": ""} == {
            "code": "identity_mismatch",
            "message": "",
            "photo": 1,
        }
        crowd = send(client, key, identity["id"], [astronaut_reframed(), group()])
        assert crowd.json()["error"]["code"] == "multiple_faces"
        assert crowd.json()["error"]["photo"] == 1
        someone = send(client, key, identity["id"], [hopper()], method="PUT")
        assert someone.status_code == 422
        error = someone.json()["error"]
        assert (error["code"], error["photo"]) == ("not_same_face", 0)
        assert "not the face this identity holds" in error["message"]
        assert stored(services, identity["id"]) == was
    refusals = photo_audits(services)
    assert [(a["decision"], a["code"], a["action"]) for a in refusals] == [
        ("refused", "not_same_face", "replace")
    ] * 2
    assert all(a["similarity"] < 0.91 for a in refusals)
    assert "embedding" not in repr(refusals)


def test_another_users_identity_is_not_found(client, keys):
    alices = enroll(client, keys["alice"])
    for method in ("POST", "PUT"):
        for identity_id in (alices["id"], "idn_nothing"):
            r = send(client, keys["bob"], identity_id, [astronaut()], method)
            assert r.status_code == 404
            assert r.json() == {"error": {"code": "not_found", "message": "no such identity"}}


def test_replacing_makes_the_face_afresh_and_keeps_the_identity(client, keys, services):
    alice = keys["alice"]
    version = client.get("/v1/consent").json()["version"]
    first = client.post(
        "/v1/identities",
        headers=auth(alice),
        files=[("photos", (f"p{i}.jpg", p, "image/jpeg")) for i, p in enumerate([astronaut()])],
        data={"consent": "true", "consent_version": version, "residence": "US-CA"} | {"name": "Me"},
    ).json()
    send(client, alice, first["id"], [astronaut_reframed()])
    key_before = stored(services, first["id"])[2]
    r = send(client, alice, first["id"], [larger()], method="PUT")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["id"], body["name"], len(body["photos"])) == (first["id"], "Me", 1)
    assert body["consent_version"] == first["consent_version"]
    np.testing.assert_allclose(
        face(services, first["id"]), enroll_photos([larger()], services.analyzer()).embedding
    )
    assert stored(services, first["id"])[2] != key_before  # the old profile's key is gone
    assert [a["action"] for a in photo_audits(services)] == ["add", "replace"]


def analysed(*each: Services, timeout: float = WAIT_S) -> None:
    """Until each of ``each`` has taken and released its enrollment lock: photos analysed."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < len(each) or any(s.enroll_lock.locked() for s in each):
        assert time.monotonic() < deadline, "the photos were never analysed"
        seen |= {i for i, s in enumerate(each) if s.enroll_lock.locked()}
        time.sleep(0.001)


def test_concurrent_additions_keep_every_photo(client, keys, services, make_services):
    """Two additions to one identity through two API processes' services on one database,
    held until both have analysed their photo, as behind another change of the account:
    the second reads the first's result (SQLite and PostgreSQL), and none is lost."""
    alice = keys["alice"]
    identity = enroll(client, alice)
    other = make_services()
    answers: list[int] = []
    with idle_client(other) as c2:
        threads = [
            threading.Thread(
                target=lambda c=c, p=p: answers.append(
                    send(c, alice, identity["id"], [p]).status_code
                )
            )
            for c, p in ((client, astronaut_reframed()), (c2, larger()))
        ]
        with services.db.session() as s:
            take_turn(s, s.scalar(select(Identity.user_id).where(Identity.id == identity["id"])))
            for t in threads:
                t.start()
            analysed(services, other)
            time.sleep(0.2)  # both are at the account's turn
        for t in threads:
            t.join()
    assert answers == [200, 200]
    listed = client.get(f"/v1/identities/{identity['id']}", headers=auth(alice)).json()
    assert len(listed["photos"]) == 3
    assert sorted(a["total"] for a in photo_audits(services)) == [2, 3]


def test_a_live_capture_with_photos_added_is_an_upload_and_live_can_be_required(
    client, keys, services, make_services
):
    alice, studio = keys["alice"], keys["studio"]
    c = challenge(client, alice)
    live = capture(client, alice, c["nonce"], following(c["steps"])).json()
    assert live["capture"] == "live"
    added = send(client, alice, live["id"], [astronaut_reframed()])
    assert added.status_code == 200, added.text
    assert added.json()["capture"] == "upload"  # no longer a camera capture alone
    theirs = enroll(client, studio)

    strict = make_services(require_live_capture=True)  # the same database, now live-only
    with idle_client(strict) as c2:
        for method in ("POST", "PUT"):
            refused = send(c2, alice, live["id"], [astronaut()], method)
            assert refused.status_code == 403
            assert refused.json()["error"]["code"] == "live_capture_required"
        assert send(c2, studio, theirs["id"], [astronaut_reframed()]).status_code == 200
