"""One face per personal account (issue 19): an account makes images of its holder only."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from api.auth import create_user
from api.cli import main
from api.main import sweep_once
from api.tables import AccountFace, AccountFaceKey, AuditEvent, Consent, Identity, utcnow
from tests.api.conftest import auth, enroll, idle_client
from tests.api.test_erasure import traces
from tests.photos import astronaut, astronaut_reframed, hopper


@pytest.fixture
def client(idle):
    return idle


@pytest.fixture
def keys(accounts) -> dict[str, str]:
    return accounts


def post(client: TestClient, key: str, photo: bytes):
    version = client.get("/v1/consent").json()["version"]
    return client.post(
        "/v1/identities",
        headers=auth(key),
        files=[("photos", ("p.jpg", photo, "image/jpeg"))],
        data={"consent": "true", "consent_version": version, "residence": "US-CA"},
    )


def checks(services, user_name: str) -> list[dict]:
    with services.db.session() as s:
        events = s.scalars(
            select(AuditEvent)
            .where(AuditEvent.kind == "account_face_check")
            .order_by(AuditEvent.id)
        ).all()
        return [e.detail | {"subject": e.subject} for e in events]


def reference(services) -> list[str]:
    with services.db.session() as s:
        faces = s.scalars(select(AccountFace.user_id)).all()
        assert sorted(faces) == sorted(s.scalars(select(AccountFaceKey.user_id)).all())
        return list(faces)


def test_a_personal_account_enrolls_its_holders_face_only(client, keys, services):
    alice = keys["alice"]
    first = enroll(client, alice)  # sets the account's face
    assert first["capture"] == "upload"
    again = enroll(client, alice, [astronaut_reframed()])  # another photo of her: a match
    refused = post(client, alice, hopper())  # someone else, right after her own
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["code"] == "not_account_face"
    assert "not the one this account holds" in error["message"]
    assert "erase your face data first" in error["message"]
    listed = client.get("/v1/identities", headers=auth(alice)).json()
    assert [i["id"] for i in listed] == [again["id"], first["id"]]  # nothing stored

    audit = checks(services, "alice")
    assert [a["decision"] for a in audit] == ["reference_set", "match", "refused"]
    assert audit[0]["identity"] == first["id"] and "similarity" not in audit[0]
    assert audit[1]["similarity"] >= audit[1]["threshold"] == 0.91
    assert audit[2]["similarity"] < 0.91 and "identity" not in audit[2]
    for a in audit:  # a decision and a score, never the embedding
        assert set(a) <= {
            *("decision", "capture", "similarity", "threshold"),
            *("identity", "consent", "subject"),
        }


def test_erasing_every_identity_erases_the_account_face(client, keys, services):
    alice = keys["alice"]
    one, two = enroll(client, alice), enroll(client, alice, [astronaut_reframed()])
    with services.db.session() as s:
        [owner] = reference(services)
        blob = s.get(AccountFace, owner).embedding_encrypted
    assert client.delete(f"/v1/identities/{one['id']}", headers=auth(alice)).status_code == 204
    assert reference(services) == [owner]  # she still holds a face
    assert post(client, alice, hopper()).json()["error"]["code"] == "not_account_face"
    assert client.delete(f"/v1/identities/{two['id']}", headers=auth(alice)).status_code == 204
    assert reference(services) == []
    # A person may change their mind: the next enrollment sets the account's face afresh.
    enroll(client, alice, [hopper()])
    assert post(client, alice, astronaut()).json()["error"]["code"] == "not_account_face"
    with services.db.session() as s:
        erased = s.scalars(select(AuditEvent).where(AuditEvent.kind == "account_face_erased"))
        assert [e.detail for e in erased] == [{"reason": "user_request"}]
    if services.db.engine.dialect.name == "sqlite":  # no file under home opens the old face
        subject = f"account-face:{owner}"
        assert traces(services.settings.home, subject, blob, services.cipher) == []


@pytest.mark.parametrize("how", ["retention", "users_delete"])
def test_the_sweep_and_users_delete_erase_the_account_face(client, keys, services, how):
    identity = enroll(client, keys["alice"])
    assert len(reference(services)) == 1
    if how == "retention":
        with services.db.session() as s:
            s.execute(
                update(Identity)
                .where(Identity.id == identity["id"])
                .values(last_used_at=utcnow() - timedelta(days=10_000))
            )
        assert sweep_once(services)["expired_identities"] == 1
    else:
        environ = {
            "IMAGINE_HOME": str(services.settings.home),
            "IMAGINE_DATABASE_URL": services.settings.database,
        }
        assert main(["users", "delete", "alice"], environ) == 0
    assert reference(services) == []


def test_an_operator_enrolls_other_people_on_declared_consent(client, keys, services):
    studio = keys["studio"]
    enroll(client, studio)
    enroll(client, studio, [hopper()])
    assert reference(services) == []  # an operator holds no face of its own
    audit = checks(services, "studio")
    assert [a["decision"] for a in audit] == ["operator_declared", "operator_declared"]
    with services.db.session() as s:  # each with the consent the operator declared
        declared = {c.id: c.policy_version for c in s.scalars(select(Consent))}
    assert [declared[a["consent"]] for a in audit] == [services.consent.version] * 2


def test_concurrent_first_enrollments_set_one_face(client, keys, services):
    """Two different faces sent at once to a new personal account: one is its face, the
    other is refused; never both, never a 500 (SQLite and PostgreSQL)."""
    answers: list[int] = []
    threads = [
        threading.Thread(
            target=lambda p=p: answers.append(post(client, keys["alice"], p).status_code)
        )
        for p in (astronaut(), hopper())
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [201, 422]
    assert len(reference(services)) == 1


def test_live_capture_can_be_required_of_personal_accounts(make_services):
    services = make_services(require_live_capture=True)
    with services.db.session() as s:
        alice, studio = create_user(s, "alice")[1], create_user(s, "studio", "operator")[1]
    with idle_client(services) as client:
        refused = post(client, alice, astronaut())
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "live_capture_required"
        assert post(client, studio, astronaut()).status_code == 201  # batch campaigns go on
        assert client.get("/v1/limits").json()["require_live_capture"] is True


def test_users_create_operator(services, capsys):
    environ = {
        "IMAGINE_HOME": str(services.settings.home),
        "IMAGINE_DATABASE_URL": services.settings.database,
    }
    import json

    assert main(["users", "create", "studio", "--operator", "--json"], environ) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "operator"
    assert main(["users", "create", "bob", "--json"], environ) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "personal"
