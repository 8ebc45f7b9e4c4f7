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

Manners: a 429 holds every request until its ``Retry-After`` has passed;
connection errors and 502/503/504 (any 5xx for requests that are safe to
repeat) are retried with exponential backoff, then fail the item as
``service_unavailable``; any other refusal fails the item with the service's
own error code. Stopping cancels the jobs in flight (the service stops them
after their current step), waits up to ``STOP_GRACE_S`` for them to end and
leaves their items pending for ``--resume``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import count, groupby
from typing import Any

import httpx

from imagine.batch.executor import ItemWork, Sink
from imagine.batch.manifest import BatchItem, ItemDefaults
from imagine.errors import ImagineError
from imagine.request import GenerationLimits

log = logging.getLogger(__name__)

TRANSIENT_STATUS = (502, 503, 504)  # nothing was done: safe to send again, even an enrollment
STOP_GRACE_S = 15.0  # how long a stopping run waits for its jobs to acknowledge the cancel
MAX_ATTEMPTS = 20  # fresh submissions of one job across resumes (failed/cancelled ones)


class ServiceError(ImagineError):
    """The service refused a request or could not be reached; ``code`` is its own or ours."""

    code = "service_error"


class Stopped(Exception):
    """The run was asked to stop while a request waited (for a Retry-After or a backoff)."""


@dataclass(frozen=True)
class ServiceConfig:
    url: str  # e.g. http://127.0.0.1:8000
    api_key: str
    concurrency: int = 4  # generation jobs in flight at once
    consent_version: str | None = None  # declared for the people whose photos are enrolled
    residence: str | None = None  # ISO 3166 code declared for them, e.g. US-CA
    timeout_s: float = 60.0  # connect/read/write of one request
    retries: int = 5  # transient failures of one request before the item fails
    backoff_s: float = 0.5  # first backoff; doubles per retry, at most 30 s


@dataclass(frozen=True)
class ServiceInfo:
    """What the service says about itself before a run (``GET /v1/limits``)."""

    profile: str
    profile_is_noise: bool
    defaults: ItemDefaults
    limits: GenerationLimits
    max_enroll_photos: int
    max_queued_jobs: int


@dataclass
class ClientStats:
    rate_limited: int = 0  # 429 answers honoured
    retried: int = 0  # transient failures retried
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + 1)


def sse_events(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    """``(event, data)`` pairs from server-sent-event lines; comments are skipped."""
    data: list[str]
    event, data = "message", []
    for line in lines:
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


def _error_from(response: httpx.Response) -> ServiceError:
    try:
        body = response.json()["error"]
        code, message = str(body["code"]), str(body["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "service_error", response.text[:200] or response.reason_phrase
    return ServiceError(f"{message} (HTTP {response.status_code})", code=code)


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers["retry-after"]))
    except (KeyError, ValueError):
        return None


class ServiceClient:
    """HTTP with the service's manners (see the module docstring); safe across threads."""

    def __init__(
        self,
        config: ServiceConfig,
        stop: threading.Event | None = None,
        transport: httpx.BaseTransport | None = None,
    ):
        self.config = config
        self.stop = stop or threading.Event()
        self.stats = ClientStats()
        self.http = httpx.Client(
            base_url=config.url.rstrip("/"),
            headers={"Authorization": f"Bearer {config.api_key}"},
            timeout=config.timeout_s,
            transport=transport,
        )
        self._hold_until = 0.0  # monotonic time before which nobody sends (429 Retry-After)
        self._hold_lock = threading.Lock()

    def close(self) -> None:
        self.http.close()

    def _pause(self, seconds: float, ignore_stop: bool) -> None:
        if ignore_stop:
            time.sleep(seconds)
        elif self.stop.wait(seconds):
            raise Stopped

    def _wait_for_turn(self, ignore_stop: bool) -> None:
        while (left := self._hold_until - time.monotonic()) > 0:
            self._pause(left, ignore_stop)
        if self.stop.is_set() and not ignore_stop:
            raise Stopped

    def _hold(self, seconds: float) -> None:
        with self._hold_lock:
            self._hold_until = max(self._hold_until, time.monotonic() + seconds)

    def send(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool = True,
        stream: bool = False,
        ignore_stop: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        """The first successful response; raises ``ServiceError`` (or ``Stopped``).

        ``idempotent=False`` (an enrollment) is sent again only when the service
        cannot have acted on it: a refused connection, a 429, a 502/503/504.
        A ``stream`` response is returned open; the caller closes it.
        """
        transient = 0
        while True:
            self._wait_for_turn(ignore_stop)
            try:
                request = self.http.build_request(method, path, **kwargs)
                response = self.http.send(request, stream=stream)
            except httpx.TransportError as exc:
                unsent = isinstance(exc, httpx.ConnectError)
                if (idempotent or unsent) and transient < self.config.retries:
                    transient += 1
                    self.stats.add("retried")
                    self._pause(self._backoff(transient), ignore_stop)
                    continue
                raise ServiceError(
                    f"{method} {path}: the service cannot be reached at {self.config.url} "
                    f"({type(exc).__name__}: {exc})",
                    code="service_unavailable",
                ) from None
            if response.status_code < 400:
                return response
            if stream:
                response.read()
                response.close()
            delay = _retry_after(response)
            if response.status_code == 429:
                self.stats.add("rate_limited")
                self._hold(1.0 if delay is None else delay)
                continue
            status = response.status_code
            again = status in TRANSIENT_STATUS or (status >= 500 and idempotent)
            if again and transient < self.config.retries:
                transient += 1
                self.stats.add("retried")
                self._pause(max(delay or 0.0, self._backoff(transient)), ignore_stop)
                continue
            raise _error_from(response)

    def _backoff(self, attempt: int) -> float:
        return float(min(30.0, self.config.backoff_s * 2 ** (attempt - 1)))

    def get_json(self, path: str) -> Any:
        return self.send("GET", path).json()

    def info(self) -> ServiceInfo:
        raw = self.get_json("/v1/limits")
        defaults, bounds = raw["defaults"], raw["generation"]
        return ServiceInfo(
            profile=raw["profile"],
            profile_is_noise=raw["profile_is_noise"],
            defaults=ItemDefaults(defaults["width"], defaults["height"], defaults["steps"]),
            limits=GenerationLimits(
                **bounds,
                max_prompt_chars=raw.get("max_prompt_chars", GenerationLimits.max_prompt_chars),
            ),
            max_enroll_photos=raw["max_enroll_photos"],
            max_queued_jobs=raw["max_queued_jobs"],
        )

    def identities(self) -> list[dict[str, Any]]:
        """The key's user's identities; a bad key raises ``unauthorized``."""
        return list(self.get_json("/v1/identities"))

    def consent_version(self) -> str:
        return str(self.get_json("/v1/consent")["version"])

    def enroll(self, photos: Sequence[tuple[str, bytes]]) -> str:
        c = self.config
        response = self.send(
            "POST",
            "/v1/identities",
            idempotent=False,
            files=[("photos", (name, data, "application/octet-stream")) for name, data in photos],
            data={
                "consent": "true",
                "consent_version": c.consent_version or "",
                "residence": c.residence or "",
            },
        )
        return str(response.json()["id"])

    def submit(self, body: dict[str, Any], key: str) -> dict[str, Any]:
        response = self.send("POST", "/v1/generations", json=body, headers={"Idempotency-Key": key})
        return dict(response.json())

    def follow(self, job_id: str, on_progress: Callable[[dict], None]) -> dict[str, Any]:
        """The job's final state, from its event stream (reconnecting when it breaks).

        Followed to the end even while the run stops: the stop cancels the job, and
        a cancelled job must have ended before a resumed run asks for it again."""
        breaks = 0
        while True:
            response = self.send(
                "GET", f"/v1/generations/{job_id}/events", stream=True, ignore_stop=True
            )
            try:
                for event, data in sse_events(response.iter_lines()):
                    if event == "progress":
                        on_progress(json.loads(data))
                    elif event == "done":
                        return dict(json.loads(data))
                    elif event == "error":
                        raise ServiceError(f"generation {job_id} is gone: {data}", code="not_found")
            except httpx.TransportError as exc:  # the service went away mid-stream
                breaks += 1
                if breaks > self.config.retries:
                    raise ServiceError(
                        f"lost the event stream of generation {job_id}: {exc}",
                        code="service_unavailable",
                    ) from None
                self.stats.add("retried")
                self._pause(self._backoff(breaks), ignore_stop=True)
            finally:
                response.close()

    def cancel(self, job_id: str) -> None:
        """Best effort: the job may have just finished (409), or the service be gone."""
        try:
            self.send("POST", f"/v1/generations/{job_id}/cancel", ignore_stop=True, timeout=5.0)
        except ServiceError as exc:
            log.info("cancel %s: %s", job_id, exc.message)

    def image(self, image_id: str) -> tuple[bytes, dict[str, Any]]:
        """The stored PNG (as the gallery shows it, without the download label) and its
        metadata, which is the sidecar ``imagine generate`` would write."""
        png = self.send("GET", f"/v1/images/{image_id}").content
        meta = self.get_json(f"/v1/images/{image_id}/metadata")["metadata"]
        return png, dict(meta)


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
