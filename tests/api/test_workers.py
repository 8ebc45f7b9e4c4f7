"""Workers apart from the API: ``imagine serve --executor none`` beside ``imagine worker``
processes on one PostgreSQL database and one image store."""

from __future__ import annotations

import time

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.cli import SERVICE_COMMANDS, main
from api.cli.serve import EXECUTOR_NAMES
from api.db import Database
from api.main import create_app
from api.tables import Generation, ImageRow
from api.worker import EXECUTORS
from imagine.cli import build_parser
from tests.api.server import Server, Worker, free_port, smoke_home
from tests.api.test_server_process import enroll

NEEDS_POSTGRES = "needs PostgreSQL (IMAGINE_DATABASE_URL=postgresql+psycopg://…): SQLite serves one"


@pytest.mark.parametrize(
    ("argv", "environ", "what"),
    [
        (["worker"], {}, "imagine worker"),
        (["serve", "--executor", "none"], {}, "imagine serve --executor none"),
        (["serve", "--executor", "ray"], {}, "imagine serve --executor ray"),
        (["serve"], {"IMAGINE_EXECUTOR": "none"}, "imagine serve --executor none"),
        # the flag overrides the variable
        (["serve", "--executor", "none"], {"IMAGINE_EXECUTOR": "inprocess"}, "imagine serve"),
    ],
)
def test_processes_apart_on_sqlite_are_refused_naming_postgresql(
    tmp_path, capsys, argv, environ, what
):
    """On SQLite nothing would run the jobs of an API process without an executor, and a
    worker process could not share the database: both refuse to start, writing nothing."""
    home = tmp_path / "home"
    assert main(argv, {"IMAGINE_HOME": str(home), **environ}) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: invalid_setting: {what}")
    assert NEEDS_POSTGRES in err
    assert not home.exists()


def test_serve_names_its_executor_with_a_flag():
    parser = build_parser(SERVICE_COMMANDS)
    assert parser.parse_args(["serve", "--executor", "none"]).executor == "none"
    assert parser.parse_args(["serve"]).executor is None  # IMAGINE_EXECUTOR decides
    assert sorted(EXECUTOR_NAMES) == sorted(EXECUTORS)


def test_an_api_without_executor_is_ready_when_its_database_answers(make_services):
    """No pipeline is loaded in this process, so readiness does not wait for one."""
    services = make_services(executor="none")
    with TestClient(create_app(services)) as client:
        r = client.get("/readyz")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["worker"] == "none (jobs run in imagine worker processes)"
    assert body["details"]["executor"] == "none"


FINISHED = ("succeeded", "failed", "cancelled")


def wait_all(http: httpx.Client, ids: list[str], timeout: float = 600.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        bodies = [http.get(f"/v1/generations/{i}").json() for i in ids]
        if all(b["status"] in FINISHED for b in bodies):
            return bodies
        assert time.monotonic() < deadline, bodies
        time.sleep(0.3)


def stored_once(db: Database, home, ids: list[str]) -> dict[str, tuple[int, int]]:
    """(attempts, image rows) per job; checks that every stored file is one image row's."""
    with db.session() as s:
        rows = s.scalars(select(ImageRow).where(ImageRow.generation_id.in_(ids))).all()
        jobs = {i: s.get(Generation, i) for i in ids}
        counts = {
            i: (job.attempts, sum(r.generation_id == i for r in rows))
            for i, job in jobs.items()
            if job is not None
        }
        keys = [r.storage_key for r in s.scalars(select(ImageRow))]
    files = sorted(str(p.relative_to(home / "images")) for p in (home / "images").glob("*/*.png"))
    assert files == sorted(keys)  # no image stored twice, no file left by a run that died
    return counts


def each_succeeds_once(
    http: httpx.Client, db: Database, home, identity: str, sizes: list[int]
) -> list[str]:
    """Jobs of these sizes (1 or 2 images; some share a batch, some cannot): each succeeds
    once, its images stored once. Their ids."""
    ids = [
        http.post(
            "/v1/generations",
            json={"identity_id": identity, "prompt": "me", "n": 1 + i % 2, "steps": 4}
            | {"width": size, "height": size},
        ).json()["id"]
        for i, size in enumerate(sizes)
    ]
    bodies = wait_all(http, ids)
    assert [b["status"] for b in bodies] == ["succeeded"] * len(ids), bodies
    assert [len(b["images"]) for b in bodies] == [1 + i % 2 for i in range(len(ids))]
    assert stored_once(db, home, ids) == {i: (1, 1 + n % 2) for n, i in enumerate(ids)}
    return ids


def lease_owner_once_running(http: httpx.Client, db: Database, job: str) -> str:
    """The job's lease owner once it is two steps in (progress read from the database: the
    process running it is another one)."""
    deadline = time.monotonic() + 300
    while http.get(f"/v1/generations/{job}").json()["step"] < 2:
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)
    with db.session() as s:
        row = s.get(Generation, job)
        assert row is not None and row.lease_owner is not None
        return row.lease_owner


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_two_workers_run_each_job_once_and_a_killed_ones_job_again(
    tmp_path, database_url, model_cache, smoke
):
    server = Server(
        smoke_home(tmp_path / "home", model_cache),
        free_port(),
        "--executor",
        "none",
        IMAGINE_DATABASE_URL=database_url,
        IMAGINE_LEASE_SECONDS="2",
        IMAGINE_RATE_LIMIT_PER_MINUTE="100000",
        IMAGINE_MAX_QUEUED_JOBS="10",
    )
    workers = [Worker(server, "a"), Worker(server, "b")]
    db = Database(database_url)
    try:
        key = server.cli("users", "create", "alice")["api_key"]
        server.start()  # ready at once: it loads no pipeline
        ready = httpx.get(server.url + "/readyz").json()
        assert ready["details"]["executor"] == "none", ready
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.wait_ready()
        http = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        identity = enroll(http)
        ids = each_succeeds_once(http, db, server.home, identity, [64, 64, 72, 80, 88, 96])
        runs = "".join(w.log.read_text() for w in workers)
        assert all(runs.count(f"runs job {i} ") == 1 for i in ids), runs
        print("jobs run by worker:", [w.log.read_text().count("runs job") for w in workers])

        # Kill the worker running a long job mid-denoise: the other runs it again, once.
        job = http.post(
            "/v1/generations",
            json={"identity_id": identity, "prompt": "me", "n": 2, "steps": 50}
            | {"width": 64, "height": 64},
        ).json()["id"]
        owner = lease_owner_once_running(http, db, job)
        [victim] = [w for w in workers if f"-{w.pid}-" in owner]
        [survivor] = [w for w in workers if w is not victim]
        victim.kill()  # SIGKILL: no cleanup, its lease runs out (2 s) and is swept
        killed_at = time.monotonic()
        [body] = wait_all(http, [job])
        print(f"the killed worker's job finished {time.monotonic() - killed_at:.1f} s later")
        assert body["status"] == "succeeded" and len(body["images"]) == 2, body
        assert stored_once(db, server.home, [*ids, job])[job] == (2, 2)
        assert f"runs job {job} (attempt 2)" in survivor.log.read_text()

        started = time.monotonic()
        assert survivor.stop() == 0  # SIGTERM: stops claiming, exits 0
        assert time.monotonic() - started < 10
        assert "stopping" in survivor.log.read_text()
    finally:
        for worker in workers:
            worker.stop()
        server.stop()
        db.engine.dispose()
