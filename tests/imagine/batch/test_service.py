"""The service executor against an in-memory fake of the API (``httpx.MockTransport``):
its manners (429, retries, what is never sent twice), job splitting, and idempotent resume.
Against a real ``imagine serve`` process: ``tests/imagine/test_cli_batch_service.py``."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from PIL import Image

from imagine.batch.client import (
    ServiceClient,
    ServiceConfig,
    ServiceError,
    ServiceInfo,
    Stopped,
    sse_events,
)
from imagine.batch.executor import ImageJob, ItemWork
from imagine.batch.manifest import ItemDefaults, read_manifest
from imagine.batch.runner import BatchRun
from imagine.batch.service import ServiceExecutor, split_jobs
from imagine.request import GenerationLimits
from tests.api.server import free_port

URL = "http://service.test"


def config(**overrides) -> ServiceConfig:
    values = {
        "url": URL,
        "api_key": "k",
        "consent_version": "v1",
        "residence": "US-CA",
        "retries": 2,
        "backoff_s": 0.01,
    } | overrides
    return ServiceConfig(**values)


def answer(status: int, code: str = "", **headers: str) -> httpx.Response:
    body = {"error": {"code": code, "message": f"{code} happened"}} if code else {"ok": True}
    return httpx.Response(status, json=body, headers=headers)


def scripted(*responses: httpx.Response) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport answering with ``responses`` in turn (the last one repeats)."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return responses[min(len(seen), len(responses)) - 1]

    return httpx.MockTransport(handle), seen


def test_a_429_holds_requests_until_retry_after_then_succeeds():
    transport, seen = scripted(answer(429, "rate_limited", **{"Retry-After": "1"}), answer(200))
    client = ServiceClient(config(), transport=transport)
    start = time.monotonic()
    assert client.get_json("/v1/identities") == {"ok": True}
    assert time.monotonic() - start >= 0.95
    assert len(seen) == 2 and client.stats.rate_limited == 1
    assert seen[0].headers["authorization"] == "Bearer k"


def test_transient_failures_are_retried_with_backoff_then_give_the_services_code():
    transport, seen = scripted(answer(503, "not_ready"))
    client = ServiceClient(config(retries=2), transport=transport)
    with pytest.raises(ServiceError) as caught:
        client.get_json("/v1/generations/gen_1")
    assert caught.value.code == "not_ready" and "HTTP 503" in caught.value.message
    assert len(seen) == 3 and client.stats.retried == 2


def test_an_enrollment_is_never_sent_twice_when_the_service_may_have_acted_on_it():
    transport, seen = scripted(answer(500, "internal_error"), answer(201))
    client = ServiceClient(config(), transport=transport)
    with pytest.raises(ServiceError) as caught:
        client.enroll([("me.jpg", b"...")])
    assert caught.value.code == "internal_error" and len(seen) == 1
    form = seen[0].content
    assert b'name="consent"\r\n\r\ntrue' in form and b"US-CA" in form and b"v1" in form


def test_refusals_are_not_retried_and_keep_the_services_code():
    transport, seen = scripted(answer(422, "prompt_rejected"))
    client = ServiceClient(config(), transport=transport)
    with pytest.raises(ServiceError) as caught:
        client.submit({"prompt": "x"}, "key-0")
    assert caught.value.code == "prompt_rejected" and len(seen) == 1
    assert seen[0].headers["idempotency-key"] == "key-0"


def test_an_unreachable_service_is_service_unavailable_after_the_retries():
    client = ServiceClient(config(url=f"http://127.0.0.1:{free_port()}", retries=2))
    with pytest.raises(ServiceError) as caught:
        client.get_json("/v1/limits")
    assert caught.value.code == "service_unavailable"
    assert "cannot be reached" in caught.value.message and client.stats.retried == 2


def test_the_manifest_is_checked_against_the_services_prompt_limit():
    limits = {
        "profile": "smoke",
        "profile_is_noise": True,
        "defaults": {"width": 64, "height": 64, "steps": 2},
        "generation": {
            "max_images": 8,
            "max_steps": 100,
            "min_side": 64,
            "max_side": 2048,
            "side_multiple": 8,
        },
        "max_enroll_photos": 5,
        "max_queued_jobs": 4,
    }
    newer = httpx.Response(200, json={**limits, "max_prompt_chars": 40})
    info = ServiceClient(config(), transport=scripted(newer)[0]).info()
    assert info.limits.max_prompt_chars == 40
    older = httpx.Response(200, json=limits)  # a service from before the field: the default
    info = ServiceClient(config(), transport=scripted(older)[0]).info()
    assert info.limits.max_prompt_chars == GenerationLimits.max_prompt_chars


def test_stopping_interrupts_a_long_retry_after_wait():
    transport, _ = scripted(answer(429, "rate_limited", **{"Retry-After": "30"}))
    stop = threading.Event()
    client = ServiceClient(config(), stop, transport=transport)
    threading.Timer(0.2, stop.set).start()
    start = time.monotonic()
    with pytest.raises(Stopped):
        client.get_json("/v1/identities")
    assert time.monotonic() - start < 5


def test_server_sent_events_are_parsed_and_comments_skipped():
    lines = ["event: progress", 'data: {"step": 1}', "", ": keep-alive", "", "event: done"]
    lines += ['data: {"status":', 'data: "succeeded"}', ""]
    assert list(sse_events(lines)) == [
        ("progress", '{"step": 1}'),
        ("done", '{"status":\n"succeeded"}'),
    ]


def test_each_prompt_missing_images_is_one_whole_job_that_writes_only_those(tmp_path):
    (tmp_path / "me.jpg").write_bytes(b"x")
    (tmp_path / "m.jsonl").write_text(
        json.dumps({"id": "a", "photos": ["me.jpg"], "prompts": ["p", "q"], "n": 3}) + "\n"
    )
    item = read_manifest(tmp_path / "m.jsonl", ItemDefaults(64, 64, 2), GenerationLimits()).items[0]
    missing = [1, 2, 3, 5]  # copies 1-2 of "p", copies 0 and 2 of "q"
    work = ItemWork(item, tuple(ImageJob(k, "pq"[k // 3], 100 + k % 3) for k in missing))
    jobs = [(j.prompt, j.first_k, j.count, j.seed, set(j.wanted)) for j in split_jobs([work])]
    assert jobs == [("p", 0, 3, 100, {1, 2}), ("q", 3, 3, 100, {3, 5})]


class FakeService:
    """Just enough of the API for a batch: enrollment, jobs keyed by Idempotency-Key (a new
    one is accepted as queued, like the real service, and has finished by the time its
    events are read), their event stream and images. ``outcome(body)`` decides how a new
    job ends: ``"succeeded"`` or an error code."""

    def __init__(self, outcome: Callable[[dict], str] = lambda body: "succeeded"):
        self.outcome = outcome
        self.enrolled = 0
        self.jobs: dict[str, dict] = {}  # id -> the generation as GET shows it
        self.keys: dict[str, str] = {}  # Idempotency-Key -> job id
        self.images: dict[str, dict] = {}  # image id -> metadata
        self.transport = httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v1/identities":
            self.enrolled += 1
            return httpx.Response(201, json={"id": f"idn_{self.enrolled}"})
        if path == "/v1/generations":
            key = request.headers["idempotency-key"]
            if key not in self.keys:
                self.keys[key] = self.create(json.loads(request.content))
                return httpx.Response(202, json={"id": self.keys[key], "status": "queued"})
            job = self.jobs[self.keys[key]]
            return httpx.Response(202, json={"id": job["id"], "status": job["status"]})
        if path.endswith("/events"):
            job = self.jobs[path.split("/")[3]]
            stream = f"event: done\ndata: {json.dumps(job)}\n\n"
            return httpx.Response(200, text=stream, headers={"content-type": "text/event-stream"})
        if path.endswith("/metadata"):
            return httpx.Response(200, json={"metadata": self.images[path.split("/")[3]]})
        if path.startswith("/v1/images/"):
            buf = io.BytesIO()
            Image.new("RGB", (8, 8), (10, 20, 30)).save(buf, "PNG")
            return httpx.Response(200, content=buf.getvalue())
        return answer(404, "not_found")

    def create(self, body: dict) -> str:
        job_id = f"gen_{len(self.jobs)}"
        result = self.outcome(body)
        job = {"id": job_id, "status": "succeeded", "images": [], "withheld": [], "error": None}
        if result != "succeeded":
            job |= {"status": "failed", "error": {"code": result, "message": result}}
        for j in range(body["n"] if result == "succeeded" else 0):
            image_id = f"img_{job_id}_{j}"
            self.images[image_id] = {"prompt": body["prompt"], "seed": body["seed"] + j}
            job["images"].append({"id": image_id, "index": j})
        self.jobs[job_id] = job
        return job_id


INFO = ServiceInfo(
    profile="smoke",
    profile_is_noise=True,
    defaults=ItemDefaults(64, 64, 2),
    limits=GenerationLimits(),
    max_enroll_photos=5,
    max_queued_jobs=4,
)


def run_batch(tmp_path: Path, service: FakeService, lines: list[dict], *, resume: bool) -> dict:
    (tmp_path / "me.jpg").write_bytes(b"photo bytes")
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    manifest = read_manifest(path, INFO.defaults, INFO.limits, service=True)
    executor = ServiceExecutor(config(concurrency=2), INFO, transport=service.transport)
    context = {"executor": "service", "server": URL}
    outcome = BatchRun(manifest, tmp_path / "out", executor, context=context, resume=resume).run()
    return outcome.report


def manifest_key(folder: Path) -> str:
    """The photo key of the manifest's me.jpg, as ``read_manifest`` computes it."""
    path = folder / "m.jsonl"
    return read_manifest(path, INFO.defaults, INFO.limits, service=True).items[0].photo_key


def test_photos_are_enrolled_once_and_every_image_lands_with_the_services_metadata(tmp_path):
    service = FakeService()
    lines = [
        {"id": "a", "photos": ["me.jpg"], "prompts": ["p", "q"], "n": 2, "seed": 5},
        {"id": "b", "photos": ["me.jpg"], "prompt": "r"},
        {"id": "c", "identity_id": "idn_known", "prompt": "s"},
    ]
    report = run_batch(tmp_path, service, lines, resume=False)
    assert report["items"]["done"] == 3 and report["images"]["done"] == 6
    assert service.enrolled == 1 and len(service.jobs) == 4  # one job per prompt
    meta = json.loads((tmp_path / "out" / "a" / "3.json").read_text())
    assert meta["prompt"] == "q" and meta["seed"] == 6  # copy 1 of prompt 1: seed + 1
    assert meta["server"] == URL and meta["image_id"].startswith("img_")
    state = json.loads((tmp_path / "out" / "batch-state.json").read_text())
    assert state["executor"][f"identities {URL}"] == {manifest_key(tmp_path): "idn_1"}


def test_resume_finds_its_jobs_again_and_resubmits_only_failed_ones(tmp_path):
    refuse = {"q"}
    service = FakeService(lambda body: "worker_lost" if body["prompt"] in refuse else "succeeded")
    lines = [{"id": "a", "photos": ["me.jpg"], "prompts": ["p", "q"], "n": 2, "seed": 5}]
    report = run_batch(tmp_path, service, lines, resume=False)
    assert report["failures_by_code"] == {"worker_lost": 1}
    assert len(service.jobs) == 2

    # The run is resumed after an image of "p" vanished from disk (as if it had been
    # killed halfway through the download): the same key finds the finished job, whose
    # missing image is downloaded, not made again; the failed job of "q" is submitted
    # afresh under the next attempt.
    (tmp_path / "out" / "a" / "1.png").unlink()
    kept = (tmp_path / "out" / "a" / "0.png").stat().st_mtime_ns
    refuse.clear()
    report = run_batch(tmp_path, service, lines, resume=True)
    assert report["items"]["done"] == 1 and report["images"]["written_this_run"] == 3
    assert (tmp_path / "out" / "a" / "0.png").stat().st_mtime_ns == kept
    assert len(service.jobs) == 3 and service.enrolled == 1
    assert sorted(key.rsplit("-", 1)[1] for key in service.keys) == ["0", "0", "1"]


def test_no_more_jobs_are_kept_in_flight_than_the_service_queues_per_user():
    executor = ServiceExecutor(config(concurrency=8), INFO)
    assert executor.concurrency == INFO.max_queued_jobs == 4
    assert executor.notes == ("4 job(s) in flight, not 8: the service queues at most 4 per user",)
    assert ServiceExecutor(config(concurrency=2), INFO).notes == ()
