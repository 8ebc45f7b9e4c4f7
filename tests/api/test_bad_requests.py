"""A table of bad requests: each gets its status and stable code, and none is a 500."""

from __future__ import annotations

import contextlib
import io
import struct
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select

from api.main import create_app
from api.tables import Generation
from tests.api.conftest import SMALL, auth, enroll, wait_for
from tests.photos import astronaut, encode, group, hopper, no_face


def _png_bomb() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", 50_000, 50_000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 99))


def _gif() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (300, 300)).save(buf, "GIF")
    return buf.getvalue()


@pytest.fixture
def world(make_services):
    """Two users, one enrolled identity and one finished job, on the null executor."""
    services = make_services(executor="null", max_upload_bytes=600_000, max_request_bytes=3_000_000)
    with TestClient(create_app(services), client=("127.0.0.1", 50000)) as client:
        from api.auth import create_user

        with services.db.session() as s:
            key = create_user(s, "alice")[1]
        identity = enroll(client, key)
        job = client.post(
            "/v1/generations",
            headers=auth(key),
            json={"identity_id": identity["id"], "prompt": "me", **SMALL},
        ).json()
        wait_for(client, key, job["id"])
        yield client, key, identity["id"], job["id"]


def test_bad_requests_get_their_codes(world):
    client, key, identity_id, job_id = world
    version = client.get("/v1/consent").json()["version"]
    form = {"consent": "true", "consent_version": version, "residence": "US-CA"}
    ok = {"identity_id": identity_id, "prompt": "me as an astronaut", **SMALL}
    h = auth(key)

    def photos(*items: bytes) -> list:
        return [("photos", (f"p{i}.jpg", data, "image/jpeg")) for i, data in enumerate(items)]

    def enroll_with(files=None, **changes):
        return client.post(
            "/v1/identities",
            headers=h,
            files=files or photos(astronaut()),
            data={**form, **changes},
        )

    def generate(body, headers=None):
        return client.post("/v1/generations", headers={**h, **(headers or {})}, json=body)

    big_photo = encode(Image.effect_noise((700, 700), 90).convert("RGB"), "PNG")
    truncated = astronaut()[:5000]
    cases = [
        # (description, send, status, code)
        ("no API key", lambda: client.get("/v1/gallery"), 401, "unauthorized"),
        (
            "unknown API key",
            lambda: client.get("/v1/gallery", headers=auth("imk_nope")),
            401,
            "unauthorized",
        ),
        (
            "not a bearer header",
            lambda: client.get("/v1/gallery", headers={"Authorization": key}),
            401,
            "unauthorized",
        ),
        (
            "unknown API key on job creation",
            lambda: client.post("/v1/generations", headers=auth("imk_nope"), json=ok),
            401,
            "unauthorized",
        ),
        # No credentials at all: refused before the body is read. A key is checked in the
        # route's own transaction, so a malformed body with an unknown key is a 422 first.
        (
            "no API key and a malformed body",
            lambda: client.post("/v1/generations", json={"prompt": 5}),
            401,
            "unauthorized",
        ),
        (
            "unknown API key and a malformed body",
            lambda: client.post("/v1/generations", headers=auth("imk_nope"), json={"prompt": 5}),
            401,
            "unauthorized",
        ),
        (
            "consent missing",
            lambda: client.post(
                "/v1/identities",
                headers=h,
                files=photos(astronaut()),
                data={"consent_version": version, "residence": "US-CA"},
            ),
            422,
            "invalid_request",
        ),
        ("consent false", lambda: enroll_with(consent="false"), 400, "consent_required"),
        (
            "old consent version",
            lambda: enroll_with(consent_version="consent-2020"),
            409,
            "consent_outdated",
        ),
        ("residence not a code", lambda: enroll_with(residence="Mars"), 422, "invalid_region"),
        (
            "residence unknown subdivision",
            lambda: enroll_with(residence="US-XX"),
            422,
            "invalid_region",
        ),
        ("residence without state", lambda: enroll_with(residence="US"), 451, "region_unavailable"),
        ("resident of Illinois", lambda: enroll_with(residence="US-IL"), 451, "region_unavailable"),
        ("resident of Texas", lambda: enroll_with(residence="US-TX"), 451, "region_unavailable"),
        ("resident of France", lambda: enroll_with(residence="FR"), 451, "region_unavailable"),
        (
            "no photos",
            lambda: client.post("/v1/identities", headers=h, data=form),
            422,
            "invalid_request",
        ),
        ("six photos", lambda: enroll_with(photos(*[astronaut()] * 6)), 400, "too_many_photos"),
        (
            "text file as photo",
            lambda: enroll_with(photos(b"hello, I am text")),
            415,
            "unsupported_format",
        ),
        ("GIF photo", lambda: enroll_with(photos(_gif())), 415, "unsupported_format"),
        ("truncated JPEG", lambda: enroll_with(photos(truncated)), 400, "invalid_image"),
        ("decompression bomb", lambda: enroll_with(photos(_png_bomb())), 413, "image_too_large"),
        (
            "photo over the byte limit",
            lambda: enroll_with(photos(big_photo)),
            413,
            "image_too_large",
        ),
        (
            "body over the request limit",
            lambda: enroll_with(photos(b"\xff\xd8\xff" + b"0" * 3_100_000)),
            413,
            "request_too_large",
        ),
        (
            "tiny photo",
            lambda: enroll_with(photos(encode(Image.new("RGB", (100, 100))))),
            422,
            "image_too_small",
        ),
        ("group photo", lambda: enroll_with(photos(group())), 422, "multiple_faces"),
        ("no face", lambda: enroll_with(photos(no_face())), 422, "no_face"),
        (
            "two people",
            lambda: enroll_with(photos(astronaut(), hopper())),
            422,
            "identity_mismatch",
        ),
        ("unknown field", lambda: generate({**ok, "guidance": 9}), 422, "invalid_request"),
        ("prompt missing", lambda: generate({"identity_id": identity_id}), 422, "invalid_request"),
        ("prompt empty", lambda: generate({**ok, "prompt": ""}), 422, "invalid_request"),
        (
            "prompt over the limit",
            lambda: generate({**ok, "prompt": "me " * 200}),
            422,
            "prompt_too_long",
        ),
        (
            "prompt over 1,000 characters",
            lambda: generate({**ok, "prompt": "me " * 500}),
            422,
            "prompt_too_long",
        ),
        (
            "prompt of 2 MB",
            lambda: generate({**ok, "prompt": "me " * 700_000}),
            422,
            "prompt_too_long",
        ),
        (
            "prompt with a NUL",
            lambda: generate({**ok, "prompt": "me\x00 as a pirate"}),
            422,
            "invalid_prompt",
        ),
        ("n zero", lambda: generate({**ok, "n": 0}), 422, "invalid_request"),
        ("n too many", lambda: generate({**ok, "n": 9}), 422, "invalid_n"),
        ("n not a number", lambda: generate({**ok, "n": "two"}), 422, "invalid_request"),
        ("steps zero", lambda: generate({**ok, "steps": 0}), 422, "invalid_steps"),
        ("steps too many", lambda: generate({**ok, "steps": 1000}), 422, "invalid_steps"),
        ("width not a multiple of 8", lambda: generate({**ok, "width": 100}), 422, "invalid_size"),
        ("height too large", lambda: generate({**ok, "height": 8192}), 422, "invalid_size"),
        ("negative seed", lambda: generate({**ok, "seed": -1}), 422, "invalid_seed"),
        ("seed too large", lambda: generate({**ok, "seed": 2**40}), 422, "invalid_seed"),
        (
            "second image's seed too large",
            lambda: generate({**ok, "seed": 2**32 - 1, "n": 2}),
            422,
            "invalid_seed",
        ),
        (
            "harmful prompt",
            lambda: generate({**ok, "prompt": "me holding a bloody severed head"}),
            422,
            "prompt_rejected",
        ),
        (
            "public figure",
            lambda: generate({**ok, "prompt": "Taylor Swift on a beach"}),
            422,
            "prompt_rejected",
        ),
        (
            "unknown style",
            lambda: generate({**ok, "style": "vaporwave-noir"}),
            422,
            "unknown_style",
        ),
        ("unknown identity", lambda: generate({**ok, "identity_id": "idn_nope"}), 404, "not_found"),
        (
            "body not JSON",
            lambda: client.post(
                "/v1/generations",
                headers={**h, "Content-Type": "application/json"},
                content=b"{nope",
            ),
            422,
            "invalid_request",
        ),
        ("body a JSON list", lambda: generate([ok]), 422, "invalid_request"),
        (
            "idempotency key too long",
            lambda: generate(ok, {"Idempotency-Key": "k" * 300}),
            422,
            "invalid_request",
        ),
        (
            "unknown generation",
            lambda: client.get("/v1/generations/gen_nope", headers=h),
            404,
            "not_found",
        ),
        (
            "events of unknown generation",
            lambda: client.get("/v1/generations/gen_nope/events", headers=h),
            404,
            "not_found",
        ),
        (
            "cancel a finished job",
            lambda: client.post(f"/v1/generations/{job_id}/cancel", headers=h),
            409,
            "not_cancellable",
        ),
        ("unknown image", lambda: client.get("/v1/images/img_nope", headers=h), 404, "not_found"),
        (
            "delete unknown image",
            lambda: client.delete("/v1/images/img_nope", headers=h),
            404,
            "not_found",
        ),
        (
            "delete unknown identity",
            lambda: client.delete("/v1/identities/idn_nope", headers=h),
            404,
            "not_found",
        ),
        (
            "gallery limit zero",
            lambda: client.get("/v1/gallery?limit=0", headers=h),
            422,
            "invalid_request",
        ),
        (
            "gallery limit huge",
            lambda: client.get("/v1/gallery?limit=5000", headers=h),
            422,
            "invalid_request",
        ),
        (
            "gallery cursor garbage",
            lambda: client.get("/v1/gallery?cursor=%%%garbage", headers=h),
            400,
            "invalid_cursor",
        ),
        ("unknown route", lambda: client.get("/v1/nothing-here", headers=h), 404, "not_found"),
        ("wrong method", lambda: client.put("/v1/gallery", headers=h), 405, "method_not_allowed"),
        (
            "Content-Length not a number",
            lambda: client.post(
                "/v1/generations", headers={**h, "Content-Length": "many"}, content=b"{}"
            ),
            400,
            "invalid_request",
        ),
    ]
    assert len(cases) >= 40
    wrong = []
    for description, send, status, code in cases:
        response = send()
        body = (
            response.json()
            if response.headers.get("content-type", "").startswith("application/json")
            else {}
        )
        got = (response.status_code, body.get("error", {}).get("code"))
        assert response.status_code != 500, f"{description}: 500 {response.text}"
        if got != (status, code):
            wrong.append(
                f"{description}: expected {status} {code}, got {got}: {response.text[:200]}"
            )
    assert not wrong, "\n".join(wrong)


def test_control_and_bidi_characters_are_refused_and_nothing_is_stored(world):
    client, key, identity_id, _ = world
    for prompt, named in (
        ("me as a pirate\x00", "U+0000"),
        ("me as a \x1b[31mred\x1b[0m pirate", "U+001B"),
        ("me as a pirate \u202egnp.exe", "U+202E"),
        ("me \u2066as a pirate\u2069", "U+2066"),
    ):
        headers = {**auth(key), "Idempotency-Key": f"key-{named}"}
        r = client.post(
            "/v1/generations",
            headers=headers,
            json={"identity_id": identity_id, "prompt": prompt, **SMALL},
        )
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "invalid_prompt"
        assert named in r.json()["error"]["message"]
        # No job was written: the same key with another body is a new job, not a conflict.
        again = client.post(
            "/v1/generations",
            headers=headers,
            json={"identity_id": identity_id, "prompt": "me as a pirate", **SMALL},
        )
        assert again.status_code == 202, again.text
        wait_for(client, key, again.json()["id"])  # the queue cap stays clear


def test_the_prompt_is_stored_normalised(world):
    client, key, identity_id, _ = world
    r = client.post(
        "/v1/generations",
        headers=auth(key),
        json={"identity_id": identity_id, "prompt": " me as an e\u0301lf\r\nin a forest ", **SMALL},
    )
    assert r.status_code == 202, r.text
    job = wait_for(client, key, r.json()["id"])
    assert job["prompt"] == "me as an \u00e9lf in a forest"
    assert "\n" not in job["expanded"]["prompt"] and "\u00e9lf" in job["expanded"]["prompt"]


def test_region_refusals_carry_their_reason(world):
    client, key, _, _ = world
    version = client.get("/v1/consent").json()["version"]
    for residence, reason in (("US", "residence_required"), ("US-IL", "region_denied")):
        r = client.post(
            "/v1/identities",
            headers=auth(key),
            files=[("photos", ("me.jpg", astronaut(), "image/jpeg"))],
            data={"consent": "true", "consent_version": version, "residence": residence},
        )
        assert r.status_code == 451
        assert r.json()["error"] == {
            "code": "region_unavailable",
            "reason": reason,
            "message": r.json()["error"]["message"],
        }


def test_moderation_refusals_carry_their_category(world):
    """Issue 19: the reason code reaches the client as ``error.category``; old codes stay."""
    client, key, identity_id, _ = world
    for prompt, category in (
        ("deepfake of me as the president taking a bribe", "deception"),
        ("me as a famous politician in a compromising photo", "deception"),
        ("un bambino soldato con un fucile", "minors_harm"),
        ("eu com uma suástica", "hate"),
        ("me holding a bloody severed head", "violence"),
        ("Taylor Swift on a beach", "public_figure"),
    ):
        r = client.post(
            "/v1/generations",
            headers=auth(key),
            json={"identity_id": identity_id, "prompt": prompt, **SMALL},
        )
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert (error["code"], error["category"]) == ("prompt_rejected", category), prompt
        assert f"(category: {category})" in error["message"]


def test_idempotency_key(world):
    client, key, identity_id, _ = world
    body = {"identity_id": identity_id, "prompt": "me as a pirate", **SMALL}
    first = client.post(
        "/v1/generations", headers={**auth(key), "Idempotency-Key": "abc"}, json=body
    )
    again = client.post(
        "/v1/generations", headers={**auth(key), "Idempotency-Key": "abc"}, json=body
    )
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    other = client.post(
        "/v1/generations",
        headers={**auth(key), "Idempotency-Key": "abc"},
        json={**body, "prompt": "me as a knight"},
    )
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_conflict"


def test_rate_limit_answers_429_with_retry_after(make_services):
    services = make_services(executor="null", rate_limit_per_minute=5)
    with TestClient(create_app(services), client=("127.0.0.1", 50000)) as client:
        from api.auth import create_user

        with services.db.session() as s:
            key = create_user(s, "bob")[1]
        codes = [client.get("/v1/gallery", headers=auth(key)).status_code for _ in range(7)]
        assert codes[:5] == [200] * 5 and codes[5] == 429
        limited = client.get("/v1/gallery", headers=auth(key))
        assert limited.json()["error"]["code"] == "rate_limited"
        assert int(limited.headers["Retry-After"]) >= 1


def test_image_reads_cost_a_tenth_of_a_request_so_a_gallery_page_fits(make_services):
    services = make_services(executor="null", rate_limit_per_minute=5)
    with TestClient(create_app(services), client=("127.0.0.1", 50000)) as client:
        from api.auth import create_user

        with services.db.session() as s:
            key = create_user(s, "carol")[1]
        # 40 image and metadata reads (404s here: no such image) spend 4 of the 5 requests
        for i in range(20):
            for suffix in ("", "/metadata"):
                r = client.get(f"/v1/images/img_{i}{suffix}", headers=auth(key))
                assert r.status_code == 404, r.text
        assert client.get("/v1/gallery", headers=auth(key)).status_code == 200
        limited = client.get("/v1/gallery", headers=auth(key))
        assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limited"


@contextlib.contextmanager
def idle_service(make_services, cap: int):
    """A service whose jobs stay queued (no worker), with one enrolled user: its client,
    key and a small generation body."""
    services = make_services(max_queued_jobs=cap)
    app = create_app(services, start_worker=False)
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        from api.auth import create_user

        with services.db.session() as s:
            key = create_user(s, "carol")[1]
        identity = enroll(client, key)
        yield services, client, key, {"identity_id": identity["id"], "prompt": "me", **SMALL}


def test_queue_cap_answers_429(make_services):
    with idle_service(make_services, cap=2) as (_, client, key, body):
        assert [
            client.post("/v1/generations", headers=auth(key), json=body).status_code
            for _ in range(2)
        ] == [202, 202]
        third = client.post("/v1/generations", headers=auth(key), json=body)
        assert third.status_code == 429 and third.json()["error"]["code"] == "too_many_jobs"
        assert "Retry-After" in third.headers


def test_concurrent_submissions_cannot_race_past_the_queue_cap(make_services):
    """20 submissions at once from one user: exactly the cap is queued, the rest are 429
    (an outside probe once had 20 of 20 accepted with a cap of 4)."""
    with idle_service(make_services, cap=4) as (services, client, key, body):
        start = threading.Barrier(20)

        def submit(_: int) -> tuple[int, str | None]:
            start.wait(timeout=60)
            r = client.post("/v1/generations", headers=auth(key), json=body)
            return r.status_code, (r.json().get("error") or {}).get("code")

        with ThreadPoolExecutor(max_workers=20) as pool:
            answers = list(pool.map(submit, range(20)))
        assert sorted(answers, key=str) == [(202, None)] * 4 + [(429, "too_many_jobs")] * 16
        with services.db.session() as s:
            assert s.scalar(select(func.count()).select_from(Generation)) == 4


def test_who_calls_is_judged_before_what_they_send(world):
    """No key, or an unknown one, is a 401 whatever the body: a probe got 422 first."""
    client, key, identity_id, _ = world
    unknown = {"Authorization": "Bearer imk_nobody"}
    malformed = [
        (
            "/v1/generations",
            {"content": b'{"prompt": ', "headers": {"Content-Type": "application/json"}},
        ),
        (
            "/v1/generations",
            {"content": b'{"prompt": "\xff\xfe"}', "headers": {"Content-Type": "application/json"}},
        ),
        ("/v1/generations", {"json": {"identity_id": identity_id, "n": "many"}}),
        (
            "/v1/identities",
            {"content": b"--x\r\n", "headers": {"Content-Type": "multipart/form-data"}},
        ),
        ("/v1/identities", {"data": {"consent": "maybe"}}),
        ("/v1/identities/live", {"data": {"nonce": "x"}}),
        ("/v1/provenance/verify", {"data": {"nothing": "here"}}),
    ]
    for path, kwargs in malformed:
        for headers in ({}, unknown):
            r = client.post(path, **{**kwargs, "headers": {**kwargs.get("headers", {}), **headers}})
            assert (r.status_code, r.json()["error"]["code"]) == (401, "unauthorized"), (
                path,
                r.text,
            )
        r = client.post(path, **{**kwargs, "headers": {**kwargs.get("headers", {}), **auth(key)}})
        assert r.status_code in (400, 422), (path, r.text)


def test_every_status_a_route_answers_for_a_bad_body_is_in_its_openapi(world):
    """Unparseable bodies answer 400 ``bad_request`` and invalid ones 422: both documented
    on every route that takes a body, as 401 is on every route that needs a key."""
    client = world[0]
    schema = client.get("/openapi.json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            documented = set(operation["responses"])
            if "requestBody" in operation:
                assert {"400", "422"} <= documented, (method, path, documented)
            if path.startswith("/v1/") and path not in PUBLIC_PATHS:
                assert "401" in documented, (method, path, documented)


PUBLIC_PATHS = {"/v1/consent", "/v1/styles", "/v1/limits", "/v1/regions", "/v1/session"}


def test_a_405_names_every_method_of_the_path(world):
    """RFC 9110: Allow lists what the resource supports, not the first route's method."""
    client, key, identity_id, _ = world
    for path, methods in [
        (f"/v1/identities/{identity_id}", {"GET", "DELETE"}),
        ("/v1/identities", {"GET", "POST"}),
        ("/v1/session", {"GET", "POST", "DELETE"}),
    ]:
        r = client.put(path, headers=auth(key))
        assert (r.status_code, r.json()["error"]["code"]) == (405, "method_not_allowed")
        assert methods <= set(r.headers["allow"].split(", ")), (path, r.headers["allow"])
