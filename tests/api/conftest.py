"""The API against a real database: SQLite by default, PostgreSQL under the ``postgres`` marker.

Every test gets a fresh database (a new SQLite file, or a new PostgreSQL
database created on the local server and dropped afterwards).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from fastapi.testclient import TestClient

from api import worker
from api.auth import create_user
from api.jobs import report_progress
from api.main import create_app
from api.services import Services, build_services
from api.settings import ServiceSettings
from tests.api.server import smoke_home
from tests.photos import astronaut

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'imagine.db'}"
        return
    import sqlalchemy

    name = f"imagine_test_{secrets.token_hex(4)}"
    admin = sqlalchemy.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def settings(tmp_path, database_url, model_cache) -> ServiceSettings:
    home = smoke_home(tmp_path / "home", model_cache)
    return ServiceSettings(
        home=home,
        database_url=database_url,
        local_region="US-CA",
        lease_seconds=2.0,
        max_queued_jobs=4,
        rate_limit_per_minute=100_000,  # tests poll fast; the limit has its own test
    )


@pytest.fixture
def make_services(settings) -> Iterator[Callable[..., Services]]:
    made: list[Services] = []

    def make(**changes) -> Services:
        services = build_services(settings.replace(**changes) if changes else settings)
        made.append(services)
        return services

    yield make
    for services in made:
        services.db.engine.dispose()


def idle_client(services: Services) -> TestClient:
    """A client of the API without its worker thread: requests are answered, no job runs."""
    return TestClient(create_app(services, start_worker=False), client=("127.0.0.1", 1))


@pytest.fixture
def idle(services) -> Iterator[TestClient]:
    """``idle_client`` of the test's services, open for the test."""
    with idle_client(services) as c:
        yield c


@pytest.fixture
def accounts(services) -> dict[str, str]:
    """API keys of two personal accounts, alice and bob, and of an operator, studio."""
    with services.db.session() as s:
        return {
            "alice": create_user(s, "alice")[1],
            "bob": create_user(s, "bob")[1],
            "studio": create_user(s, "studio", "operator")[1],
        }


@pytest.fixture
def services(make_services) -> Services:
    return make_services()


@pytest.fixture
def client(services) -> Iterator[TestClient]:
    with TestClient(create_app(services), client=("127.0.0.1", 50000)) as c:
        yield c


@pytest.fixture
def user_key(services) -> Callable[[str], str]:
    from api.auth import create_user

    def make(name: str) -> str:
        with services.db.session() as session:
            return create_user(session, name)[1]

    return make


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def enroll(
    client: TestClient, key: str, photos: list[bytes] | None = None, residence: str = "US-CA"
) -> dict:
    version = client.get("/v1/consent").json()["version"]
    files = [
        ("photos", (f"p{i}.jpg", data, "image/jpeg"))
        for i, data in enumerate(photos or [astronaut()])
    ]
    response = client.post(
        "/v1/identities",
        headers=auth(key),
        files=files,
        data={"consent": "true", "consent_version": version, "residence": residence},
    )
    assert response.status_code == 201, response.text
    return response.json()


SMALL = {"width": 64, "height": 64, "steps": 2}


def generate(
    client: TestClient, key: str, identity_id: str, prompt: str = "me as an astronaut", **extra
) -> dict:
    """Submit a small generation; its 202 body ({id, status})."""
    r = client.post(
        "/v1/generations",
        headers=auth(key),
        json={"identity_id": identity_id, "prompt": prompt, **SMALL, **extra},
    )
    assert r.status_code == 202, r.text
    return r.json()


# Ceilings, not expectations: a busy 2-core CI machine can be many times slower than idle.
WAIT_S = 300.0


def wait_for(client: TestClient, key: str, generation_id: str, timeout: float = WAIT_S) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/v1/generations/{generation_id}", headers=auth(key)).json()
        if body["status"] in ("succeeded", "failed", "cancelled"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"generation {generation_id} did not finish: {body}")


def wait_until_step(
    client: TestClient, key: str, generation_id: str, step: int, timeout: float = WAIT_S
) -> None:
    """Until the job has recorded ``step`` (with ``hold_at_step_2``: it is held there)."""
    deadline = time.monotonic() + timeout
    url = f"/v1/generations/{generation_id}"
    while client.get(url, headers=auth(key)).json()["step"] < step:
        assert time.monotonic() < deadline, f"generation {generation_id} never reached step {step}"
        time.sleep(0.05)


def ready(client: TestClient, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.2)
    raise AssertionError(client.get("/readyz").json())


@dataclass
class Hold:
    """Where the worker stops: once it has recorded step 2 of ``job_id`` (of any job while
    ``job_id`` is None, so that a job cannot pass step 2 before the test names it)."""

    job_id: str | None = None
    released: threading.Event = field(default_factory=threading.Event)
    reached: threading.Event = field(default_factory=threading.Event)  # the worker is held
    reached_at: float = 0.0  # time.monotonic() when it was


@pytest.fixture
def hold_at_step_2(monkeypatch) -> Iterator[Hold]:
    """Hold the worker at step 2 of ``hold.job_id`` until the test sets ``hold.released``, so
    that what the test does meanwhile (a cancel) lands while the job runs: on a fast machine
    the job could otherwise finish first. The job's progress and its cancellation go
    through the worker's real code."""
    hold = Hold()

    def progress(db, claim, step, total):
        asked = report_progress(db, claim, step, total)
        if hold.job_id in (None, claim.job_id) and step >= 2 and not asked:
            hold.reached_at = time.monotonic()
            hold.reached.set()
            hold.released.wait(timeout=WAIT_S)
            asked = report_progress(db, claim, step, total)
        return asked

    monkeypatch.setattr(worker, "report_progress", progress)
    yield hold
    hold.released.set()
