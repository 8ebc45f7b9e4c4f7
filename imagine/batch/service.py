"""The service executor: a batch submitted to a running Imagine Me service.

Each distinct set of photos is enrolled once (``POST /v1/identities``, with the
consent version and residence the operator declares) and the identity id is
kept in the state file, so a resumed run enrolls nothing twice; lines naming
an ``identity_id`` use it as is. Each prompt of an item becomes one generation
job of its ``n`` copies; a resumed run asks for the same job again and writes
only the images still missing. At most ``concurrency`` jobs are in flight: a
thread per job submits it, follows its server-sent events and downloads its
images and their metadata into the same layout as local mode; results reach
the sink from the calling thread only.

Idempotency: every job is submitted with an ``Idempotency-Key`` made of the
run's token (kept in the state), the item, the first image index and a digest
of the request, so a run killed after submitting (or halfway through a
download) finds the same job again on ``--resume`` instead of queueing a
duplicate. A job found that way which had failed or was cancelled (or which a
stopping run cancelled and which then ended cancelled: the state lists those)
is submitted afresh under the next attempt number.

The client (``imagine/batch/client.py``) minds the service's manners: a 429
holds every request until its ``Retry-After`` has passed; connection errors and
502/503/504 (any 5xx for requests that are safe to repeat) are retried with
exponential backoff, then fail the item as ``service_unavailable``; any other
refusal fails the item with the service's own error code. Stopping cancels the
jobs in flight (the service stops them after their current step), waits up to
``STOP_GRACE_S`` for them to end and leaves their items pending for ``--resume``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import count, groupby
from typing import Any

import httpx

from imagine.batch.client import ServiceClient, ServiceConfig, ServiceError, ServiceInfo, Stopped
from imagine.batch.executor import ItemWork, Sink
from imagine.batch.manifest import BatchItem

log = logging.getLogger(__name__)

STOP_GRACE_S = 15.0  # how long a stopping run waits for its jobs to acknowledge the cancel
MAX_ATTEMPTS = 20  # fresh submissions of one job across resumes (failed/cancelled ones)


@dataclass(frozen=True)
class Job:
    """One prompt of an item: a generation of all its ``n`` copies, of which ``wanted``
    are still missing on disk. Always the whole prompt, so a resumed run asks for exactly
    what it asked before (the same Idempotency-Key) and gets the same job back."""

    item: BatchItem
    prompt: str
    first_k: int  # image index of copy 0 in the item
    seed: int  # of copy 0; copy j uses seed + j, as the service does
    wanted: frozenset[int]  # image indices to write

    @property
    def count(self) -> int:
        return self.item.n


def split_jobs(work: Sequence[ItemWork]) -> list[Job]:
    """One job per prompt that still misses images, in manifest order."""
    jobs = []
    for unit in work:
        n = unit.item.n
        for p, group in groupby(unit.jobs, key=lambda j: j.k // n):
            missing = list(group)
            first = missing[0]
            seed = first.seed - first.k % n
            jobs.append(Job(unit.item, first.prompt, p * n, seed, frozenset(j.k for j in missing)))
    return jobs


def _body(job: Job, identity_id: str) -> dict[str, Any]:
    item = job.item
    body: dict[str, Any] = {
        "identity_id": identity_id,
        "prompt": job.prompt,
        "n": job.count,
        "seed": job.seed,
        "width": item.width,
        "height": item.height,
        "steps": item.steps,
    }
    if item.style is not None:
        body["style"] = item.style
    return body


# What worker threads tell the calling thread: ("image", item_id, k, png, meta),
# ("failed", item_id, code, message), ("timing", stage, seconds), ("remember", key, value),
# ("started", job_id), ("ended", job_id).
Event = tuple[Any, ...]


class ServiceExecutor:
    name = "service"

    def __init__(
        self,
        config: ServiceConfig,
        info: ServiceInfo,
        transport: httpx.BaseTransport | None = None,
    ):
        self.config, self.info = config, info
        self.stop = threading.Event()
        self.client = ServiceClient(config, self.stop, transport)
        self.notes: tuple[str, ...] = ()
        # More jobs than the user may queue would only earn 429 too_many_jobs.
        self.concurrency = min(config.concurrency, info.max_queued_jobs)
        if self.concurrency < config.concurrency:
            self.notes += (
                f"{self.concurrency} job(s) in flight, not {config.concurrency}: the service "
                f"queues at most {info.max_queued_jobs} per user",
            )
        # Identities are the service's: a run resumed against another one enrolls anew.
        self.memo_key = f"identities {config.url}"
        self.identities: dict[str, str] = {}  # photo_key -> identity id on the service
        self.refused: dict[str, ServiceError] = {}  # photo_key -> why enrollment failed
        self.enroll_lock = threading.Lock()  # one enrollment at a time; the service does too
        self.token = ""
        self.cancelled: set[str] = set()  # jobs a stopping run (this or an earlier one) cancelled

    # -- the calling thread ---------------------------------------------------------------

    def run(self, work: Sequence[ItemWork], sink: Sink, should_stop: Callable[[], bool]) -> None:
        self.token = sink.recall("token") or secrets.token_hex(8)
        sink.remember("token", self.token)
        self.identities = dict(sink.recall(self.memo_key) or {})
        self.cancelled = set(sink.recall("cancelled") or ())
        events: queue.Queue[Event] = queue.Queue()
        todo = split_jobs(work)
        todo.reverse()  # pop() from the end keeps manifest order
        threads: dict[threading.Thread, Job] = {}
        running: set[str] = set()  # server job ids in flight
        failed: set[str] = set()
        stopping_since: float | None = None
        try:
            while todo or threads:
                if stopping_since is None and should_stop():
                    stopping_since = time.monotonic()
                    self._stop(running, sink)
                while stopping_since is None and todo and len(threads) < self.concurrency:
                    job = todo.pop()
                    if job.item.id in failed:
                        continue
                    thread = threading.Thread(
                        target=self._work,
                        args=(job, events),
                        daemon=True,
                        name=f"batch-{job.item.id}",
                    )
                    threads[thread] = job
                    thread.start()
                self._drain(events, sink, running, failed, wait=0.2)
                for thread in [t for t in threads if not t.is_alive()]:
                    del threads[thread]
                if stopping_since is not None:
                    todo.clear()
                    if time.monotonic() - stopping_since > STOP_GRACE_S:
                        log.warning("%d job(s) did not stop in time; leaving them", len(threads))
                        break
            self._drain(events, sink, running, failed, wait=0.0)
        finally:
            self._stop(running, sink)  # a second Ctrl-C (KeyboardInterrupt) lands here too
            stats = self.client.stats
            if stats.rate_limited or stats.retried:
                self.notes += (
                    f"the service asked this run to slow down {stats.rate_limited} time(s) "
                    f"(429, honoured) and {stats.retried} request(s) were retried after "
                    "transient failures",
                )

    def _stop(self, running: set[str], sink: Sink) -> None:
        if not self.stop.is_set():
            self.stop.set()
            for job_id in list(running):
                self._cancel(job_id, sink)

    def _cancel(self, job_id: str, sink: Sink) -> None:
        """Cancel a job and remember it. The cancel takes effect at the job's next step, or
        not at all when the job is just finishing: a resumed run that finds it again under its
        key follows it to its end and asks anew only if it did end cancelled."""
        self.client.cancel(job_id)
        self.cancelled.add(job_id)
        sink.remember("cancelled", sorted(self.cancelled))

    def _drain(
        self,
        events: queue.Queue[Event],
        sink: Sink,
        running: set[str],
        failed: set[str],
        wait: float,
    ) -> None:
        try:
            event = events.get(timeout=wait) if wait else events.get_nowait()
        except queue.Empty:
            return
        while True:
            kind, *rest = event
            if kind == "image":
                sink.image(*rest)
            elif kind == "failed":
                failed.add(rest[0])
                sink.failed(*rest)
            elif kind == "timing":
                sink.timing(*rest)
            elif kind == "remember":
                sink.remember(*rest)
            elif kind == "started":
                running.add(rest[0])
                if self.stop.is_set():  # it was submitted while we stopped
                    self._cancel(rest[0], sink)
            elif kind == "ended":
                running.discard(rest[0])
            try:
                event = events.get_nowait()
            except queue.Empty:
                return

    # -- worker threads -------------------------------------------------------------------

    def _work(self, job: Job, events: queue.Queue[Event]) -> None:
        """One job from submission to downloaded images; every outcome becomes an event."""
        item = job.item
        try:
            self._make(job, events)
        except Stopped:
            pass  # the item stays pending: --resume finishes it
        except ServiceError as exc:
            if not (self.stop.is_set() and exc.code == "service_unavailable"):
                events.put(("failed", item.id, exc.code, exc.message))
        except Exception as exc:  # a bug or a malformed answer: this item only
            log.error("batch item %s failed", item.id, exc_info=exc)
            events.put(("failed", item.id, "internal_error", f"{type(exc).__name__}: {exc}"))

    def _make(self, job: Job, events: queue.Queue[Event]) -> None:
        item = job.item
        identity_id = self._identity(item, events)
        body = _body(job, identity_id)
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
        for attempt in count():
            if attempt >= MAX_ATTEMPTS:
                raise ServiceError(
                    f"{MAX_ATTEMPTS} earlier submissions of this job failed or were cancelled",
                    code="too_many_attempts",
                )
            start = time.perf_counter()
            key = f"batch-{self.token}-{item.id}-{job.first_k}-{digest}-{attempt}"
            accepted = self.client.submit(body, key)
            events.put(("timing", "submit", time.perf_counter() - start))
            if accepted["status"] in ("failed", "cancelled"):
                continue  # an earlier run's job that ended without images: ask again
            final = self._follow(accepted["id"], events)
            if final["status"] == "cancelled" and accepted["id"] in self.cancelled:
                if self.stop.is_set():
                    raise Stopped
                continue  # an earlier run stopped and cancelled it: ask again
            break
        self._collect(job, final, events)

    def _follow(self, job_id: str, events: queue.Queue[Event]) -> dict[str, Any]:
        events.put(("started", job_id))
        try:
            start = time.perf_counter()
            final = self.client.follow(job_id, on_progress=lambda _: None)
            events.put(("timing", "service", time.perf_counter() - start))
            return final
        finally:
            events.put(("ended", job_id))

    def _collect(self, job: Job, final: dict[str, Any], events: queue.Queue[Event]) -> None:
        item, status = job.item, final["status"]
        if status == "cancelled":
            if self.stop.is_set():
                raise Stopped
            raise ServiceError(
                f"generation {final['id']} was cancelled on the service (by its user, or "
                "because the identity was erased)",
                code="cancelled",
            )
        if status != "succeeded":
            error = final.get("error") or {}
            raise ServiceError(
                error.get("message", f"generation {final['id']} {status}"),
                code=error.get("code", "service_error"),
            )
        start = time.perf_counter()
        for image in final["images"]:
            if job.first_k + image["index"] not in job.wanted:
                continue  # on disk from an earlier run
            png, meta = self.client.image(image["id"])
            meta.update(server=self.config.url, image_id=image["id"])
            events.put(("image", item.id, job.first_k + image["index"], png, meta))
        events.put(("timing", "download", time.perf_counter() - start))
        if final.get("withheld"):
            indices = ", ".join(str(job.first_k + w["index"]) for w in final["withheld"])
            raise ServiceError(
                f"image(s) {indices} did not pass the service's output safety check",
                code="unsafe_output",
            )

    def _identity(self, item: BatchItem, events: queue.Queue[Event]) -> str:
        """The item's identity on the service, enrolling its photos the first time."""
        if item.identity_id:
            return item.identity_id
        with self.enroll_lock:
            key = item.photo_key
            if key in self.identities:
                return self.identities[key]
            if key in self.refused:
                raise self.refused[key]
            start = time.perf_counter()
            try:
                photos = [(path.name, path.read_bytes()) for path in item.photos]
            except OSError as exc:
                raise ServiceError(f"cannot read a photo: {exc}", code="file_not_found") from None
            try:
                identity_id = self.client.enroll(photos)
            except ServiceError as exc:
                if exc.code != "service_unavailable":
                    self.refused[key] = exc  # the same photos fail the same way: ask once
                raise
            self.identities[key] = identity_id
            events.put(("remember", self.memo_key, dict(self.identities)))
            events.put(("timing", "enroll", time.perf_counter() - start))
            return identity_id
