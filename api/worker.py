"""Executors run queued jobs and report back through ``api.jobs``; they never own job state.

``InProcessExecutor`` (the default) is one thread in the server process that
owns the loaded pipeline. A Ray-based executor can replace it by doing the
same loop in a GPU actor: claim, run with heartbeats, commit or finish.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from api.crypto import EmbeddingCipher
from api.db import Database
from api.jobs import (
    Claim,
    claim_next,
    complete,
    finish,
    heartbeat,
    report_progress,
    requeue_expired,
)
from api.storage import FileStorage
from api.tables import Generation, Identity, ImageRow, new_id
from identity.errors import IdentityError
from imagine.errors import ImagineError
from imagine.outputs import finalize
from imagine.pipeline import Cancelled, GenerationResult
from imagine.runtime import Runtime
from llm_prompting import ExpandedPrompt, PromptingError

log = logging.getLogger("api.worker")


class Executor(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def notify(self) -> None:
        """New work may be queued (a hint; executors also poll the database)."""
        ...

    def status(self) -> tuple[bool, str]:
        """(ready, detail) for /readyz."""
        ...


@dataclass
class WorkerContext:
    db: Database
    storage: FileStorage
    cipher: EmbeddingCipher
    lease_s: float
    max_attempts: int
    sweep_s: float = 5.0  # how often expired leases are requeued


class _Stopping(Exception):
    pass


class InProcessExecutor:
    name = "inprocess"

    def __init__(self, ctx: WorkerContext, load: Callable[[], Runtime]):
        self.ctx = ctx
        self._load = load
        self.runtime: Runtime | None = None
        self.owner = f"worker-{secrets.token_hex(4)}"
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="imagine-worker", daemon=True)
        self._detail = "loading models"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)

    def notify(self) -> None:
        self._wake.set()

    def status(self) -> tuple[bool, str]:
        return self.runtime is not None and self._thread.is_alive(), self._detail

    def _main(self) -> None:
        try:
            self.runtime = self._load()
            self._detail = "ready"
        except Exception as exc:  # the service stays up and says why it is not ready
            log.exception("loading the pipeline failed")
            self._detail = f"pipeline failed to load: {exc}"
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
            self._run(claim)

    def _run(self, claim: Claim) -> None:
        lost = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(claim, lost), daemon=True)
        beat.start()
        try:
            run_job(self.ctx, self.runtime, claim, lambda: lost.is_set() or self._stop.is_set())
        finally:
            lost.set()
            beat.join()

    def _heartbeat(self, claim: Claim, lost: threading.Event) -> None:
        while not lost.wait(self.ctx.lease_s / 3):
            if not heartbeat(self.ctx.db, claim, self.ctx.lease_s):
                lost.set()


def run_job(
    ctx: WorkerContext, runtime: Any, claim: Claim, interrupted: Callable[[], bool]
) -> None:
    """Run one claimed job to a terminal state (or leave it for requeue if interrupted)."""
    with ctx.db.session() as s:
        job = s.get(Generation, claim.job_id)
        identity = s.get(Identity, job.identity_id) if job else None
        if job is None or identity is None:
            return
        request, expanded = dict(job.request), dict(job.expanded or {})
        blob, identity_id, backend = identity.embedding_encrypted, identity.id, identity.backend

    cancel = {"asked": False}
    last = {"t": 0.0}

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - last["t"] >= 0.2:  # bounded database writes per second
            cancel["asked"] = report_progress(ctx.db, claim, done, total)
            last["t"] = now

    def cancelled() -> bool:
        if interrupted():
            raise _Stopping()
        return cancel["asked"]

    try:
        result = runtime.pipeline(
            request["prompt"],
            ctx.cipher.decrypt(blob, identity_id),
            n=request["n"],
            seed=request.get("seed"),
            steps=request.get("steps"),
            width=request.get("width"),
            height=request.get("height"),
            style=request.get("style"),
            text=stored_expansion(expanded),
            progress=progress,
            is_cancelled=cancelled,
        )
        store_outputs(ctx, runtime, claim, result, identity_id, backend)
    except _Stopping:
        return  # shutting down or lease lost: the sweeper requeues it
    except Cancelled as exc:
        finish(ctx.db, claim, "cancelled", exc.code, exc.message)
    except (ImagineError, IdentityError, PromptingError) as exc:
        finish(ctx.db, claim, "failed", exc.code, exc.message)
    except Exception:  # a bug: the job fails with a reason, the worker lives on
        log.exception("job %s failed", claim.job_id)
        finish(ctx.db, claim, "failed", "internal_error", "generation failed; see server logs")


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
) -> None:
    """Check and mark each image, write the files, then publish rows and status in one
    transaction. Images that fail the output check are never written; the job lists them."""
    with ctx.db.session() as s:
        job = s.get(Generation, claim.job_id)
        user_id = job.user_id if job else None
    if user_id is None:
        return
    image_ids = [new_id("img") for _ in result.images]  # each watermark leads to its image
    rows, keys, withheld = [], [], []
    for done in finalize(
        result,
        claim.job_id,
        checker=runtime.checker,
        provenance=runtime.provenance,
        face_backend=backend,
        notes=runtime.notes,
        mark_ids=image_ids,
    ):
        if done.data is None:
            withheld.append({"index": done.index, "seed": done.item.seed, "code": done.withheld})
            continue
        key = ctx.storage.new_key()
        ctx.storage.put(key, done.data)
        keys.append(key)
        rows.append(
            ImageRow(
                id=image_ids[done.index],
                user_id=user_id,
                generation_id=claim.job_id,
                identity_id=identity_id,
                index=done.index,
                storage_key=key,
                seed=done.item.seed,
                width=done.item.image.width,
                height=done.item.image.height,
                identity_similarity=done.item.identity.similarity,
                meta=done.meta,
            )
        )
    warnings = [*result.warnings, *runtime.notes]
    if not rows:
        finish(
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


class NullExecutor:
    """Completes every job at once with no images: for API load tests and benchmarks only."""

    name = "null"

    def __init__(self, ctx: WorkerContext, load: Callable[[], Runtime]):
        self.ctx = ctx
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._main, name="imagine-null-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def notify(self) -> None:
        self._wake.set()

    def status(self) -> tuple[bool, str]:
        return self._thread.is_alive(), "null executor: jobs complete without images"

    def _main(self) -> None:
        while not self._stop.is_set():
            claim = claim_next(self.ctx.db, "null", self.ctx.lease_s)
            if claim is None:
                self._wake.wait(timeout=0.5)
                self._wake.clear()
                continue
            complete(self.ctx.db, claim, [], ["null executor: no images were made"])


EXECUTORS: dict[str, type[InProcessExecutor] | type[NullExecutor]] = {
    "inprocess": InProcessExecutor,
    "null": NullExecutor,
}
