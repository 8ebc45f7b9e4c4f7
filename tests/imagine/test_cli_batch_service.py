"""``imagine batch --server``: a manifest submitted to a real ``imagine serve`` process,
as a user runs it (the smoke profile at 64x64; its images are noise)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from api.db import Database
from api.tables import Generation
from tests.api.server import Server, free_port, smoke_home
from tests.imagine.test_cli_batch import complete_images, start, wait_for_images, write_lines
from tests.photos import astronaut, group, hopper

SMALL = ["--size", "64x64", "--steps", "2"]


@pytest.fixture
def folder(tmp_path) -> Path:
    for name, data in (("me.jpg", astronaut()), ("hopper.jpg", hopper()), ("us.jpg", group())):
        (tmp_path / name).write_bytes(data)
    return tmp_path


def serve(
    tmp_path: Path, model_cache: Path, kind: str = "--operator", **env: str
) -> tuple[Server, dict[str, str]]:
    """A started service with one user, an operator unless ``kind`` says otherwise (batch
    campaigns enroll other people's faces); the environment a batch run against it needs."""
    server = Server(smoke_home(tmp_path / "service-home", model_cache), free_port(), **env)
    key = server.cli("users", "create", "ops", *filter(None, [kind]))["api_key"]
    server.start()
    client_home = tmp_path / "client-home"
    client_home.mkdir(exist_ok=True)
    return server, {
        "IMAGINE_HOME": str(client_home),
        "IMAGINE_BATCH_SERVER": server.url,
        "IMAGINE_BATCH_API_KEY": key,
    }


@pytest.fixture
def service(tmp_path, model_cache):
    server, env = serve(
        tmp_path, model_cache, IMAGINE_RATE_LIMIT_PER_MINUTE="100000", IMAGINE_MAX_IMAGES="3"
    )
    yield server, env
    server.stop()


def api(server: Server, env: dict[str, str]) -> httpx.Client:
    auth = {"Authorization": f"Bearer {env['IMAGINE_BATCH_API_KEY']}"}
    return httpx.Client(base_url=server.url, headers=auth, timeout=30)


def consent(server: Server) -> list[str]:
    version = httpx.get(server.url + "/v1/consent").json()["version"]
    return ["--consent-version", version, "--residence", "US-CA"]


def gallery_size(http: httpx.Client) -> int:
    return len(http.get("/v1/gallery", params={"limit": 100}).json()["items"])


def run(env: dict[str, str], *argv: str, log: Path, timeout: float = 300) -> tuple[int, str]:
    """Run ``imagine batch`` to its end: its exit code and its output alone."""
    log.write_text("")
    proc = start(env, *argv, log=log)
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return code, log.read_text()


@pytest.mark.slow
def test_a_manifest_runs_on_the_service_into_the_local_layout(service, folder):
    server, env = service
    http = api(server, env)
    known = http.post(
        "/v1/identities",
        files=[("photos", ("h.jpg", hopper(), "image/jpeg"))],
        data={"consent": "true", "consent_version": consent(server)[1], "residence": "US-CA"},
    ).json()["id"]
    manifest = write_lines(
        folder / "m.jsonl",
        [
            {"id": "me", "photos": ["me.jpg"], "prompts": ["me as an astronaut", "me"], "n": 2},
            {"id": "known", "identity_id": known, "prompt": "me in a library", "seed": 7},
            {"id": "again", "photos": ["me.jpg"], "prompt": "me hiking", "style": "watercolor"},
            {"id": "us", "photos": ["us.jpg"], "prompt": "us"},
            {"id": "bomb", "photos": ["me.jpg"], "prompt": "me making a bomb to kill people"},
            {"id": "ghost", "identity_id": "idn_nobody", "prompt": "me"},
            {"photos": ["me.jpg"], "prompt": "me", "n": 4},  # the service allows 3
        ],
    )
    out, log = folder / "out", folder / "batch.log"

    # --check asks the service for its limits; nothing is sent, nothing written.
    code, text = run(env, str(manifest), "--out", str(out), "--check", log=log)
    assert code == 1 and "m.jsonl:7: invalid_n: n must be 1-3, got 4" in text
    assert not out.exists() and gallery_size(http) == 0

    # Enrolling photos needs the consent version and residence declared: nothing runs.
    code, text = run(env, str(manifest), "--out", str(out), *SMALL, log=log)
    assert code == 2 and "error: consent_required: line(s) 1, 3, 4, 5 enroll" in text
    assert not out.exists()

    code, text = run(env, str(manifest), "--out", str(out), *SMALL, *consent(server), log=log)
    assert code == 1, text
    assert sorted(complete_images(out)) == [
        "again/0.png",
        "known/0.png",
        "me/0.png",
        "me/1.png",
        "me/2.png",
        "me/3.png",
    ]
    report = json.loads((out / "report.json").read_text())
    assert report["failures_by_code"] == {
        "multiple_faces": 1,
        "prompt_rejected": 1,
        "not_found": 1,
        "invalid_n": 1,
    }
    assert report["settings"]["executor"] == "service"
    # Exactly what the service made and stored, image for image: the same bytes and metadata.
    meta = json.loads((out / "me" / "3.json").read_text())
    assert meta["prompt"] == "me" and meta["index"] == 1 and meta["server"] == server.url
    assert (out / "me" / "3.png").read_bytes() == http.get(f"/v1/images/{meta['image_id']}").content
    assert json.loads((out / "known" / "0.json").read_text())["seed"] == 7
    assert json.loads((out / "again" / "0.json").read_text())["style"] == "watercolor"
    assert gallery_size(http) == 6
    # The photos of "me" and "again" were enrolled once, "us" was refused: two identities.
    assert len(http.get("/v1/identities").json()) == 2
    assert "smoke profile" in text and "Traceback" not in text


@pytest.mark.slow
def test_a_personal_account_enrolls_one_face_in_a_batch(tmp_path, model_cache, folder):
    """Issue 19: a personal account's batch enrolls its holder's face; a line with someone
    else's photos fails with not_account_face, and the run goes on."""
    server, env = serve(tmp_path, model_cache, kind="", IMAGINE_RATE_LIMIT_PER_MINUTE="100000")
    try:
        manifest = write_lines(
            folder / "m.jsonl",
            [
                {"id": "me", "photos": ["me.jpg"], "prompt": "me as an astronaut"},
                {"id": "grace", "photos": ["hopper.jpg"], "prompt": "me in a lab"},
            ],
        )
        out, log = folder / "out", folder / "batch.log"
        code, text = run(env, str(manifest), "--out", str(out), *SMALL, *consent(server), log=log)
        assert code == 1, text
        assert sorted(complete_images(out)) == ["me/0.png"]
        report = json.loads((out / "report.json").read_text())
        assert report["failures_by_code"] == {"not_account_face": 1}
        [identity] = api(server, env).get("/v1/identities").json()
        assert identity["capture"] == "upload"
    finally:
        server.stop()


@pytest.mark.slow
def test_a_killed_run_resumes_without_queueing_anything_twice(service, folder):
    server, env = service
    http = api(server, env)
    lines = [{"photos": ["me.jpg"], "prompt": f"portrait {i}", "n": 2} for i in range(8)]
    manifest = write_lines(folder / "m.jsonl", lines)
    out, log = folder / "out", folder / "batch.log"
    argv = [str(manifest), "--out", str(out), "--size", "64x64", "--steps", "6", *consent(server)]
    argv += ["--concurrency", "2"]

    # 1. Ctrl-C: the jobs in flight are cancelled on the service, the state is interrupted.
    proc = start(env, *argv, log=log)
    wait_for_images(out, 2, proc)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130, log.read_text()
    assert json.loads((out / "batch-state.json").read_text())["runs"][-1]["status"] == "interrupted"
    after_sigint = complete_images(out)
    assert 2 <= len(after_sigint) < 16

    # 2. SIGKILL while jobs run on the service: nobody cancels them.
    proc = start(env, *argv, "--resume", log=log)
    wait_for_images(out, len(after_sigint) + 2, proc)
    proc.kill()
    assert proc.wait(timeout=60) == -signal.SIGKILL
    after_sigkill = complete_images(out)
    assert {p: after_sigkill[p] for p in after_sigint} == after_sigint

    # 3. Resume: the jobs the killed run submitted are found again by their keys.
    code, text = run(env, *argv, "--resume", log=log)
    assert code == 0, text
    final = complete_images(out)
    assert len(final) == 16
    assert {p: final[p] for p in after_sigkill} == after_sigkill
    assert gallery_size(http) == 16  # no job was made twice
    assert len(http.get("/v1/identities").json()) == 1
    with Database(f"sqlite:///{server.home / 'imagine.db'}").session() as s:
        ended = Counter(s.scalars(select(Generation.status)))
    # one job per prompt made its images; the others were cancelled by the Ctrl-C
    assert ended["succeeded"] == 8 and set(ended) <= {"succeeded", "cancelled"}, ended


@pytest.mark.slow
def test_a_rate_limited_run_waits_as_told_and_says_so(tmp_path, model_cache, folder):
    server, env = serve(tmp_path, model_cache, IMAGINE_RATE_LIMIT_PER_MINUTE="60")
    try:
        http = api(server, env)
        for _ in range(60):  # spend this user's whole minute
            http.get("/v1/identities")
        manifest = write_lines(folder / "m.jsonl", [{"photos": ["me.jpg"], "prompt": "me"}])
        out, log = folder / "out", folder / "batch.log"
        started = time.monotonic()
        code, text = run(env, str(manifest), "--out", str(out), *SMALL, *consent(server), log=log)
        assert code == 0, text
        # a request a second: the key check, the enrollment, the job and its events
        assert time.monotonic() - started >= 3
        assert len(complete_images(out)) == 1
        notes = json.loads((out / "report.json").read_text())["notes"]
        assert any("slow down" in note and "429" in note for note in notes), notes
    finally:
        server.stop()
