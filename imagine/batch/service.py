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
from collections.abc import Callable, Iterator, Sequence
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


# What worker threads tell the calling thread, which alone talks to the sink.


@dataclass(frozen=True)
class ImageReady:
    item_id: str
    k: int  # image index within the item
    png: bytes
    meta: dict[str, Any]  # the service's metadata, plus server and image_id


@dataclass(frozen=True)
class ItemFailed:
    item_id: str
    code: str
    message: str


@dataclass(frozen=True)
class StageTimed:
    stage: str  # enroll, submit, service, download
    seconds: float


@dataclass(frozen=True)
class Remembered:
    key: str
    value: Any  # kept in the state file at once


@dataclass(frozen=True)
class JobStarted:
    job_id: str  # a job on the service, to cancel if the run stops


@dataclass(frozen=True)
class JobEnded:
    job_id: str


Event = ImageReady | ItemFailed | StageTimed | Remembered | JobStarted | JobEnded


def _take(events: queue.Queue[Event], wait: float) -> Iterator[Event]:
    """The events waiting in ``events``, after waiting up to ``wait`` seconds for the first."""
    try:
        yield events.get(timeout=wait) if wait else events.get_nowait()
        while True:
            yield events.get_nowait()
    except queue.Empty:
        return


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
        self.running: set[str] = set()  # server job ids in flight
        self.failed: set[str] = set()  # item ids

    # -- the calling thread ---------------------------------------------------------------

    def run(self, work: Sequence[ItemWork], sink: Sink, should_stop: Callable[[], bool]) -> None:
        self.token = sink.recall("token") or secrets.token_hex(8)
        sink.remember("token", self.token)
        self.identities = dict(sink.recall(self.memo_key) or {})
        self.cancelled = set(sink.recall("cancelled") or ())
        self.running, self.failed = set(), set()
        events: queue.Queue[Event] = queue.Queue()
        todo = split_jobs(work)
        todo.reverse()  # pop() from the end keeps manifest order
        threads: list[threading.Thread] = []
        stopping_since: float | None = None
        try:
            while todo or threads:
                if stopping_since is None and should_stop():
                    stopping_since = time.monotonic()
                    self._stop(sink)
                    todo.clear()
                threads += self._start(todo, events, free=self.concurrency - len(threads))
                self._drain(events, sink, wait=0.2)
                threads = [t for t in threads if t.is_alive()]
                if stopping_since is not None and time.monotonic() - stopping_since > STOP_GRACE_S:
                    log.warning("%d job(s) did not stop in time; leaving them", len(threads))
                    break
            self._drain(events, sink, wait=0.0)
        finally:
            self._stop(sink)  # a second Ctrl-C (KeyboardInterrupt) lands here too
            self._note_manners()

    def _start(
        self, todo: list[Job], events: queue.Queue[Event], free: int
    ) -> list[threading.Thread]:
        """Threads for up to ``free`` more jobs, skipping those of items that failed."""
        started: list[threading.Thread] = []
        while todo and len(started) < free:
            job = todo.pop()
            if job.item.id in self.failed:
                continue
            thread = threading.Thread(
                target=self._work, args=(job, events), daemon=True, name=f"batch-{job.item.id}"
            )
            thread.start()
            started.append(thread)
        return started

    def _note_manners(self) -> None:
        stats = self.client.stats
        if stats.rate_limited or stats.retried:
            self.notes += (
                f"the service asked this run to slow down {stats.rate_limited} time(s) "
                f"(429, honoured) and {stats.retried} request(s) were retried after "
                "transient failures",
            )

    def _stop(self, sink: Sink) -> None:
        if not self.stop.is_set():
            self.stop.set()
            for job_id in list(self.running):
                self._cancel(job_id, sink)

    def _cancel(self, job_id: str, sink: Sink) -> None:
        """Cancel a job and remember it. The cancel takes effect at the job's next step, or
        not at all when the job is just finishing: a resumed run that finds it again under its
        key follows it to its end and asks anew only if it did end cancelled."""
        self.client.cancel(job_id)
        self.cancelled.add(job_id)
        sink.remember("cancelled", sorted(self.cancelled))

    def _drain(self, events: queue.Queue[Event], sink: Sink, wait: float) -> None:
        for event in _take(events, wait):
            self._handle(event, sink)

    def _handle(self, event: Event, sink: Sink) -> None:
        match event:
            case ImageReady(item_id, k, png, meta):
                sink.image(item_id, k, png, meta)
            case ItemFailed(item_id, code, message):
                self.failed.add(item_id)
                sink.failed(item_id, code, message)
            case StageTimed(stage, seconds):
                sink.timing(stage, seconds)
            case Remembered(key, value):
                sink.remember(key, value)
            case JobStarted(job_id):
                self.running.add(job_id)
                if self.stop.is_set():  # it was submitted while we stopped
                    self._cancel(job_id, sink)
            case JobEnded(job_id):
                self.running.discard(job_id)

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
                events.put(ItemFailed(item.id, exc.code, exc.message))
        except Exception as exc:  # a bug or a malformed answer: this item only
            log.error("batch item %s failed", item.id, exc_info=exc)
            events.put(ItemFailed(item.id, "internal_error", f"{type(exc).__name__}: {exc}"))

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
            events.put(StageTimed("submit", time.perf_counter() - start))
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
        events.put(JobStarted(job_id))
        try:
            start = time.perf_counter()
            final = self.client.follow(job_id, on_progress=lambda _: None)
            events.put(StageTimed("service", time.perf_counter() - start))
            return final
        finally:
            events.put(JobEnded(job_id))

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
            events.put(ImageReady(item.id, job.first_k + image["index"], png, meta))
        events.put(StageTimed("download", time.perf_counter() - start))
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
            events.put(Remembered(self.memo_key, dict(self.identities)))
            events.put(StageTimed("enroll", time.perf_counter() - start))
            return identity_id
