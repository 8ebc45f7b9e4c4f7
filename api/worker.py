"""Executors run queued jobs and report back through ``api.jobs``; they never own job state.

``InProcessExecutor`` (the default) is one thread in the server process that
owns the loaded pipeline; ``imagine worker`` runs the same thread in a process
of its own, beside API processes whose executor is ``none``. A Ray-based
executor can replace it by doing the same loop in a GPU actor: claim, run with
heartbeats, commit or end.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from sqlalchemy import select

from api.crypto import EmbeddingCipher
from api.db import Database
from api.jobs import (
    Claim,
    batch_key,
    cancel_asked,
    claim_compatible,
    claim_next,
    complete,
    end,
    heartbeat,
    job_request,
    release,
    report_progress,
    requeue_expired,
)
from api.settings import ServiceSettings
from api.storage import Storage
from api.tables import Generation, Identity, IdentityKey, new_id, utcnow
from imagine.errors import CODED_ERRORS
from imagine.outputs import finalize
from imagine.pipeline import Cancelled, GenerationRequest, GenerationResult, PersonalizedPipeline
from imagine.request import GenerationSpec
from imagine.runtime import Runtime, load_runtime
from llm_prompting import ExpandedPrompt

log = logging.getLogger("api.worker")
# How long a stop waits for the running step: with uvicorn's 5 s for open connections,
# `imagine serve` exits within 10 s of SIGTERM.
STOP_TIMEOUT_S = 4.0


class Executor(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self, timeout: float = ...) -> None: ...

    def notify(self) -> None:
        """New work may be queued (a hint; executors also poll the database)."""
        ...

    def status(self) -> tuple[bool, str]:
        """(ready, detail) for /readyz."""
        ...


@dataclass
class WorkerContext:
    db: Database
    storage: Storage
    cipher: EmbeddingCipher
    lease_s: float
    max_attempts: int
    sweep_s: float = 5.0  # how often expired leases are requeued
    batch_window_s: float = 0.0  # how long a lone job waits for compatible ones to batch with
    job_timeout_s: float = 0.0  # a run longer than this fails its jobs with job_timeout; 0: none


class _Stopping(Exception):
    """The worker is stopping (shutdown, or its lease was lost): the jobs go back to the queue."""


class _TimedOut(Exception):
    """The run passed its time limit: its jobs fail with ``job_timeout``."""


ENDED_EARLY = (_Stopping, _TimedOut, Cancelled)  # a run ended before publishing: _end_early


class _WorkerThread:
    """One thread that claims queued jobs and works on them; the database holds the state.

    Subclasses say how to get ready (``_prepare``) and what to do with a claim (``_work``).
    """

    name = "worker"

    def __init__(self, ctx: WorkerContext, load: Callable[[], Runtime] | None = None):
        self.ctx = ctx
        self._load = load
        # Who holds a lease, as the job row shows it: host and PID name the process.
        host = socket.gethostname()[:32]
        self.owner = f"{self.name}-{host}-{os.getpid()}-{secrets.token_hex(2)}"
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name=f"imagine-{self.name}", daemon=True)
        self._ready = False
        self._detail = "starting"
        self._running: list[Claim] = []  # the claims of the run in progress
        self.failure: Exception | None = None  # why it could not get ready

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop claiming; the running jobs go back to the queue at their next denoising
        step. A step longer than ``timeout`` is not waited for: its jobs are released from
        here (every write of the thread checks the lease, so it cannot publish them after),
        and the thread, a daemon, ends with the process."""
        self._stop.set()
        self._wake.set()
        if not self._thread.is_alive():
            return
        self._thread.join(timeout=timeout)
        if self._thread.is_alive():
            for claim in list(self._running):
                release(self.ctx.db, claim)

    def notify(self) -> None:
        self._wake.set()

    def status(self) -> tuple[bool, str]:
        return self._ready and self._thread.is_alive(), self._detail

    def is_alive(self) -> bool:
        """The thread runs: getting ready, or claiming jobs (False once it failed or stopped)."""
        return self._thread.is_alive()

    def _prepare(self) -> str:
        return "ready"

    def _work(self, claim: Claim) -> None:
        raise NotImplementedError

    def _main(self) -> None:
        try:
            self._detail = self._prepare()
            self._ready = True
        except Exception as exc:  # the service stays up and says why it is not ready
            log.exception("the %s executor failed to start", self.name)
            self._detail = f"pipeline failed to load: {exc}"
            self.failure = exc
            return
        last_sweep = 0.0
        while not self._stop.is_set():
            if time.monotonic() - last_sweep > self.ctx.sweep_s:
                requeue_expired(self.ctx.db, self.ctx.max_attempts)
                last_sweep = time.monotonic()
            claim = claim_next(self.ctx.db, self.owner, self.ctx.lease_s)
            if claim is None:
                self._wake.wait(timeout=1.0)
                self._wake.clear()
                continue
            log.info("%s runs job %s (attempt %d)", self.owner, claim.job_id, claim.attempt)
            self._work(claim)


class InProcessExecutor(_WorkerThread):
    """The default: this thread owns the loaded pipeline and runs one job at a time."""

    name = "inprocess"
    runtime: Runtime | None = None

    def _prepare(self) -> str:
        self._detail = "loading models"
        assert self._load is not None, "the in-process executor loads a pipeline"
        self.runtime = self._load()
        return "ready"

    def _work(self, claim: Claim) -> None:
        assert self.runtime is not None  # _prepare loaded it before any claim
        claims = self._running = [claim, *self._admit(claim)]
        for other in claims[1:]:
            log.info(
                "%s runs job %s (attempt %d) in the batch of %s",
                self.owner,
                other.job_id,
                other.attempt,
                claim.job_id,
            )
        try:
            run_leased(self.ctx, self.runtime, claims, self._stop.is_set)
        finally:
            self._running = []

    def _admit(self, first: Claim) -> list[Claim]:
        """Queued jobs of the same size and steps that fit beside ``first`` in one device
        batch. When none is queued yet, waits the admission window once for one."""
        assert self.runtime is not None
        request = job_request(self.ctx.db, first)
        room = self.runtime.pipeline.max_batch - (request["n"] if request else 0)
        if request is None or room <= 0:
            return []
        key, ctx = batch_key(request), self.ctx
        claims = claim_compatible(ctx.db, self.owner, ctx.lease_s, key, room)
        if not claims and ctx.batch_window_s > 0 and not self._stop.wait(ctx.batch_window_s):
            claims = claim_compatible(ctx.db, self.owner, ctx.lease_s, key, room)
        return claims


def run_leased(
    ctx: WorkerContext, runtime: Runtime, claims: list[Claim], stopping: Callable[[], bool]
) -> None:
    """Run claimed jobs (``run_jobs``) while a thread renews their leases. A job whose lease
    is lost (requeued or erased under it) stops at its next step, as all do once
    ``stopping()`` is true, and goes back to the queue unpublished."""
    lost: set[str] = set()  # jobs whose lease is no longer ours
    done = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(ctx, claims, lost, done), daemon=True)
    beat.start()
    try:
        run_jobs(ctx, runtime, claims, lambda claim: stopping() or claim.job_id in lost)
    finally:
        done.set()
        beat.join()


def _heartbeat(
    ctx: WorkerContext, claims: list[Claim], lost: set[str], done: threading.Event
) -> None:
    """Renew the leases of ``claims``; a job whose lease is not ours any more (requeued
    or erased under us, or already ended by this run) goes into ``lost``."""
    while not done.wait(ctx.lease_s / 3):
        for claim in claims:
            if claim.job_id not in lost and not heartbeat(ctx.db, claim, ctx.lease_s):
                lost.add(claim.job_id)


@dataclass
class _Job:
    """A claimed job with what its run needs, read once from the database."""

    claim: Claim
    spec: GenerationSpec  # as submitted: steps and size resolved, prompt normalised
    request: GenerationRequest
    identity_id: str
    backend: str
    cancel_asked: bool = False


def load_job(ctx: WorkerContext, pipeline: PersonalizedPipeline, claim: Claim) -> _Job | None:
    with ctx.db.session() as s:
        job = s.get(Generation, claim.job_id)
        if job is None:
            return None  # erased since it was claimed
        # One statement, so that the blob and its key come from one snapshot (a concurrent
        # seal_legacy_embeddings replaces both).
        identity = s.execute(
            select(Identity.embedding_encrypted, IdentityKey.wrapped_key, Identity.backend)
            .outerjoin(IdentityKey, IdentityKey.identity_id == Identity.id)
            .where(Identity.id == job.identity_id)
        ).one_or_none()
        if identity is None:
            return None  # erased since it was claimed
        request, expanded = dict(job.request), dict(job.expanded or {})
        identity_id = job.identity_id
        blob, wrapped_key, backend = identity
    spec = GenerationSpec.from_dict(request)
    base = secrets.randbelow(2**31) if spec.seed is None else spec.seed
    text = stored_expansion(expanded) or pipeline.expand(spec.prompt, spec.style)
    embedding = ctx.cipher.decrypt(blob, identity_id, wrapped_key)
    return _Job(
        claim,
        spec,
        GenerationRequest(spec.prompt, text, embedding, spec.seeds(base)),
        identity_id,
        backend,
    )


def run_jobs(
    ctx: WorkerContext,
    runtime: Runtime,
    claims: list[Claim],
    interrupted: Callable[[Claim], bool],
) -> None:
    """Run claimed jobs of one size and step count as one device batch, each to a terminal
    state. A job that fails its own checks fails alone; when one job is cancelled mid-run,
    the others go back to the queue and run again; when a job is interrupted (shutdown,
    lost lease) while the batch denoises, every job goes back to the queue, and while its
    images are finished, that job alone (the others may have ended already)."""
    pipeline = runtime.pipeline
    jobs = []
    for claim in claims:
        with _job_errors(ctx, claim):
            job = load_job(ctx, pipeline, claim)
            if job is None:
                continue
            pipeline.check_inputs(job.spec, job.request.embedding)
            jobs.append(job)
    if not jobs:
        return
    last = {"t": 0.0}
    deadline = time.monotonic() + ctx.job_timeout_s if ctx.job_timeout_s else math.inf

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - last["t"] < 0.2:  # bounded database writes per second,
            for job in jobs:  # but a cancel is read at every step: it bites at the next
                job.cancel_asked = cancel_asked(ctx.db, job.claim)
            return
        last["t"] = now
        for job in jobs:  # every job of the batch is as far along as the batch
            job_total = len(job.request.seeds) * job.spec.shape[2]
            step = round(done / total * job_total)
            job.cancel_asked = report_progress(ctx.db, job.claim, step, job_total)

    def stop_or_time_out(of: list[_Job]) -> None:
        if any(interrupted(job.claim) for job in of):
            raise _Stopping()
        if time.monotonic() > deadline:
            raise _TimedOut()

    def cancelled() -> bool:
        """Between denoising steps: stop, time out, or tell the pipeline whether to cancel
        (the whole batch stops for one cancelled job; the others run again)."""
        stop_or_time_out(jobs)
        return any(job.cancel_asked for job in jobs)

    def check(job: _Job) -> None:
        """Between the images of one job while they are finished (checks, marks)."""
        stop_or_time_out([job])
        job.cancel_asked = cancel_asked(ctx.db, job.claim)
        if job.cancel_asked:
            raise Cancelled("cancelled while its images were finished")

    width, height, steps = jobs[0].spec.shape  # the same for every job (batch_key)
    try:
        results = pipeline.generate_batch(
            [job.request for job in jobs],
            steps=steps,
            width=width,
            height=height,
            progress=progress,
            is_cancelled=cancelled,
        )
    except ENDED_EARLY as exc:
        _end_early(ctx, jobs, exc)
        return
    except Exception as exc:  # the whole batch failed: each of its jobs ends with the reason
        for job in jobs:
            _end_with(ctx, job.claim, exc)
        return
    for job, result in zip(jobs, results, strict=True):
        try:
            with _job_errors(ctx, job.claim):
                store_outputs(
                    ctx,
                    runtime,
                    job.claim,
                    result,
                    job.identity_id,
                    job.backend,
                    partial(check, job),
                )
        except ENDED_EARLY as exc:
            _end_early(ctx, [job], exc)


def _end_early(ctx: WorkerContext, jobs: list[_Job], exc: Exception) -> None:
    """End a run that stopped before its images were published. A shutdown (or a lost
    lease) sends every job back to the queue; a time-out fails them all; a cancel ends the
    jobs that asked for it and sends the others, which shared its batch, back."""
    for job in jobs:
        if isinstance(exc, _Stopping):
            release(ctx.db, job.claim)
        elif isinstance(exc, _TimedOut):
            message = f"the generation ran past the time limit of {ctx.job_timeout_s:g} s"
            end(ctx.db, job.claim, "failed", "job_timeout", message)
        elif job.cancel_asked:
            assert isinstance(exc, Cancelled)
            end(ctx.db, job.claim, "cancelled", exc.code, exc.message)
        else:
            release(ctx.db, job.claim)  # it ran in a batch with a cancelled job


@contextmanager
def _job_errors(ctx: WorkerContext, claim: Claim) -> Iterator[None]:
    """Whatever goes wrong in the block ends this job, not the worker (a stop, time-out or
    cancel goes on to ``_end_early``)."""
    try:
        yield
    except ENDED_EARLY:
        raise
    except Exception as exc:
        _end_with(ctx, claim, exc)


def _end_with(ctx: WorkerContext, claim: Claim, exc: Exception) -> None:
    """A refusal ends the job with its code; a bug with internal_error, logged."""
    if isinstance(exc, CODED_ERRORS):
        end(ctx.db, claim, "failed", exc.code, exc.message)
        return
    log.error("job %s failed", claim.job_id, exc_info=exc)
    end(ctx.db, claim, "failed", "internal_error", "generation failed; see server logs")


def stored_expansion(expanded: dict) -> ExpandedPrompt | None:
    """The expansion made (and moderated) at submission, as the job row keeps it."""
    if not expanded:
        return None
    return ExpandedPrompt(
        **{
            **expanded,
            "added": tuple(expanded.get("added", ())),
            "warnings": tuple(expanded.get("warnings", ())),
        }
    )


def store_outputs(
    ctx: WorkerContext,
    runtime: Runtime,
    claim: Claim,
    result: GenerationResult,
    identity_id: str,
    backend: str,
    check: Callable[[], None] = lambda: None,
) -> None:
    """Check and mark each image, write the files, then publish rows and status in one
    transaction. Images that fail the output check are never written; the job lists them.
    ``check`` runs before each image (marking one takes seconds at large sizes) and raises
    to stop: what was written is deleted, and nothing is published."""
    with ctx.db.session() as s:
        job = s.get(Generation, claim.job_id)
        user_id = job.user_id if job else None
    if user_id is None:
        return
    image_ids = [new_id("img") for _ in result.images]  # each watermark leads to its image
    rows: list[dict] = []
    keys: list[str] = []
    withheld: list[dict] = []
    try:
        for done in finalize(
            result,
            claim.job_id,
            checker=runtime.checker,
            provenance=runtime.provenance,
            face_backend=backend,
            notes=runtime.notes,
            mark_ids=image_ids,
            before_each=check,
        ):
            if done.data is None:
                withheld.append(
                    {"index": done.index, "seed": done.item.seed, "code": done.withheld}
                )
                continue
            key = ctx.storage.new_key()
            ctx.storage.put(key, done.data)
            keys.append(key)
            rows.append(
                dict(
                    id=image_ids[done.index],
                    user_id=user_id,
                    generation_id=claim.job_id,
                    identity_id=identity_id,
                    index=done.index,
                    storage_key=key,
                    seed=done.item.seed,
                    width=done.item.image.width,
                    height=done.item.image.height,
                    identity_similarity=done.item.identity_score.similarity,
                    meta=done.meta,
                    created_at=utcnow(),
                )
            )
    except BaseException:
        for key in keys:
            ctx.storage.delete(key)
        raise
    warnings = [*result.warnings, *runtime.notes]
    if not rows:
        end(
            ctx.db,
            claim,
            "failed",
            "unsafe_output",
            "every image was withheld: none passed the output safety check",
            withheld,
        )
        return
    if not complete(ctx.db, claim, rows, warnings, withheld):
        for key in keys:  # cancelled, erased or requeued meanwhile: publish nothing
            ctx.storage.delete(key)


class NullExecutor(_WorkerThread):
    """Completes every job at once with no images: for API load tests and benchmarks only."""

    name = "null"

    def _prepare(self) -> str:
        return "null executor: jobs complete without images"

    def _work(self, claim: Claim) -> None:
        complete(self.ctx.db, claim, [], ["null executor: no images were made"])


class NoExecutor:
    """``imagine serve --executor none``: this process runs no jobs; ``imagine worker``
    processes claim them from the database they share with it (PostgreSQL)."""

    name = "none"

    def start(self) -> None:
        pass

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        pass

    def notify(self) -> None:
        pass  # workers poll the database

    def status(self) -> tuple[bool, str]:
        return True, "none (jobs run in imagine worker processes)"


def _ray(ctx: WorkerContext, settings: ServiceSettings) -> Executor:
    from api.ray_executor import RayExecutor  # imports Ray: only for --executor ray

    return RayExecutor(ctx, settings)


# name -> the executor for a service's worker context and settings (not started)
EXECUTORS: dict[str, Callable[[WorkerContext, ServiceSettings], Executor]] = {
    "inprocess": lambda ctx, settings: InProcessExecutor(ctx, partial(load_runtime, settings)),
    "none": lambda ctx, settings: NoExecutor(),
    "null": lambda ctx, settings: NullExecutor(ctx),
    "ray": _ray,
}
