"""Enrollment from a camera capture through the API (issue 19): a fresh, single-use head-turn
challenge, frames that follow it, and a ``live`` identity; every failure says its step."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from api.auth import create_user
from api.tables import AuditEvent, CaptureChallenge, utcnow
from tests.api.conftest import auth, enroll, idle_client
from tests.capture_frames import PEAK, head_turns
from tests.photos import hopper

SIDE = {"left": PEAK, "right": -PEAK}


@pytest.fixture
def client(idle):
    return idle


@pytest.fixture
def alice(services) -> str:
    with services.db.session() as s:
        return create_user(s, "alice")[1]


def challenge(client: TestClient, key: str) -> dict:
    r = client.post("/v1/identities/live/challenge", headers=auth(key))
    assert r.status_code == 201, r.text
    return r.json()


def following(steps: list[str]) -> list[bytes]:
    """Frames of a person who looks at the camera, then turns as asked, three frames a turn."""
    return head_turns([0, 0, *(SIDE[s] for s in steps for _ in range(3))])


def capture(client: TestClient, key: str, nonce: str, frames: list[bytes], **extra: str):
    version = client.get("/v1/consent").json()["version"]
    return client.post(
        "/v1/identities/live",
        headers=auth(key),
        files=[("frames", (f"f{i}.jpg", f, "image/jpeg")) for i, f in enumerate(frames)],
        data={"nonce": nonce, "consent": "true", "consent_version": version, "residence": "US-CA"}
        | extra,
    )


def test_a_capture_that_follows_its_challenge_enrolls_a_live_face(client, alice, services):
    c = challenge(client, alice)
    assert len(c["steps"]) == 2 and c["steps"][0] != c["steps"][1]
    assert c["instruction"] == f"Turn your head {c['steps'][0]}, then {c['steps'][1]}"
    assert (c["min_frames"], c["max_frames"]) == (4, 12)
    r = capture(client, alice, c["nonce"], following(c["steps"]), name="  From my  camera ")
    assert r.status_code == 201, r.text
    assert r.json()["capture"] == "live"
    [listed] = client.get("/v1/identities", headers=auth(alice)).json()
    assert listed["capture"] == "live" and len(listed["photos"]) == 1
    assert listed["name"] == "From my camera"  # named as an upload is (issue 20)
    with services.db.session() as s:
        [check] = s.scalars(select(AuditEvent).where(AuditEvent.kind == "account_face_check"))
        assert check.detail["decision"] == "reference_set" and check.detail["capture"] == "live"
        assert s.scalars(select(CaptureChallenge)).all() == []  # used up

    # The nonce was good for one capture.
    again = capture(client, alice, c["nonce"], following(c["steps"]))
    assert again.status_code == 409 and again.json()["error"]["code"] == "capture_expired"


def test_each_failure_names_its_step_and_uses_the_challenge_up(client, alice):
    c = challenge(client, alice)
    still = capture(client, alice, c["nonce"], head_turns([0] * 8))
    assert still.status_code == 422
    error = still.json()["error"]
    assert (error["code"], error["step"]) == ("capture_failed", "challenge")
    assert f"turn 1 of the challenge (turn your head {c['steps'][0]}" in error["message"]

    c = challenge(client, alice)
    frames = following(c["steps"])
    frames[4] = hopper()
    error = capture(client, alice, c["nonce"], frames).json()["error"]
    assert (error["code"], error["step"], error["photo"]) == ("capture_failed", "same_person", 4)

    c = challenge(client, alice)
    error = capture(client, alice, c["nonce"], following(c["steps"])[:2]).json()["error"]
    assert (error["code"], error["step"]) == ("capture_failed", "frames")
    assert client.get("/v1/identities", headers=auth(alice)).json() == []


def test_a_challenge_is_fresh_and_the_callers_own(client, alice, services):
    with services.db.session() as s:
        bob = create_user(s, "bob")[1]
    first = challenge(client, alice)
    second = challenge(client, alice)  # ends the first
    r = capture(client, alice, first["nonce"], following(first["steps"]))
    assert r.json()["error"]["code"] == "capture_expired"
    r = capture(client, bob, second["nonce"], following(second["steps"]))
    assert r.json()["error"]["code"] == "capture_expired"  # not bob's
    with services.db.session() as s:
        s.execute(update(CaptureChallenge).values(expires_at=utcnow() - timedelta(seconds=1)))
    r = capture(client, alice, second["nonce"], following(second["steps"]))
    assert r.status_code == 409
    assert r.json()["error"] == {
        "code": "capture_expired",
        "message": "this capture's challenge expired: start the capture again",
    }
    assert capture(client, alice, "forged", following(["left"])).status_code == 409


def test_a_capture_must_show_the_accounts_face(client, alice):
    enroll(client, alice, [hopper()])  # her account's face is Grace Hopper's
    c = challenge(client, alice)
    r = capture(client, alice, c["nonce"], following(c["steps"]))
    assert r.status_code == 422 and r.json()["error"]["code"] == "not_account_face"


def test_live_capture_works_where_it_is_required(make_services):
    services = make_services(require_live_capture=True, capture_challenge_steps=3)
    with services.db.session() as s:
        alice = create_user(s, "alice")[1]
    with idle_client(services) as client:
        c = challenge(client, alice)
        assert len(c["steps"]) == 3
        r = capture(client, alice, c["nonce"], following(c["steps"]))
        assert r.status_code == 201, r.text
