"""The service with its images in a bucket on a real S3-protocol server (moto, on
loopback): what a user does leaves exactly the objects it should, and nothing after
a delete or an erasure."""

from __future__ import annotations

import time

import httpx
import pytest
from fastapi.testclient import TestClient

from api.auth import create_user
from api.cli import main
from api.erasure import sweep_orphans
from api.main import create_app
from api.storage import variant_key
from api.tables import ImageRow
from imagine.settings import SettingsError
from tests.api.conftest import auth, enroll, generate, wait_for

PREFIX = "images/"


@pytest.fixture
def s3_services(make_services, s3_bucket):
    def make(**changes):
        where = {"storage_url": s3_bucket.url, "s3_endpoint_url": s3_bucket.endpoint_url}
        return make_services(**{**where, **changes})

    return make


def start(services) -> tuple[TestClient, str]:
    with services.db.session() as session:
        key = create_user(session, "alice")[1]
    return TestClient(create_app(services), client=("127.0.0.1", 50000)), key


def made_images(client: TestClient, key: str, identity_id: str, n: int) -> list[str]:
    job = wait_for(client, key, generate(client, key, identity_id, n=n)["id"])
    assert job["status"] == "succeeded", job
    return [image["id"] for image in job["images"]]


def stored_key(services, image_id: str) -> str:
    with services.db.session() as session:
        row = session.get(ImageRow, image_id)
        assert row is not None
        return PREFIX + row.storage_key


def test_images_in_a_bucket_leave_no_object_behind(s3_services, s3_bucket):
    services = s3_services()
    client, key = start(services)
    with client:
        identity = enroll(client, key)["id"]
        [image] = made_images(client, key, identity, n=1)
        name = stored_key(services, image)
        assert s3_bucket.objects() == [name]
        r = client.get(f"/v1/images/{image}", headers=auth(key))
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["content-security-policy"] == "default-src 'none'"
        stored = s3_bucket.client.get_object(Bucket=s3_bucket.name, Key=name)["Body"].read()
        assert r.content == stored and stored.startswith(b"\x89PNG")

        download = client.get(f"/v1/images/{image}?download=true", headers=auth(key))
        assert download.status_code == 200 and download.content != r.content  # labelled
        labelled = variant_key(name, "labelled")
        assert s3_bucket.objects() == sorted([name, labelled])

        assert client.delete(f"/v1/images/{image}", headers=auth(key)).status_code == 204
        assert s3_bucket.objects() == []
        assert client.get(f"/v1/images/{image}", headers=auth(key)).status_code == 404

        kept = sorted(stored_key(services, i) for i in made_images(client, key, identity, n=2))
        orphan = services.storage.new_key()
        services.storage.put(orphan, b"written by a worker that died before its commit")
        with services.db.session() as session:
            assert sweep_orphans(session, services.storage) == 0  # young: left alone
            later = time.time() + 3700
            assert sweep_orphans(session, services.storage, now=later) == 1
        assert s3_bucket.objects() == kept  # the rows' objects stay

        assert client.delete(f"/v1/identities/{identity}", headers=auth(key)).status_code == 204
        assert s3_bucket.objects() == []


def test_presigned_redirects_point_at_the_object_after_the_ownership_check(
    s3_services, s3_bucket, user_key
):
    services = s3_services(s3_presigned_redirect=True)
    client, key = start(services)
    with client:
        [image] = made_images(client, key, enroll(client, key)["id"], n=1)
        name = stored_key(services, image)
        stranger = user_key("mallory")
        assert client.get(f"/v1/images/{image}", headers=auth(stranger)).status_code == 404

        r = client.get(f"/v1/images/{image}", headers=auth(key), follow_redirects=False)
        assert r.status_code == 307 and r.headers["cache-control"] == "no-store"
        assert r.headers["location"].startswith(f"{s3_bucket.endpoint_url}/{s3_bucket.name}/")
        fetched = httpx.get(r.headers["location"])  # no credentials: the URL is the grant
        stored = s3_bucket.client.get_object(Bucket=s3_bucket.name, Key=name)["Body"].read()
        assert fetched.status_code == 200 and fetched.content == stored
        assert fetched.headers["content-type"] == "image/png"

        url = f"/v1/images/{image}?download=true"
        first = client.get(url, headers=auth(key), follow_redirects=False)
        assert first.status_code == 200  # the labelled copy is rendered here, then kept
        assert first.headers["content-disposition"] == f'attachment; filename="imagine-{image}.png"'
        again = client.get(url, headers=auth(key), follow_redirects=False)
        assert again.status_code == 307
        kept = httpx.get(again.headers["location"])
        assert kept.content == first.content
        assert kept.headers["content-disposition"] == first.headers["content-disposition"]

        # The web gallery signs in with a cookie: its page may show images of its origin only.
        signed_in = client.post("/v1/session", json={"api_key": key})
        assert signed_in.status_code == 201
        browser = client.get(f"/v1/images/{image}", follow_redirects=False)
        assert browser.status_code == 200 and browser.content == stored


def test_a_missing_bucket_stops_the_start_with_a_clear_error(
    s3_services, s3_bucket, capsys, tmp_path
):
    url = f"s3://{s3_bucket.name}-missing/images"
    with pytest.raises(SettingsError) as err:
        s3_services(storage_url=url)
    assert url in str(err.value)

    environ = {
        "IMAGINE_HOME": str(tmp_path / "home"),
        "IMAGINE_STORAGE_URL": url,
        "IMAGINE_S3_ENDPOINT_URL": s3_bucket.endpoint_url,
    }
    assert main(["serve"], environ) == 2
    said = capsys.readouterr().err
    assert f"error: invalid_setting: image storage {url}: bucket" in said
    assert "does not exist" in said and "Traceback" not in said
