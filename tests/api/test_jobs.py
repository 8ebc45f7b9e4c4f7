"""Job state against a real database: claims, requeues, and SQLite writes from many threads."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from api.db import Database, migrate
from api.jobs import claim_next, complete, requeue_expired
from api.tables import Generation, Identity, User, new_id, utcnow


@pytest.fixture
def db(database_url) -> Iterator[Database]:
    database = Database(database_url)
    migrate(database.engine)
    yield database
    database.engine.dispose()


def queue_jobs(db: Database, count: int, **job: Any) -> list[str]:
    """``count`` jobs of a new user (queued unless ``job`` says otherwise), oldest first."""
    start = utcnow() - timedelta(hours=1)
    with db.session() as s:
        user = User(id=new_id("usr"), name=new_id("name"), key_hash=new_id("key"))
        s.add(user)
        s.flush()
        identity = Identity(
            id=new_id("idn"),
            user_id=user.id,
            consent_id=new_id("cns"),
            residence="US-CA",
            embedding_encrypted=b"x",
            embedding_dim=128,
            backend="dlib",
            model_id="test",
            photos={"items": []},
        )
        s.add(identity)
        s.flush()
        jobs = [
            Generation(
                id=new_id("gen"),
                user_id=user.id,
                identity_id=identity.id,
                request={"n": 1, "prompt": "me", "width": 64, "height": 64, "steps": 2},
                request_sha256="0" * 64,
                created_at=start + timedelta(seconds=i),
                **job,
            )
            for i in range(count)
        ]
        s.add_all(jobs)
    return [j.id for j in jobs]


def test_each_queued_job_is_claimed_once_oldest_first_by_competing_workers(db):
    ids = queue_jobs(db, 24)
    claims: list = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while (claim := claim_next(db, name, lease_s=60)) is not None:
            with lock:
                claims.append(claim)

    threads = [threading.Thread(target=worker, args=(f"w{i}",), daemon=True) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(c.job_id for c in claims) == sorted(ids)  # every job, none twice
    assert all(c.attempt == 1 for c in claims)
    with db.session() as s:
        rows = {j.id: j for j in s.scalars(select(Generation))}
    assert {rows[c.job_id].lease_owner for c in claims} <= {f"w{i}" for i in range(4)}
    assert all(rows[i].status == "running" and rows[i].lease_expires_at for i in ids)

    first = queue_jobs(db, 3)
    claim = claim_next(db, "solo", lease_s=60)
    assert claim is not None and claim.job_id == first[0]
    assert complete(db, claim, [], ["done"])
    with db.session() as s:
        done = s.get(Generation, first[0])
        assert done is not None
        assert (done.status, done.lease_owner, done.warnings) == (
            "succeeded",
            None,
            {"items": ["done"], "withheld": []},
        )


def test_an_empty_queue_claims_nothing(db):
    assert claim_next(db, "w", lease_s=60) is None


def test_requeue_gives_up_after_max_attempts(db):
    past = utcnow() - timedelta(seconds=10)
    dead = {"status": "running", "lease_owner": "dead", "lease_expires_at": past}
    retried = queue_jobs(db, 1, attempts=1, **dead)[0]
    lost = queue_jobs(db, 1, attempts=3, **dead)[0]
    assert requeue_expired(db, max_attempts=3) == 2
    with db.session() as s:
        again, failed = s.get(Generation, retried), s.get(Generation, lost)
        assert again is not None and failed is not None
        assert again.status == "queued" and again.lease_owner is None
        assert failed.status == "failed" and failed.error_code == "worker_lost"
    assert requeue_expired(db, max_attempts=3) == 0  # nothing stays running forever


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_writers_in_many_threads_all_commit_and_a_failed_one_frees_the_others(db):
    ids = queue_jobs(db, 1)
    errors: list[BaseException] = []

    def failing_writer() -> None:
        try:
            with db.session() as s:
                s.add(User(id=new_id("usr"), name="dup", key_hash=new_id("key")))
                s.flush()  # this thread now holds the write turn
                raise RuntimeError("the request failed after writing")
        except RuntimeError:
            pass

    def writer(n: int) -> None:
        try:
            for i in range(10):
                with db.session() as s:
                    s.add(User(id=new_id("usr"), name=f"u{n}-{i}", key_hash=new_id("key")))
        except BaseException as exc:  # e.g. "database is locked"
            errors.append(exc)

    failing = threading.Thread(target=failing_writer, daemon=True)
    failing.start()
    failing.join(timeout=10)
    threads = [threading.Thread(target=writer, args=(n,), daemon=True) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)  # far below SQLite's 30 s busy timeout: nobody waited for it
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    with db.session() as s:
        names = set(s.scalars(select(User.name)))
    assert "dup" not in names  # the failed transaction was rolled back
    assert {f"u{n}-{i}" for n in range(8) for i in range(10)} <= names
    claim = claim_next(db, "w", lease_s=60)  # no write turn was left held
    assert claim is not None and claim.job_id == ids[0]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("setting", "pragma"), [("normal", 1), ("full", 2)])
def test_the_service_opens_sqlite_in_wal_mode_as_durable_as_configured(
    make_services, setting, pragma
):
    services = make_services(sqlite_synchronous=setting)
    with services.db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == pragma


def test_users_take_turns_however_many_jobs_one_of_them_queued(db):
    """A user who queued three jobs first does not keep a later user waiting for all three:
    each claim serves the user served least recently, then the oldest job."""
    alice = queue_jobs(db, 3)
    bob = queue_jobs(db, 1)  # queued after all of alice's (queue_jobs starts an hour ago)
    with db.session() as s:
        for i, job_id in enumerate(bob):
            s.get(Generation, job_id).created_at = utcnow() - timedelta(minutes=30 - i)
    order = []
    while (claim := claim_next(db, "w", lease_s=60)) is not None:
        order.append(claim.job_id)
        assert complete(db, claim, [], [])
    assert order == [alice[0], bob[0], alice[1], alice[2]]


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_sweep_leaves_the_rows_another_process_is_sweeping(db):
    """Workers in several processes requeue expired leases: a row another sweep has locked
    is skipped, not written again after it (which could undo a claim made in between)."""
    past = utcnow() - timedelta(seconds=10)
    job = queue_jobs(db, 1, status="running", lease_owner="dead", lease_expires_at=past)[0]
    with db.session() as other:  # another process's sweep, between its read and its commit
        other.execute(select(Generation).where(Generation.id == job).with_for_update())
        swept: list[int] = []
        sweep = threading.Thread(target=lambda: swept.append(requeue_expired(db, 3)), daemon=True)
        sweep.start()
        sweep.join(timeout=10)
        assert swept == [0]  # at once: it did not wait for the lock
    assert requeue_expired(db, 3) == 1
