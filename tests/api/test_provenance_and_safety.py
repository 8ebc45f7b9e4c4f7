"""Every image the service stores is checked and marked; unsafe ones are never stored."""

from __future__ import annotations

import zlib

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from imagine.provenance import ProvenanceConfig, verify, watermark_id
from imagine.safety import CHECKERS, SafetyResult, SafetyUnavailable
from tests.api.conftest import SMALL, auth, enroll, ready, wait_for
from tests.photos import astronaut

KEY = bytes(range(32))  # a watermark key for these tests
MARKS = ProvenanceConfig(watermark_key=KEY)


class FlagEveryOther:
    """A fake checker: flags images with an odd seed, so one request mixes both outcomes."""

    name = "every-other"

    def __init__(self) -> None:
        self.calls = 0

    def check(self, image) -> SafetyResult:
        self.calls += 1
        unsafe = self.calls % 2 == 0
        return SafetyResult(
            checker=self.name,
            flagged=("TEST_CLASS",) if unsafe else (),
            scores={"TEST_CLASS": 0.99 if unsafe else 0.0},
        )


@pytest.fixture
def fake_checkers():
    CHECKERS["every-other"] = lambda config: FlagEveryOther()

    def missing(config):
        raise SafetyUnavailable("the test checker is not installed")

    CHECKERS["missing"] = missing
    yield
    CHECKERS.pop("every-other")
    CHECKERS.pop("missing")


def run_job(client, key, n: int) -> dict:
    ready(client)
    identity = enroll(client, key)
    r = client.post(
        "/v1/generations",
        headers=auth(key),
        json={
            "identity_id": identity["id"],
            "prompt": "me as an astronaut",
            "n": n,
            "seed": 1,
            **SMALL,
        },
    )
    return wait_for(client, key, r.json()["id"])


def test_stored_images_verify_as_marked(client, services, user_key):
    key = user_key("alice")
    job = run_job(client, key, 2)
    assert job["status"] == "succeeded"
    for image in job["images"]:
        data = client.get(image["url"], headers=auth(key)).content
        findings = verify(data, services.marks)
        assert findings.ai_generated and findings.matches(watermark_id(image["id"]))
        assert not verify(data, MARKS).watermark.found  # another deployment's key
        # A fresh install signs with its local chain: valid, not trusted.
        assert findings.c2pa.valid and not findings.c2pa.trusted
        meta = client.get(image["url"] + "/metadata", headers=auth(key)).json()["metadata"]
        assert meta["provenance"]["watermark_id"] == watermark_id(image["id"])
        api = client.post(
            "/v1/provenance/verify",
            headers=auth(key),
            files={"image": ("x.png", data, "image/png")},
        ).json()
        assert api["ai_generated"] and api["watermark"]["payload"] == watermark_id(image["id"])
        assert api["watermark"]["key_id"] == services.marks.scheme.key_id
        assert api["iptc"]["digital_source_type"].endswith("trainedAlgorithmicMedia")
    photo = client.post(
        "/v1/provenance/verify",
        headers=auth(key),
        files={"image": ("me.jpg", astronaut(), "image/jpeg")},
    ).json()
    assert photo["summary"] == "no marks found" and not photo["marked"]
    text = client.post(
        "/v1/provenance/verify",
        headers=auth(key),
        files={"image": ("a.txt", b"not an image", "text/plain")},
    )
    assert text.status_code == 415 and text.json()["error"]["code"] == "unsupported_format"
    details = client.get("/readyz").json()["details"]
    assert details["c2pa_signing"] == "on: local chain, untrusted"
    # ... and `imagine serve` says so at start, with how to fix it.
    assert any("IMAGINE_C2PA_CERT" in note for note in services.notes())


def test_the_labelled_download_is_an_edit_of_the_original(client, services, user_key):
    """Issue 21 point 6: the download's manifest names the stored image as its parent."""
    key = user_key("erin")
    job = run_job(client, key, 1)
    url = job["images"][0]["url"]
    original = client.get(url, headers=auth(key)).content
    download = client.get(url, params={"download": "true"}, headers=auth(key)).content
    assert download != original
    findings = verify(download, services.marks)
    assert findings.status == "ai_generated"
    assert findings.matches(watermark_id(job["images"][0]["id"]))
    c2pa = findings.c2pa
    assert c2pa.valid and c2pa.ingredients == ("parentOf: original",)
    assert c2pa.actions == ("c2pa.opened", "c2pa.edited", "c2pa.watermarked")
    assert c2pa.digital_source_type.endswith("trainedAlgorithmicMedia")  # from the parent


def test_verify_says_tampered_first(client, services, user_key):
    key = user_key("fay")
    job = run_job(client, key, 1)
    data = client.get(job["images"][0]["url"], headers=auth(key)).content
    # A text chunk added after signing: still a good PNG, but not the bytes that were signed.
    text = b"tEXt" + b"Comment\x00edited"
    chunk = (len(text) - 4).to_bytes(4, "big") + text + zlib.crc32(text).to_bytes(4, "big")
    end = data.rindex(b"IEND") - 4
    tampered = data[:end] + chunk + data[end:]
    answer = client.post(
        "/v1/provenance/verify",
        headers=auth(key),
        files={"image": ("x.png", tampered, "image/png")},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "invalid" and body["summary"].startswith("TAMPERED OR INVALID")


def test_unsafe_images_are_withheld(make_services, fake_checkers, settings):
    services = make_services(safety_checker="every-other")
    with TestClient(create_app(services), client=("127.0.0.1", 1)) as client:
        from api.auth import create_user

        with services.db.session() as s:
            key = create_user(s, "bob")[1]
        job = run_job(client, key, 2)
    assert job["status"] == "succeeded"
    assert len(job["images"]) == 1
    assert job["withheld"] == [{"index": 1, "seed": 2, "code": "unsafe_output"}]
    assert len(list(settings.images_dir.glob("*/*.png"))) == 1  # the unsafe one was never written


def test_a_job_whose_every_image_is_unsafe_fails(make_services, fake_checkers, settings):
    services = make_services(safety_checker="every-other")
    with TestClient(create_app(services), client=("127.0.0.1", 1)) as client:
        from api.auth import create_user

        with services.db.session() as s:
            key = create_user(s, "carol")[1]
        ready(client)
        identity = enroll(client, key)
        services.executor.runtime.checker.calls = 1  # its next call (the only image) flags
        r = client.post(
            "/v1/generations",
            headers=auth(key),
            json={"identity_id": identity["id"], "prompt": "me", **SMALL},
        )
        job = wait_for(client, key, r.json()["id"])
    assert job["status"] == "failed" and job["error"]["code"] == "unsafe_output"
    assert job["images"] == [] and list(settings.images_dir.glob("*/*.png")) == []


def test_production_refuses_to_start_without_an_output_checker(make_services, fake_checkers):
    with pytest.raises(SafetyUnavailable):
        make_services(safety_checker="missing", production=True)
    relaxed = make_services(safety_checker="missing")
    assert relaxed.output_checks.startswith("output safety checks are OFF")
    explicit = make_services(safety_checker="none", production=True)
    assert "off" in explicit.output_checks


def test_c2pa_signing_when_a_key_is_configured(make_services, c2pa_chain, user_key):
    services = make_services(c2pa_cert=c2pa_chain.chain, c2pa_key=c2pa_chain.key)
    assert services.c2pa_signing == "on"
    with TestClient(create_app(services), client=("127.0.0.1", 1)) as client:
        from api.auth import create_user

        with services.db.session() as s:
            key = create_user(s, "dan")[1]
        job = run_job(client, key, 1)
        data = client.get(job["images"][0]["url"], headers=auth(key)).content
        assert client.get("/readyz").json()["details"]["c2pa_signing"] == "on"
    findings = verify(data, ProvenanceConfig(watermark_key=KEY, c2pa_trust_anchors=c2pa_chain.root))
    assert findings.c2pa.valid and findings.c2pa.trusted
