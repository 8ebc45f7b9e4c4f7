"""``imagine batch --out s3://bucket/prefix`` against a real S3-protocol server (moto's, on
loopback): the folder layout under the prefix, resume, the run's lock, a kill."""

from __future__ import annotations

import io
import json
import signal
import socket
import time

import numpy as np
import pytest
from PIL import Image

from imagine.batch.destination import LOCK_OBJECT, open_destination
from tests.conftest import Bucket
from tests.imagine.test_cli_batch import SMALL, batch, blocks, start, thirty_lines, write_lines


@pytest.fixture
def versioned(s3_bucket: Bucket) -> Bucket:
    """Every PutObject keeps a version: an image stored twice shows as two versions."""
    s3_bucket.client.put_bucket_versioning(
        Bucket=s3_bucket.name, VersioningConfiguration={"Status": "Enabled"}
    )
    return s3_bucket


def versions(bucket: Bucket, prefix: str) -> dict[str, int]:
    """Key under ``prefix`` -> how many times it was written."""
    counts: dict[str, int] = {}
    pages = bucket.client.get_paginator("list_object_versions").paginate(
        Bucket=bucket.name, Prefix=prefix
    )
    for page in pages:
        for version in page.get("Versions", []):
            key = version["Key"].removeprefix(prefix)
            counts[key] = counts.get(key, 0) + 1
    return counts


def images(bucket: Bucket, prefix: str) -> set[str]:
    """``item/k.png`` of every image whose sidecar exists (done)."""
    keys = set(versions(bucket, prefix))
    return {k for k in keys if k.endswith(".png") and k.replace(".png", ".json") in keys}


def read(bucket: Bucket, key: str) -> bytes:
    return bucket.client.get_object(Bucket=bucket.name, Key=key)["Body"].read()


def test_batch_writes_the_folder_layout_to_s3_and_resumes_without_rewriting(
    capsys, env, photos, smoke, versioned
):
    bucket = versioned
    env = {**env, "IMAGINE_S3_ENDPOINT_URL": bucket.endpoint_url}
    manifest = write_lines(
        photos / "m.jsonl",
        [
            {"id": "me", "photos": ["me.jpg"], "prompt": "me as an astronaut", "n": 2, "seed": 7},
            {"id": "crowd", "photos": ["group.jpg"], "prompt": "us"},
        ],
    )
    url = f"s3://{bucket.name}/campaign/run-1"
    code, stdout, err = batch(capsys, env, str(manifest), "--out", url, *SMALL)
    assert code == 1, err  # the group photo fails
    assert "line 2 (crowd): multiple_faces" in stdout
    assert f"report: {url}/report.json, {url}/report.html" in stdout
    written = versions(bucket, "campaign/run-1/")
    assert [k.removeprefix("campaign/run-1/") for k in bucket.objects()] == [
        "batch-state.json",
        "me/0.json",
        "me/0.png",
        "me/1.json",
        "me/1.png",
        "report.html",
        "report.json",
    ]  # and no lock object left behind
    assert all(written[k] == 1 for k in written if k.startswith("me/"))
    report = json.loads(read(bucket, "campaign/run-1/report.json"))
    assert report["out"] == url and report["images"]["done"] == 2
    assert b"data:image/jpeg;base64," in read(bucket, "campaign/run-1/report.html")

    # The same manifest into a folder: the same images (up to each image's own watermark).
    code, _, err = batch(capsys, env, str(manifest), "--out", str(photos / "out"), *SMALL)
    assert code == 1, err
    for k in range(2):
        there = Image.open(io.BytesIO(read(bucket, f"campaign/run-1/me/{k}.png")))
        here = Image.open(photos / "out" / "me" / f"{k}.png")
        a, b = (blocks(np.asarray(img, dtype=float)) for img in (there, here))
        assert np.abs(a - b).mean() < 2.0
        assert json.loads(read(bucket, f"campaign/run-1/me/{k}.json"))["seed"] == 7 + k

    code, _, err = batch(capsys, env, str(manifest), "--out", url, *SMALL)
    assert code == 2 and "error: batch_exists:" in err
    code, stdout, err = batch(
        capsys, env, str(manifest), "--out", url, "--resume", "--json", *SMALL
    )
    assert code == 1, err
    assert json.loads(stdout)["images"]["written_this_run"] == 0
    again = versions(bucket, "campaign/run-1/")
    assert {k: again[k] for k in again if k.startswith("me/")} == {
        k: 1 for k in written if k.startswith("me/")
    }


def test_a_missing_bucket_or_a_live_lock_stops_the_run_before_any_work(
    capsys, env, photos, s3_bucket
):
    env = {**env, "IMAGINE_S3_ENDPOINT_URL": s3_bucket.endpoint_url}
    manifest = write_lines(photos / "m.jsonl", [{"photos": ["me.jpg"], "prompt": "me"}])
    code, _, err = batch(capsys, env, str(manifest), "--out", "s3://no-such-bucket/x", *SMALL)
    assert code == 2 and "bucket 'no-such-bucket' does not exist" in err

    # Another driver (here: this test) holds the run's lock.
    url = f"s3://{s3_bucket.name}/run"
    with open_destination(url, s3_bucket.endpoint_url).lock():
        code, _, err = batch(capsys, env, str(manifest), "--out", url, *SMALL)
    assert code == 2 and f"another imagine batch is running on {url}" in err
    assert s3_bucket.objects() == []  # nothing written; the lock went with its holder

    # A lock left by a driver on another machine that stopped renewing it is taken over.
    lapsed = {"host": f"not-{socket.gethostname()}", "pid": 1, "expires_at": time.time() - 1}
    key = f"run/{LOCK_OBJECT}"
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key=key, Body=json.dumps(lapsed))
    code, _, err = batch(capsys, env, str(manifest), "--out", url, *SMALL, "--json")
    assert code == 0, err
    assert key not in s3_bucket.objects() and "run/line-0001/0.png" in s3_bucket.objects()


@pytest.mark.slow
def test_a_killed_driver_resumes_on_s3_and_writes_only_what_is_missing(
    env, photos, smoke, versioned
):
    bucket = versioned
    env = {**env, "IMAGINE_S3_ENDPOINT_URL": bucket.endpoint_url}
    manifest, expected, codes = thirty_lines(photos)
    url, prefix, log = f"s3://{bucket.name}/big", "big/", photos / "batch.log"
    argv = [str(manifest), "--out", url, *SMALL]

    proc = start(env, *argv, log=log)
    deadline = time.monotonic() + 300
    while len(images(bucket, prefix)) < 8:
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "fewer than 8 images after 300 s"
        time.sleep(0.2)
    proc.kill()
    assert proc.wait(timeout=60) == -signal.SIGKILL
    before = images(bucket, prefix)
    assert f"{prefix}{LOCK_OBJECT}" in bucket.objects()  # the dead driver's lock is still there

    # Resume at once: the lock of a process of this host that is gone is taken over.
    proc = start(env, *argv, "--resume", "--json", log=log)
    assert proc.wait(timeout=600) == 1, log.read_text()  # the five bad lines failed
    assert len(images(bucket, prefix)) == expected
    assert f"{prefix}{LOCK_OBJECT}" not in bucket.objects()
    # A sidecar is written once its image is whole, and a whole image is never made again;
    # only an image killed before its sidecar may have been written twice.
    written = versions(bucket, prefix)
    sidecars = {k: n for k, n in written.items() if "/" in k and k.endswith(".json")}
    assert len(sidecars) == expected and set(sidecars.values()) == {1}
    assert all(written[k] == 1 for k in before)
    report = json.loads(read(bucket, prefix + "report.json"))
    assert report["images"]["written_this_run"] == expected - len(before)
    assert report["failures_by_code"] == codes


@pytest.mark.slow
@pytest.mark.ray
def test_a_ray_batch_writes_to_s3(capsys, env, photos, smoke, s3_bucket):
    pytest.importorskip("ray")
    env = {**env, "IMAGINE_S3_ENDPOINT_URL": s3_bucket.endpoint_url}
    manifest = write_lines(
        photos / "m.jsonl", [{"id": "me", "photos": ["me.jpg"], "prompt": "me", "n": 2}]
    )
    url = f"s3://{s3_bucket.name}/ray"
    code, stdout, err = batch(capsys, env, str(manifest), "--out", url, *SMALL, "--ray", "--json")
    assert code == 0, err
    assert json.loads(stdout)["images"]["written_this_run"] == 2
    assert {"ray/me/0.png", "ray/me/1.json", "ray/report.html"} <= set(s3_bucket.objects())
