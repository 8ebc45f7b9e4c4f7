"""Ownership, erasure, cancellation, progress events, retention: the biometric data lifecycle."""

from __future__ import annotations

import json
import time
from datetime import timedelta

from sqlalchemy import func, select, update

from api.main import sweep_once
from api.tables import AuditEvent, Consent, Generation, Identity, ImageRow, utcnow
from tests.api.conftest import (
    SMALL,
    auth,
    enroll,
    generate,
    idle_client,
    ready,
    wait_for,
    wait_until_step,
)


def count(services, table) -> int:
    with services.db.session() as s:
        return s.scalar(select(func.count()).select_from(table)) or 0


def test_another_users_objects_are_404_and_untouched(client, user_key, services):
    alice, mallory = user_key("alice"), user_key("mallory")
    ready(client)
    identity = enroll(client, alice)
    job = wait_for(client, alice, generate(client, alice, identity["id"])["id"])
    image_id = job["images"][0]["id"]
    routes = [
        ("GET", f"/v1/identities/{identity['id']}"),
        ("DELETE", f"/v1/identities/{identity['id']}"),
        ("GET", f"/v1/generations/{job['id']}"),
        ("GET", f"/v1/generations/{job['id']}/events"),
        ("POST", f"/v1/generations/{job['id']}/cancel"),
        ("GET", f"/v1/images/{image_id}"),
        ("GET", f"/v1/images/{image_id}/metadata"),
        ("DELETE", f"/v1/images/{image_id}"),
    ]
    for method, path in routes:
        theirs = client.request(method, path, headers=auth(mallory))
        missing = client.request(
            method,
            path.replace(identity["id"], "idn_x")
            .replace(job["id"], "gen_x")
            .replace(image_id, "img_x"),
            headers=auth(mallory),
        )
        assert theirs.status_code == 404, (method, path, theirs.text)
        assert theirs.json() == missing.json(), (
            "a stranger's object must look exactly like a missing one"
        )
    stolen = client.post(
        "/v1/generations",
        headers=auth(mallory),
        json={"identity_id": identity["id"], "prompt": "me", **SMALL},
    )
    assert stolen.status_code == 404
    assert client.get("/v1/gallery", headers=auth(mallory)).json()["items"] == []
    # Nothing changed for alice.
    assert client.get(f"/v1/identities/{identity['id']}", headers=auth(alice)).status_code == 200
    assert client.get(f"/v1/images/{image_id}", headers=auth(alice)).status_code == 200
    assert len(client.get("/v1/gallery", headers=auth(alice)).json()["items"]) == 1
    assert count(services, Generation) == 1


def test_erasure_leaves_no_row_or_file(client, user_key, services, settings):
    key = user_key("alice")
    ready(client)
    keep = enroll(client, key)  # a second identity that must survive
    identity = enroll(client, key)
    done = wait_for(client, key, generate(client, key, identity["id"], n=2)["id"])
    kept = wait_for(client, key, generate(client, key, keep["id"])["id"])
    queued = generate(client, key, identity["id"], steps=50, n=4)  # may be queued or running
    images_dir = settings.images_dir
    assert len(list(images_dir.glob("*/*.png"))) == 3

    assert client.delete(f"/v1/identities/{identity['id']}", headers=auth(key)).status_code == 204

    with services.db.session() as s:
        assert s.get(Identity, identity["id"]) is None
        assert (
            s.scalar(
                select(func.count())
                .select_from(ImageRow)
                .where(ImageRow.identity_id == identity["id"])
            )
            == 0
        )
        assert (
            s.scalar(
                select(func.count())
                .select_from(Generation)
                .where(Generation.identity_id == identity["id"])
            )
            == 0
        )
        audit = s.scalars(select(AuditEvent).where(AuditEvent.subject == identity["id"])).all()
        assert [a.kind for a in audit] == ["identity_erased"]
        assert "embedding" not in json.dumps(audit[0].detail)
        assert s.scalar(select(func.count()).select_from(Consent)) == 2  # consent records are kept
    time.sleep(1.0)  # let a running job notice it is gone and delete what it wrote
    files = sorted(p.name for p in images_dir.glob("*/*.png"))
    assert len(files) == 1  # only the surviving identity's image
    for image in done["images"]:
        assert client.get(image["url"], headers=auth(key)).status_code == 404
    assert client.get(f"/v1/generations/{queued['id']}", headers=auth(key)).status_code == 404
    assert client.get(kept["images"][0]["url"], headers=auth(key)).status_code == 200


def test_cancel_a_queued_job(make_services, user_key):
    services = make_services()
    with idle_client(services) as client:
        from api.auth import create_user

        with services.db.session() as s:
            key = create_user(s, "dave")[1]
        job = generate(client, key, enroll(client, key)["id"])
        r = client.post(f"/v1/generations/{job['id']}/cancel", headers=auth(key))
        assert r.status_code == 202 and r.json()["status"] == "cancelled"
        assert r.json()["error"]["code"] == "cancelled"


def test_cancel_a_running_job_and_follow_it_with_events(client, user_key, hold_at_step_2):
    key = user_key("erin")
    ready(client)
    identity = enroll(client, key)
    job = generate(client, key, identity["id"], steps=60, n=2)
    hold_at_step_2.job_id = job["id"]
    wait_until_step(client, key, job["id"], 2)
    assert client.post(f"/v1/generations/{job['id']}/cancel", headers=auth(key)).status_code == 202
    hold_at_step_2.released.set()
    final = wait_for(client, key, job["id"])
    assert final["status"] == "cancelled" and final["images"] == []
    assert final["step"] < final["total_steps"]


def test_progress_events_reach_100_percent(client, user_key):
    key = user_key("frank")
    ready(client)
    job = generate(client, key, enroll(client, key)["id"], steps=6)
    events = []
    with client.stream("GET", f"/v1/generations/{job['id']}/events", headers=auth(key)) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                events.append((kind, json.loads(line[6:])))
    progress = [data for kind, data in events if kind == "progress"]
    assert progress[-1]["status"] == "succeeded" and progress[-1]["progress"] == 1.0
    assert [p["progress"] for p in progress] == sorted(p["progress"] for p in progress)
    kind, final = events[-1]
    assert kind == "done" and final["status"] == "succeeded" and len(final["images"]) == 1


def test_retention_sweep_erases_unused_identities(client, user_key, services, settings):
    key = user_key("gina")
    ready(client)
    old, fresh = enroll(client, key), enroll(client, key)
    wait_for(client, key, generate(client, key, old["id"])["id"])
    with services.db.session() as s:
        s.execute(
            update(Identity)
            .where(Identity.id == old["id"])
            .values(last_used_at=utcnow() - timedelta(days=settings.retention_days + 1))
        )
    assert sweep_once(services) == {
        "expired_identities": 1,
        "orphan_files": 0,
        "expired_sessions": 0,
    }
    assert client.get(f"/v1/identities/{old['id']}", headers=auth(key)).status_code == 404
    assert client.get(f"/v1/identities/{fresh['id']}", headers=auth(key)).status_code == 200
    assert list(settings.images_dir.glob("*/*.png")) == []
    with services.db.session() as s:
        kinds = [a.detail.get("reason") for a in s.scalars(select(AuditEvent))]
    assert "retention_expired" in kinds


def test_generating_restarts_the_retention_period(client, user_key, services, settings):
    key = user_key("gus")
    identity = enroll(client, key)
    almost_expired = utcnow() - timedelta(days=settings.retention_days - 1)

    def last_used(when=None):
        with services.db.session() as s:
            if when is not None:
                s.execute(
                    update(Identity).where(Identity.id == identity["id"]).values(last_used_at=when)
                )
            return s.scalar(select(Identity.last_used_at).where(Identity.id == identity["id"]))

    last_used(almost_expired)
    generate(client, key, identity["id"])
    used = last_used()
    assert used > utcnow() - timedelta(minutes=1)
    # Two days on, the identity is kept because of that use...
    last_used(used - timedelta(days=2))
    assert sweep_once(services)["expired_identities"] == 0
    assert client.get(f"/v1/identities/{identity['id']}", headers=auth(key)).status_code == 200
    # ...and erased when its last use is the one before.
    last_used(almost_expired - timedelta(days=2))
    assert sweep_once(services)["expired_identities"] == 1


def test_consent_records_what_was_shown(client, user_key, services):
    key = user_key("hal")
    consent = client.get("/v1/consent").json()
    assert "biometric" in consent["text"] and "delete" in consent["text"].lower()
    identity = enroll(client, key, residence="us-ny")
    assert identity["residence"] == "US-NY" and identity["consent_version"] == consent["version"]
    with services.db.session() as s:
        record = s.scalars(select(Consent)).one()
    assert record.text_sha256 == consent["sha256"] and record.residence == "US-NY"
    assert record.gate_decision["decision"] == "allow"
    assert record.retention_days == consent["retention_days"]


def test_health_readiness_metrics_and_openapi(client, user_key):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready(client)
    body = client.get("/readyz").json()
    assert body["ready"] and body["profile"] == "smoke" and body["details"]["profile_is_noise"]
    (lora,) = body["details"]["adapters"]["loras"]  # what the worker loaded
    assert lora["name"] == "faceid_0" and lora["fused"]
    client.get("/v1/gallery", headers=auth(user_key("ivy")))
    metrics = client.get("/metrics").text
    assert 'imagine_http_requests_total{method="GET",route="/v1/gallery",status="200"}' in metrics
    assert "imagine_jobs{status=" in metrics
    spec = client.get("/openapi.json").json()
    paths = set(spec["paths"])
    for path in (
        "/v1/consent",
        "/v1/identities",
        "/v1/identities/{identity_id}",
        "/v1/generations",
        "/v1/generations/{generation_id}",
        "/v1/generations/{generation_id}/events",
        "/v1/generations/{generation_id}/cancel",
        "/v1/images/{image_id}",
        "/v1/images/{image_id}/metadata",
        "/v1/gallery",
        "/v1/provenance/verify",
        "/healthz",
        "/readyz",
        "/metrics",
    ):
        assert path in paths, path
    create = spec["paths"]["/v1/generations"]["post"]["responses"]
    assert {"202", "404", "422", "429", "451"} <= set(create)
    assert client.get("/docs").status_code == 200


def test_the_service_refuses_adapters_that_need_face_crops(capsys, tmp_path):
    """It stores only the encrypted embedding, never face crops, so FaceID Plus v2
    (which needs crops on every call) is refused before anything is created."""
    from api.cli import main

    home = tmp_path / "home"
    code = main(["serve"], {"IMAGINE_HOME": str(home), "IMAGINE_FACEID_VARIANT": "plusv2"})
    err = capsys.readouterr().err
    assert code == 2
    assert "error: invalid_setting: IMAGINE_FACEID_VARIANT='plusv2'" in err
    assert "no face crops" in err and "imagine generate" in err
    assert not home.exists()
