"""The service as a real process: killed mid-job, restarted; chunked bodies over the limit."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import httpx
import pytest
from sqlalchemy import select

from api.db import Database
from api.tables import Generation, ImageRow
from tests.api.server import Server, free_port, smoke_home
from tests.photos import astronaut


@pytest.fixture
def server(tmp_path, model_cache):
    s = Server(
        smoke_home(tmp_path / "home", model_cache),
        free_port(),
        IMAGINE_LEASE_SECONDS="2",
        IMAGINE_MAX_REQUEST_BYTES="200000",
        IMAGINE_RATE_LIMIT_PER_MINUTE="100000",
    )
    yield s
    s.stop()


def enroll(http: httpx.Client) -> str:
    version = http.get("/v1/consent").json()["version"]
    r = http.post(
        "/v1/identities",
        files=[("photos", ("me.jpg", astronaut(), "image/jpeg"))],
        data={"consent": "true", "consent_version": version, "residence": "US-CA"},
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.mark.slow
def test_a_job_survives_a_killed_server(server, smoke):
    key = server.cli("users", "create", "alice")["api_key"]
    server.start()
    http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    identity = enroll(http)
    job = http.post(
        "/v1/generations",
        json={
            "identity_id": identity,
            "prompt": "me",
            "n": 2,
            "steps": 40,
            "width": 64,
            "height": 64,
        },
    ).json()
    deadline = time.monotonic() + 300
    while http.get(f"/v1/generations/{job['id']}").json()["step"] < 2:
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)
    server.kill()  # SIGKILL mid-denoise: no cleanup runs

    server.start()
    deadline = time.monotonic() + 300
    while (body := http.get(f"/v1/generations/{job['id']}").json())["status"] not in (
        "succeeded",
        "failed",
        "cancelled",
    ):
        assert time.monotonic() < deadline, body
        time.sleep(0.2)
    assert body["status"] == "succeeded", body
    assert len(body["images"]) == 2
    db = Database(f"sqlite:///{server.home / 'imagine.db'}")
    with db.session() as s:
        assert s.get(Generation, job["id"]).attempts == 2
        assert (
            len(s.scalars(select(ImageRow).where(ImageRow.generation_id == job["id"])).all()) == 2
        )
    assert len(list((server.home / "images").glob("*/*.png"))) == 2  # no duplicate, no orphan
    db.engine.dispose()


@pytest.mark.slow
def test_chunked_body_over_the_limit_is_refused_before_it_ends(server):
    key = server.cli("users", "create", "bob")["api_key"]
    server.start()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(
            b"POST /v1/identities HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + key.encode()
            + b"\r\nContent-Type: multipart/form-data; boundary=b"
            + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        part = (
            b'--b\r\nContent-Disposition: form-data; name="photos"; filename="a.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n"
        )
        sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        chunk = b"x" * 16384
        sent = 0
        response = b""
        try:
            for _ in range(200):  # would be 3.2 MB against a 200 kB limit
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
                sock.settimeout(0.01)
                with contextlib.suppress(TimeoutError):
                    response += sock.recv(65536)
                sock.settimeout(30)
                if response:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        sock.settimeout(10)
        try:
            while b"\r\n\r\n" not in response or not response.rstrip().endswith(b"}"):
                data = sock.recv(65536)
                if not data:
                    break
                response += data
        except (TimeoutError, ConnectionResetError):
            pass
    assert response.startswith(b"HTTP/1.1 413"), response[:200]
    assert b"request_too_large" in response
    assert sent < 1_000_000  # refused long before the client finished


@pytest.mark.slow
def test_sigterm_under_load_stops_in_seconds_and_hands_the_job_back(server, smoke):
    """SIGTERM while a job runs, its event stream is open and clients poll: the server
    ends the stream, hands the job back to the queue unharmed and exits in seconds (a
    probe once waited over 30 s); the next server runs the job once."""
    key = server.cli("users", "create", "alice")["api_key"]
    server.start()
    http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    identity = enroll(http)
    body = {"identity_id": identity, "prompt": "me", "n": 2, "steps": 50, "width": 256}
    job = http.post("/v1/generations", json={**body, "height": 256}).json()
    deadline = time.monotonic() + 300
    while http.get(f"/v1/generations/{job['id']}").json()["step"] < 2:
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)

    stream_ended = threading.Event()
    stopping = threading.Event()

    def follow() -> None:
        with (
            contextlib.suppress(httpx.HTTPError),
            http.stream("GET", f"/v1/generations/{job['id']}/events") as events,
        ):
            for _ in events.iter_lines():
                pass
        stream_ended.set()

    def poll() -> None:  # load: other clients keep asking while the server stops
        with httpx.Client(base_url=server.url, headers=http.headers, timeout=5) as c:
            while not stopping.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    c.get(f"/v1/generations/{job['id']}")

    threads = [threading.Thread(target=follow), *(threading.Thread(target=poll) for _ in range(4))]
    for t in threads:
        t.start()
    assert server.proc is not None
    started = time.monotonic()
    server.proc.terminate()
    server.proc.wait(timeout=60)
    took = time.monotonic() - started
    stopping.set()
    for t in threads:
        t.join(timeout=30)
    print(f"imagine serve stopped {took:.1f} s after SIGTERM")
    assert took < 10, f"stopping took {took:.1f} s (at most uvicorn 5 s + executor 4 s)"
    assert stream_ended.is_set()
    db = Database(f"sqlite:///{server.home / 'imagine.db'}")
    with db.session() as s:
        row = s.get(Generation, job["id"])
        assert (row.status, row.attempts, row.lease_owner) == ("queued", 0, None)

    server.start()
    deadline = time.monotonic() + 300
    while (final := http.get(f"/v1/generations/{job['id']}").json())["status"] in (
        "queued",
        "running",
    ):
        assert time.monotonic() < deadline, final
        time.sleep(0.2)
    assert final["status"] == "succeeded" and len(final["images"]) == 2
    with db.session() as s:
        assert s.get(Generation, job["id"]).attempts == 1
    db.engine.dispose()
