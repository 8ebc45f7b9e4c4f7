"""Browser sign-in: the session cookie, its flags, CSRF on state-changing requests, sign-out."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from api.auth import create_user
from api.main import create_app, sweep_once
from api.tables import WebSession, utcnow
from tests.api.conftest import auth
from tests.photos import astronaut

COOKIE = "imagine_session"


@pytest.fixture
def app(make_services):
    services = make_services(executor="null", trusted_proxies=("10.0.0.0/8",))
    app = create_app(services)
    with services.db.session() as s:
        app.state.keys = {name: create_user(s, name)[1] for name in ("alice", "bob")}
    return app


@pytest.fixture
def client(app):
    with TestClient(app, client=("127.0.0.1", 50000)) as c:
        yield c


def keys(app) -> dict[str, str]:
    return app.state.keys


def sign_in(client: TestClient, key: str) -> dict:
    r = client.post("/v1/session", json={"api_key": key})
    assert r.status_code == 201, r.text
    return r.json()


def sessions_stored(app) -> list[WebSession]:
    with app.state.services.db.session() as s:
        return list(s.scalars(select(WebSession)))


def test_sign_in_sets_an_http_only_strict_cookie_and_stores_only_its_hash(app, client):
    r = client.post("/v1/session", json={"api_key": keys(app)["alice"]})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["user"] == "alice" and len(body["csrf_token"]) == 64
    cookie = r.headers["set-cookie"]
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "samesite", "path", "max-age"} <= flags
    assert "samesite=strict" in cookie.lower() and "max-age=43200" in cookie.lower()
    assert "secure" not in flags  # plain HTTP: a Secure cookie would never come back

    token = client.cookies[COOKIE]
    [row] = sessions_stored(app)
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest() != token
    # the cookie alone is enough to read
    assert client.get("/v1/gallery").status_code == 200
    assert client.get("/v1/session").json()["csrf_token"] == body["csrf_token"]


def test_cookie_is_secure_over_https_and_behind_a_trusted_proxy_only(app):
    key = keys(app)["alice"]
    cases = [
        (TestClient(app, base_url="https://testserver"), {}, True),
        (TestClient(app, client=("10.1.2.3", 1)), {"X-Forwarded-Proto": "https"}, True),
        (TestClient(app, client=("10.1.2.3", 1)), {"X-Forwarded-Proto": "http"}, False),
        # a client that is not a trusted proxy cannot claim HTTPS
        (TestClient(app, client=("127.0.0.1", 1)), {"X-Forwarded-Proto": "https"}, False),
    ]
    for client, headers, secure in cases:
        r = client.post("/v1/session", json={"api_key": key}, headers=headers)
        assert r.status_code == 201
        flags = [p.strip().lower() for p in r.headers["set-cookie"].split(";")]
        assert ("secure" in flags) is secure, (headers, flags)


def test_a_wrong_key_sets_no_cookie(client):
    r = client.post("/v1/session", json={"api_key": "imk_not-a-key"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    assert "set-cookie" not in r.headers
    assert client.get("/v1/session").status_code == 401
    assert client.get("/v1/gallery").status_code == 401


def test_state_changing_cookie_requests_need_the_csrf_token(app, client):
    csrf = sign_in(client, keys(app)["alice"])["csrf_token"]
    version = client.get("/v1/consent").json()["version"]
    form = {"consent": "true", "consent_version": version, "residence": "US-CA"}
    files = [("photos", ("me.jpg", astronaut(), "image/jpeg"))]

    for headers in ({}, {"X-CSRF-Token": "0" * 64}):
        for r in (
            client.post("/v1/identities", files=files, data=form, headers=headers),
            client.delete("/v1/images/img_whatever", headers=headers),
            client.post(
                "/v1/generations", json={"identity_id": "x", "prompt": "me"}, headers=headers
            ),
        ):
            assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed", r.text
    assert client.get("/v1/identities").json() == []  # nothing was enrolled

    ok = {"X-CSRF-Token": csrf}
    r = client.post("/v1/identities", files=files, data=form, headers=ok)
    assert r.status_code == 201, r.text
    assert [i["id"] for i in client.get("/v1/identities").json()] == [r.json()["id"]]
    assert client.delete("/v1/images/img_whatever", headers=ok).status_code == 404

    # an API key needs no CSRF token, and it wins over a cookie: bob sees bob's data
    bob = auth(keys(app)["bob"])
    assert client.delete("/v1/images/img_whatever", headers=bob).status_code == 404
    assert client.get("/v1/identities", headers=bob).json() == []


def test_the_csrf_token_belongs_to_one_session(app):
    alice = TestClient(app, client=("127.0.0.1", 1))
    bob = TestClient(app, client=("127.0.0.1", 2))
    sign_in(alice, keys(app)["alice"])
    bobs_token = sign_in(bob, keys(app)["bob"])["csrf_token"]
    r = alice.delete("/v1/images/img_whatever", headers={"X-CSRF-Token": bobs_token})
    assert r.status_code == 403


def test_sign_out_ends_the_session_on_the_server(app, client):
    csrf = sign_in(client, keys(app)["alice"])["csrf_token"]
    token = client.cookies[COOKIE]
    assert client.delete("/v1/session").status_code == 403  # sign-out needs the token too
    r = client.delete("/v1/session", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 204
    assert (
        f"{COOKIE}=" in r.headers["set-cookie"] and "max-age=0" in r.headers["set-cookie"].lower()
    )
    assert sessions_stored(app) == []

    # a copy of the old cookie is worth nothing now
    stale = TestClient(app, client=("127.0.0.1", 3), cookies={COOKIE: token})
    assert stale.get("/v1/gallery").status_code == 401
    assert stale.get("/v1/session").status_code == 401


def test_signing_in_again_replaces_the_session(app, client):
    sign_in(client, keys(app)["alice"])
    first = client.cookies[COOKIE]
    sign_in(client, keys(app)["alice"])  # sends the first cookie along
    assert client.cookies[COOKIE] != first
    assert len(sessions_stored(app)) == 1


def test_expired_sessions_are_refused_and_swept(app, client):
    sign_in(client, keys(app)["alice"])
    services = app.state.services
    with services.db.session() as s:
        s.execute(update(WebSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    r = client.get("/v1/gallery")
    assert r.status_code == 401 and "sign in again" in r.json()["error"]["message"]
    assert sweep_once(services)["expired_sessions"] == 1
    with services.db.session() as s:
        assert s.scalar(select(func.count()).select_from(WebSession)) == 0
