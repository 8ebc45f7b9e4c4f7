"""What the web pages ask the API for: styles, regions, the caller's identities, and error
bodies that say which photo failed and why the region gate said no."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.auth import create_user
from api.main import create_app
from llm_prompting import STYLES
from tests.api.conftest import auth, enroll
from tests.photos import astronaut, astronaut_reframed, group


@pytest.fixture
def world(make_services):
    made: list[TestClient] = []

    def make(**changes):
        services = make_services(executor="null", **changes)
        client = TestClient(create_app(services), client=("127.0.0.1", 50000))
        made.append(client)
        with services.db.session() as s:  # the database is the same for every call
            keys = [create_user(s, f"{name}{len(made)}")[1] for name in ("alice", "bob")]
        return client, keys

    return make


def test_styles_list_every_preset_and_the_default(world):
    client, _ = world(prompt_style="cinematic")
    body = client.get("/v1/styles").json()
    assert body["default"] == "cinematic"
    assert [s["name"] for s in body["styles"]] == list(STYLES)
    assert all(s["description"] for s in body["styles"])


def test_limits_say_what_the_service_accepts_and_it_refuses_what_they_exclude(world):
    client, (key, _) = world(max_images=3, max_steps=20, max_queued_jobs=2, max_prompt_chars=30)
    body = client.get("/v1/limits").json()  # no key needed, like /v1/styles
    assert body["profile"] == "smoke" and body["profile_is_noise"] is True
    assert body["defaults"] == {"width": 256, "height": 256, "steps": 4}
    assert body["generation"]["max_images"] == 3 and body["generation"]["max_steps"] == 20
    assert body["max_prompt_chars"] == 30
    assert body["max_queued_jobs"] == 2 and body["max_enroll_photos"] == 5
    identity = enroll(client, key)["id"]
    for field, value, code in (
        ("n", 4, "invalid_n"),
        ("steps", 21, "invalid_steps"),
        ("prompt", "me " * 11, "prompt_too_long"),
    ):
        r = client.post(
            "/v1/generations",
            headers=auth(key),
            json={"identity_id": identity, "prompt": "me", field: value},
        )
        assert (r.status_code, r.json()["error"]["code"]) == (422, code)


def test_regions_ask_for_a_subdivision_where_the_policy_needs_one(world):
    client, _ = world()
    body = client.get("/v1/regions").json()
    countries = {c["code"]: c for c in body["countries"]}
    assert len(countries) == 249 and body["policy_version"] == "default-2026-11"
    us, fr = countries["US"], countries["FR"]
    assert us["name"] == "United States" and us["needs_subdivision"] is True
    states = {s["code"]: s["name"] for s in us["subdivisions"]}
    assert states["US-CA"] == "California" and "US-IL" in states
    assert fr["needs_subdivision"] is False and fr["subdivisions"] == []
    # the shipped policy serves the US but Illinois and Texas, and nowhere else
    assert [c["code"] for c in body["countries"] if c["served"]] == ["US"]
    assert {s["code"] for s in us["subdivisions"] if not s["served"]} == {"US-IL", "US-TX"}

    # an operator's rule for a part of France makes French residents name theirs
    client, _ = world(
        enroll_regions=("US", "!US-IL", "FR", "!FR-IDF"),
        generate_regions=("US", "!US-IL", "FR", "!FR-IDF"),
    )
    fr = next(c for c in client.get("/v1/regions").json()["countries"] if c["code"] == "FR")
    assert fr["needs_subdivision"] is True and fr["served"] is True
    paris = {s["code"]: s["served"] for s in fr["subdivisions"]}
    assert paris["FR-75C"] is False and paris["FR-13"] is True  # Paris is in Île-de-France

    # enrolling without creating is no service: a resident needs both
    client, _ = world(enroll_regions=("US", "FR"))
    fr = next(c for c in client.get("/v1/regions").json()["countries"] if c["code"] == "FR")
    assert fr["served"] is False


def test_identities_list_only_the_callers_newest_first(world):
    client, (alice, bob) = world()
    first = enroll(client, alice)
    second = enroll(client, alice, [astronaut_reframed()])  # her face only (issue 19)
    enroll(client, bob)
    listed = client.get("/v1/identities", headers=auth(alice)).json()
    assert [i["id"] for i in listed] == [second["id"], first["id"]]
    assert listed[0]["consent_version"] == client.get("/v1/consent").json()["version"]
    assert "embedding" not in listed[0] and "embedding_encrypted" not in listed[0]
    assert client.get("/v1/identities").status_code == 401


def test_error_bodies_name_the_photo_and_the_region_reason(world):
    client, (alice, _) = world()
    version = client.get("/v1/consent").json()["version"]

    def post(photos: list[bytes], residence: str = "US-CA") -> dict:
        r = client.post(
            "/v1/identities",
            headers=auth(alice),
            files=[("photos", (f"p{i}.jpg", p, "image/jpeg")) for i, p in enumerate(photos)],
            data={"consent": "true", "consent_version": version, "residence": residence},
        )
        return r.json()["error"]

    error = post([astronaut(), group()])
    assert error["code"] == "multiple_faces" and error["photo"] == 1
    assert error["message"].startswith("photo 2: ")
    assert post([group()])["photo"] == 0
    denied = post([astronaut()], residence="US-IL")
    assert denied["code"] == "region_unavailable" and denied["reason"] == "region_denied"
    assert post([astronaut()], residence="US")["reason"] == "residence_required"
    # errors without such details keep the plain shape
    plain = client.get("/v1/images/img_x", headers=auth(alice)).json()["error"]
    assert set(plain) == {"code", "message"}


def test_identities_have_the_name_their_owner_gives_them(world):
    client, (alice, bob) = world()
    version = client.get("/v1/consent").json()["version"]

    def post(name: str) -> dict:
        return client.post(
            "/v1/identities",
            headers=auth(alice),
            files=[("photos", ("me.jpg", astronaut(), "image/jpeg"))],
            data={
                "consent": "true",
                "consent_version": version,
                "residence": "US-CA",
                "name": name,
            },
        ).json()

    named = post("  Studio   portraits ")
    assert named["name"] == "Studio portraits"
    assert enroll(client, alice)["name"] is None  # enrolled without one
    assert post("x" * 81)["error"]["code"] == "invalid_request"
    assert post("tab\there\u200b")["error"]["code"] == "invalid_request"

    url = f"/v1/identities/{named['id']}"
    r = client.patch(url, headers=auth(alice), json={"name": "Holidays 2026"})
    assert r.status_code == 200 and r.json()["name"] == "Holidays 2026"
    assert client.get(url, headers=auth(alice)).json()["name"] == "Holidays 2026"
    listed = client.get("/v1/identities", headers=auth(alice)).json()
    assert [i["name"] for i in listed] == [None, "Holidays 2026"]
    assert client.patch(url, headers=auth(bob), json={"name": "mine"}).status_code == 404
    r = client.patch(url, headers=auth(alice), json={"name": ""})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
