"""The HTTP client of a running Imagine Me service, as a batch uses it.

Manners: a 429 holds every request until its ``Retry-After`` has passed;
connection errors and 502/503/504 (any 5xx for requests that are safe to
repeat) are retried with exponential backoff, then raise ``service_unavailable``;
any other refusal raises a ``ServiceError`` with the service's own error code.
A request waiting for a hold or a backoff raises ``Stopped`` once the run is
asked to stop; a job's event stream and its cancel are exempt, since a stopping
run cancels its jobs and must see them end.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from imagine.batch.manifest import ItemDefaults
from imagine.errors import ImagineError
from imagine.request import GenerationLimits

log = logging.getLogger(__name__)

TRANSIENT_STATUS = (502, 503, 504)  # nothing was done: safe to send again, even an enrollment


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
