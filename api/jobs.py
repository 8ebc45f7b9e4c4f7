"""Job state in the database: submit, claim, lease, progress, cancel, commit, requeue.

The row is the source of truth. A worker owns a running job only while its
lease is valid; every write a worker makes checks ``lease_owner`` so a worker
that lost its lease (stalled, or presumed dead and requeued) cannot commit.
Outputs become visible in one transaction with the ``succeeded`` status.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Connection,
    CursorResult,
    Row,
    Table,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.db import Database
from api.errors import Conflict
from api.limits import TooManyRequests
from api.tables import AuditEvent, Generation, Identity, ImageRow, User, new_id, utcnow
from imagine.request import GenerationSpec

TERMINAL = ("succeeded", "failed", "cancelled")
ACTIVE = ("queued", "running")


@dataclass(frozen=True)
class Claim:
    job_id: str
    owner: str
    attempt: int


# Executors call the functions from here to ``request_cancel`` for every job (progress
# at every denoising step), so they use the table's columns (SQLAlchemy Core): the ORM's
# statement handling, such as looking for loaded copies of the rows an UPDATE changes,
# cost more than the statements themselves (``benchmarks/api.py``). Each runs in a
# Core unit of work of its own (``Database.connection``), which costs less than a session.
JOBS = cast(Table, Generation.__table__)
JOB = JOBS.c
IMAGES = cast(Table, ImageRow.__table__)


# A user's queued and running jobs, counted as ORs of plain parameters (SQLAlchemy renders
# a bound IN list anew on every call).
ACTIVE_OF_USER = (
    select(func.count())
    .select_from(JOBS)
    .where(JOB.user_id == bindparam("user_id"), or_(*(JOB.status == state for state in ACTIVE)))
    .scalar_subquery()
)
NEW_JOB_COLUMNS = (
    "id",
    "user_id",
    "identity_id",
    "status",
    "request",
    "request_sha256",
    "idempotency_key",
    "expanded",
    "total_steps",
    "created_at",
)
# INSERT ... SELECT <the new row> WHERE <the user's active jobs> < cap: the count and the
# insert are one statement, so two submissions cannot both see room for one more job.
INSERT_UNDER_CAP = (
    insert(JOBS)
    .from_select(
        NEW_JOB_COLUMNS,
        select(*(bindparam(name, type_=JOBS.c[name].type) for name in NEW_JOB_COLUMNS)).where(
            bindparam("cap") > ACTIVE_OF_USER
        ),
    )
    .returning(JOB.id)
)  # rowcount: psycopg reports -1 for an INSERT ... SELECT
USERS = cast(Table, User.__table__)
LOCK_USER = select(USERS.c.id).where(USERS.c.id == bindparam("user_id")).with_for_update()


def insert_job(c: Connection, row: dict[str, Any], cap: int) -> bool:
    """Queue the job ``row`` (the columns of ``NEW_JOB_COLUMNS``) unless its owner already
    has ``cap`` jobs queued or running; False when the cap is reached.

    SQLite runs the statement under its one write lock, so the count it reads is current.
    PostgreSQL (read committed) would let two transactions each count without the other's
    uncommitted row: the owner's ``users`` row is locked first, so a user's submissions
    take turns, and the count, a new statement, sees every job committed before.
    """
    if c.dialect.name == "postgresql":
        c.execute(LOCK_USER, {"user_id": row["user_id"]})
    return c.execute(INSERT_UNDER_CAP, {**row, "cap": cap}).first() is not None


# Submission runs these on every request: built once, on the table's columns (Core).
# One statement reads what the caller checks of the identity and counts its owner's queued
# and running jobs (for the message; ``insert_job`` enforces the cap atomically).
IDENTITIES = cast(Table, Identity.__table__)
_ID = IDENTITIES.c
SUBMIT_CHECKS = select(
    _ID.user_id,
    _ID.embedding_dim,
    _ID.backend,
    _ID.residence,
    _ID.last_used_at,
    ACTIVE_OF_USER.label("active"),
).where(_ID.id == bindparam("identity_id"))
SAME_KEY = select(JOB.id, JOB.status, JOB.request_sha256).where(
    JOB.user_id == bindparam("user_id"), JOB.idempotency_key == bindparam("idempotency_key")
)
MARK_USED = update(IDENTITIES).where(_ID.id == bindparam("identity_id"))
# Retention counts years from an identity's last use; recording it once a day is
# precise enough, and spares most job submissions a second write.
LAST_USE_RESOLUTION = timedelta(days=1)


def replay(c: Connection, user_id: str, idempotency_key: str | None, digest: str) -> Row | None:
    """The job (``id``, ``status``) the user already submitted with ``idempotency_key``, if
    any; ``Conflict`` when that submission's body (``digest``, its SHA-256) was another."""
    if not idempotency_key:
        return None
    previous = c.execute(SAME_KEY, {"user_id": user_id, "idempotency_key": idempotency_key}).first()
    if previous is not None and previous.request_sha256 != digest:
        raise Conflict(
            "this Idempotency-Key was used with a different request", code="idempotency_conflict"
        )
    return previous


def submission_checks(c: Connection, user_id: str, identity_id: str) -> Row | None:
    """What a submission checks of the identity (``user_id``, ``embedding_dim``,
    ``backend``, ``residence``, ``last_used_at``) and ``active``, the user's queued and
    running jobs; None when there is no such identity. The caller checks the owner."""
    return c.execute(SUBMIT_CHECKS, {"identity_id": identity_id, "user_id": user_id}).first()


def submit(
    c: Connection,
    user_id: str,
    identity: Row,
    request: dict[str, Any],
    expanded: dict[str, Any],
    digest: str,
    idempotency_key: str | None,
    cap: int,
) -> str:
    """Queue the checked ``request`` (a ``GenerationSpec`` dict, prompt already expanded to
    ``expanded``) on ``identity`` (a ``submission_checks`` row); the new job's id.

    ``TooManyRequests`` when the user has ``cap`` jobs queued or running; ``Conflict``
    when a concurrent request with the same ``idempotency_key`` won the race.
    """
    if identity.active >= cap:
        raise _too_many(identity.active, cap)
    job_id, now = new_id("gen"), utcnow()
    row = {
        "id": job_id,
        "user_id": user_id,
        "identity_id": request["identity_id"],
        "status": "queued",
        "request": request,
        "request_sha256": digest,
        "idempotency_key": idempotency_key,
        "expanded": expanded,
        "total_steps": request["n"] * request["steps"],
        "created_at": now,
    }
    try:
        queued = insert_job(c, row, cap)
    except IntegrityError:  # a concurrent request with the same key won the race
        raise Conflict(
            "a request with this Idempotency-Key is in progress", code="idempotency_conflict"
        ) from None
    if not queued:  # another submission took the last place since the count above
        raise _too_many(None, cap)
    if identity.last_used_at < now - LAST_USE_RESOLUTION:
        c.execute(MARK_USED, {"identity_id": request["identity_id"], "last_used_at": now})
    return job_id


def _too_many(active: int | None, cap: int) -> TooManyRequests:
    count = f"{active} generations" if active is not None else "as many generations"
    return TooManyRequests(
        f"you have {count} queued or running; the limit is {cap}",
        retry_after=5,
        code="too_many_jobs",
    )


def _lease(target: Any) -> Any:
    """``UPDATE`` that leases the job ``target`` names if it is still queued; the owner,
    the time and the lease's end are bound per call (``_lease_values``)."""
    return (
        update(JOBS)
        .where(JOB.id == target, JOB.status == "queued")
        .values(
            status="running",
            lease_owner=bindparam("owner"),
            lease_expires_at=bindparam("until", type_=JOB.lease_expires_at.type),
            attempts=JOB.attempts + 1,
            started_at=bindparam("now", type_=JOB.started_at.type),
            progress=0.0,
            step=0,
        )
        .returning(JOB.id, JOB.attempts)
    )


def _lease_values(owner: str, lease_s: float) -> dict[str, Any]:
    now = utcnow()
    return {"owner": owner, "now": now, "until": now + timedelta(seconds=lease_s)}


# Queued jobs, fairly: the user served least recently first (never served: first of
# all), then oldest first. A user's most recent start stands for when they were last
# served, so users take turns however many jobs one of them has queued.
_SERVED = JOBS.alias("served")
_LAST_SERVED = (
    select(func.max(_SERVED.c.started_at)).where(_SERVED.c.user_id == JOB.user_id).scalar_subquery()
)
_QUEUED = (
    select(JOB.id)
    .where(JOB.status == "queued")
    .order_by(_LAST_SERVED.asc().nulls_first(), JOB.created_at, JOB.id)
)
_NEXT_QUEUED = _QUEUED.limit(1)
LEASE_NEXT = _lease(_NEXT_QUEUED.scalar_subquery())
# PostgreSQL: workers on other machines skip a job another one is leasing, never wait on it.
LEASE_NEXT_SKIP_LOCKED = _lease(_NEXT_QUEUED.with_for_update(skip_locked=True).scalar_subquery())
LEASE_ONE = _lease(bindparam("job_id"))


def claim_next(db: Database, owner: str, lease_s: float) -> Claim | None:
    """Take the next queued job (``_QUEUED``: users in turn, then oldest first): running,
    leased to ``owner`` until now + lease. One statement chooses the job and leases it."""
    postgres = db.engine.dialect.name == "postgresql"
    with db.connection() as c:
        row = c.execute(
            LEASE_NEXT_SKIP_LOCKED if postgres else LEASE_NEXT, _lease_values(owner, lease_s)
        ).first()
    return Claim(row.id, owner, int(row.attempts)) if row else None


def claim_job(db: Database, job_id: str, owner: str, lease_s: float) -> Claim | None:
    """Lease the job ``job_id`` to ``owner`` if it is still queued (None: another worker
    has it, or it ended): a dispatcher names the job, the database decides who runs it."""
    with db.connection() as c:
        return _take(c, job_id, owner, lease_s)


def queued_jobs(db: Database, limit: int, skip: frozenset[str] = frozenset()) -> list[Row]:
    """Up to ``limit`` queued jobs in claim order (users in turn, then oldest first) with
    their requests, leaving out ``skip`` (the ones already handed out)."""
    query = _QUEUED.add_columns(JOB.request)
    if skip:
        query = query.where(JOB.id.not_in(skip))
    with db.connection() as c:
        return list(c.execute(query.limit(limit)).all())


def job_request(db: Database, claim: Claim) -> dict[str, Any] | None:
    with db.connection() as c:
        return c.scalar(select(JOB.request).where(JOB.id == claim.job_id))


def batch_key(request: dict[str, Any]) -> tuple[int, int, int]:
    """Jobs with the same key can share device batches: (width, height, steps)."""
    return GenerationSpec.from_dict(request).shape


def claim_compatible(
    db: Database, owner: str, lease_s: float, key: tuple[int, int, int], room: int, scan: int = 32
) -> list[Claim]:
    """Take queued jobs that can join a device batch of ``key``, in claim order, while their
    images fit in ``room``. Looks at the ``scan`` oldest queued jobs only, so a large
    queue costs one bounded query."""
    claims: list[Claim] = []
    with db.connection() as c:
        query = _QUEUED.add_columns(JOB.request).limit(scan)
        if db.engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        for job_id, request in c.execute(query).all():
            if batch_key(request) != key or request["n"] > room:
                continue
            claim = _take(c, job_id, owner, lease_s)
            if claim is not None:
                claims.append(claim)
                room -= request["n"]
            if room <= 0:
                break
    return claims


def _take(c: Connection, job_id: str, owner: str, lease_s: float) -> Claim | None:
    row = c.execute(LEASE_ONE, {**_lease_values(owner, lease_s), "job_id": job_id}).first()
    return Claim(job_id, owner, int(row.attempts)) if row else None


def release(db: Database, claim: Claim) -> bool:
    """Give a running job back to the queue without counting the attempt (its batch was
    stopped for another job's cancellation, or the server is shutting down)."""
    with db.connection() as c:
        return bool(
            _changed(
                c,
                update(JOBS)
                .where(_owned(claim))
                .values(
                    status="queued",
                    lease_owner=None,
                    lease_expires_at=None,
                    progress=0.0,
                    step=0,
                    attempts=JOB.attempts - 1,
                ),
            )
        )


def _changed(c: Connection, statement: Any, params: dict[str, Any] | None = None) -> int:
    """Rows an UPDATE touched: the guard of every conditional state change here."""
    result = cast(CursorResult[Any], c.execute(statement, params))
    return result.rowcount


def _owned(claim: Claim) -> Any:
    return (JOB.id == claim.job_id) & (JOB.status == "running") & (JOB.lease_owner == claim.owner)


def heartbeat(db: Database, claim: Claim, lease_s: float) -> bool:
    """Extend the lease; False when the job is no longer ours (requeued, cancelled, erased)."""
    with db.connection() as c:
        return bool(
            _changed(
                c,
                update(JOBS)
                .where(_owned(claim))
                .values(lease_expires_at=utcnow() + timedelta(seconds=lease_s)),
            )
        )


def cancel_asked(db: Database, claim: Claim) -> bool:
    """True when the user asked to cancel the job (or it is no longer ours)."""
    with db.connection() as c:
        return _cancel_asked(c, claim)


def _cancel_asked(c: Connection, claim: Claim) -> bool:
    row = c.execute(CANCEL_STATE, {"job_id": claim.job_id}).first()
    return row is None or bool(row.cancel_requested) or row.lease_owner != claim.owner


CANCEL_STATE = select(JOB.cancel_requested, JOB.lease_owner).where(JOB.id == bindparam("job_id"))


def report_progress(db: Database, claim: Claim, step: int, total: int) -> bool:
    """Record progress; returns True when the user asked to cancel (or the job vanished)."""
    with db.connection() as c:
        c.execute(
            update(JOBS)
            .where(_owned(claim))
            .values(step=step, total_steps=total, progress=step / max(total, 1))
        )
        return _cancel_asked(c, claim)


COMPLETE = (
    update(JOBS)
    .where(
        JOB.id == bindparam("job_id"),
        JOB.status == "running",
        JOB.lease_owner == bindparam("owner"),
        JOB.cancel_requested.is_(False),
    )
    .values(
        status="succeeded",
        progress=1.0,
        finished_at=bindparam("now", type_=JOB.finished_at.type),
        lease_owner=None,
        lease_expires_at=None,
        warnings=bindparam("outcome", type_=JOB.warnings.type),
    )
)


def complete(
    db: Database,
    claim: Claim,
    images: list[dict[str, Any]],
    warnings: list[str],
    withheld: list[dict] | None = None,
) -> bool:
    """Publish the images (rows of ``images``, each with every column) and mark the job
    succeeded, atomically; False if no longer ours."""
    with db.connection() as c:
        done = _changed(
            c,
            COMPLETE,
            {
                "job_id": claim.job_id,
                "owner": claim.owner,
                "now": utcnow(),
                "outcome": {"items": warnings, "withheld": withheld or []},
            },
        )
        if not done:
            return False
        if images:
            c.execute(insert(IMAGES), images)
    return True


def end(
    db: Database,
    claim: Claim,
    status: str,
    code: str | None,
    message: str | None,
    withheld: list[dict] | None = None,
) -> bool:
    """End a running job as failed or cancelled."""
    assert status in ("failed", "cancelled")
    with db.connection() as c:
        return bool(
            _changed(
                c,
                update(JOBS)
                .where(_owned(claim))
                .values(
                    status=status,
                    error_code=code,
                    error_message=message,
                    finished_at=utcnow(),
                    lease_owner=None,
                    lease_expires_at=None,
                    **({"warnings": {"items": [], "withheld": withheld}} if withheld else {}),
                ),
            )
        )


def request_cancel(session: Session, job: Generation) -> None:
    """Queued jobs end now; running ones at the worker's next step check."""
    if job.status == "queued":
        job.status, job.finished_at = "cancelled", utcnow()
        job.error_code, job.error_message = "cancelled", "cancelled before it started"
    elif job.status == "running":
        job.cancel_requested = True


def requeue_expired(db: Database, max_attempts: int, now: datetime | None = None) -> int:
    """Running jobs whose lease ran out go back to the queue, or fail after max_attempts."""
    now = now or utcnow()
    query = select(Generation).where(
        Generation.status == "running", Generation.lease_expires_at < now
    )
    if db.engine.dialect.name == "postgresql":
        # Workers in other processes sweep too: a row another sweep holds is its to requeue
        # (waiting, then writing it again, could undo a claim made in between).
        query = query.with_for_update(skip_locked=True)
    with db.session() as s:
        expired = s.scalars(query).all()
        for job in expired:
            job.lease_owner, job.lease_expires_at = None, None
            if job.cancel_requested:
                job.status, job.error_code, job.finished_at = "cancelled", "cancelled", now
            elif job.attempts >= max_attempts:
                job.status, job.finished_at = "failed", now
                job.error_code = "worker_lost"
                job.error_message = f"the worker running it stopped {job.attempts} times"
            else:
                job.status, job.progress, job.step = "queued", 0.0, 0
            s.add(
                AuditEvent(
                    kind="job_requeued" if job.status == "queued" else "job_lost",
                    subject=job.id,
                    detail={"attempts": job.attempts},
                )
            )
        return len(expired)
