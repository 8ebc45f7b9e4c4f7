"""What bounds a job: a time limit, and a cancel that bites while its images are finished."""

from __future__ import annotations

import secrets
import threading
import time

import pytest
from fastapi.testclient import TestClient

from api.auth import create_user
from api.main import create_app
from api.tables import Generation
from imagine.safety import CHECKERS, SafetyResult
from tests.api.conftest import (
    WAIT_S,
    auth,
    enroll,
    generate,
    idle_client,
    ready,
    wait_for,
    wait_until_step,
)


def stored_files(services) -> set[str]:
    return services.storage.keys()


def test_a_job_past_its_time_limit_fails_with_job_timeout(make_services, hold_at_step_2):
    services = make_services(job_timeout_s=1.0)
    with TestClient(create_app(services), client=("127.0.0.1", 1)) as client:
        with services.db.session() as s:
            key = create_user(s, "alice")[1]
        ready(client)
        identity_id = enroll(client, key)["id"]
        job_id = hold_at_step_2.job_id = generate(client, key, identity_id, steps=40)["id"]
        # Held at step 2 until its limit has passed (a busy machine may reach the limit
        # before step 2: the job times out all the same).
        deadline = time.monotonic() + WAIT_S
        while not hold_at_step_2.reached.wait(0.05):
            state = client.get(f"/v1/generations/{job_id}", headers=auth(key)).json()
            if state["status"] not in ("queued", "running"):
                break
            assert time.monotonic() < deadline, state
        else:
            time.sleep(max(0.0, hold_at_step_2.reached_at + 1.2 - time.monotonic()))
        hold_at_step_2.released.set()
        final = wait_for(client, key, job_id)
    assert final["status"] == "failed" and final["images"] == []
    assert final["error"]["code"] == "job_timeout" and "1 s" in final["error"]["message"]
    assert stored_files(services) == set()


class HeldChecker:
    """A fake output checker that holds the worker at the ``hold_at``-th image it checks
    (1-based) until the test lets it go: that job is then finishing its images."""

    def __init__(self, hold_at: int = 1) -> None:
        # A name of its own: checkers are built once per configuration and kept.
        self.name = f"held-{secrets.token_hex(4)}"
        self.reached, self.go = threading.Event(), threading.Event()
        self.hold_at, self.calls = hold_at, 0

    def check(self, image) -> SafetyResult:
        self.calls += 1
        if self.calls == self.hold_at:
            self.reached.set()
            self.go.wait(timeout=WAIT_S)
        return SafetyResult(checker=self.name, flagged=(), scores={})


@pytest.fixture
def held_checker():
    checker = HeldChecker()
    CHECKERS[checker.name] = lambda config: checker
    yield checker
    checker.go.set()
    CHECKERS.pop(checker.name)


def test_a_cancel_while_images_are_finished_stops_before_the_next_image(
    make_services, held_checker
):
    """Marking one 2048² image takes about 2 s: a cancel no longer waits for all of them."""
    services = make_services(safety_checker=held_checker.name)
    with TestClient(create_app(services), client=("127.0.0.1", 1)) as client:
        with services.db.session() as s:
            key = create_user(s, "alice")[1]
        ready(client)
        job_id = generate(client, key, enroll(client, key)["id"], n=3)["id"]
        assert held_checker.reached.wait(timeout=WAIT_S), "the job never reached its images"
        cancel = client.post(f"/v1/generations/{job_id}/cancel", headers=auth(key))
        assert cancel.status_code == 202
        held_checker.go.set()
        final = wait_for(client, key, job_id)
    assert final["status"] == "cancelled" and final["images"] == []
    assert final["error"]["message"] == "cancelled while its images were finished"
    assert stored_files(services) == set()


def test_a_stop_does_not_wait_for_a_long_step_it_hands_the_job_back(make_services, hold_at_step_2):
    """A denoising step can take longer than a stop may wait (seconds at 2048² on a CPU):
    the stop hands the job back to the queue itself, and the step, when it ends, can
    publish nothing."""
    services = make_services()
    with idle_client(services) as client:
        with services.db.session() as s:
            key = create_user(s, "alice")[1]
        services.executor.start()
        ready(client)
        identity_id = enroll(client, key)["id"]
        job_id = hold_at_step_2.job_id = generate(client, key, identity_id, steps=40)["id"]
        wait_until_step(client, key, job_id, 2)  # held inside the step's progress report
        services.executor.stop(timeout=0.5)
        body = client.get(f"/v1/generations/{job_id}", headers=auth(key)).json()
        hold_at_step_2.released.set()
    assert (body["status"], body["step"]) == ("queued", 0)
    with services.db.session() as s:
        assert s.get(Generation, job_id).attempts == 0
    services.executor.stop()  # the held step ends now: wait for it, then nothing more is made
    assert not services.executor.is_alive(), "the worker thread outlived its step"
    with services.db.session() as s:
        assert s.get(Generation, job_id).status == "queued"
    assert stored_files(services) == set()


def test_a_job_finished_after_its_batch_partner_is_published_once(make_services):
    """Two jobs share a device batch; the first is published while the second's images are
    still being finished. The heartbeat then finds the first no longer running: that must
    not stop the second (it once sent it back to the queue to run again)."""
    checker = HeldChecker(hold_at=2)  # the second job's first image
    CHECKERS[checker.name] = lambda config: checker
    services = make_services(lease_seconds=0.6, batch_window_ms=0, safety_checker=checker.name)
    try:
        with idle_client(services) as c:
            with services.db.session() as s:
                alice, bob = create_user(s, "alice")[1], create_user(s, "bob")[1]
            first = generate(c, alice, enroll(c, alice)["id"])["id"]
            second = generate(c, bob, enroll(c, bob)["id"], n=2)["id"]
            services.executor.start()
            assert checker.reached.wait(timeout=WAIT_S), "the second job never reached its image"
            assert wait_for(c, alice, first)["status"] == "succeeded"
            time.sleep(3 * 0.6)  # several heartbeats while the second job is held
            checker.go.set()
            done = wait_for(c, bob, second)
            services.executor.stop()
    finally:
        checker.go.set()
        CHECKERS.pop(checker.name)
    assert done["status"] == "succeeded" and len(done["images"]) == 2
    with services.db.session() as s:
        assert [s.get(Generation, j).attempts for j in (first, second)] == [1, 1]
    assert checker.calls == 3  # each image checked once: nothing ran twice
