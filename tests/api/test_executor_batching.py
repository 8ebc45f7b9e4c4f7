"""The worker batches queued jobs of one size and step count into one device batch."""

from __future__ import annotations

from api.auth import create_user
from tests.api.conftest import auth, enroll, generate, idle_client, wait_for, wait_until_step


def timings(client, key, job) -> dict:
    meta = client.get(job["images"][0]["url"] + "/metadata", headers=auth(key)).json()
    return meta["metadata"]["timings"]


def test_compatible_jobs_share_a_device_batch(make_services):
    services = make_services(batch_window_ms=0)
    with idle_client(services) as client:
        with services.db.session() as s:
            alice, bob = create_user(s, "alice")[1], create_user(s, "bob")[1]
        a, b = enroll(client, alice)["id"], enroll(client, bob)["id"]
        first = generate(client, alice, a, "me as an astronaut", n=2)["id"]
        second = generate(client, bob, b, "me as a jazz singer")["id"]
        other_size = generate(client, bob, b, "me as a knight", width=96)["id"]
        services.executor.start()
        try:
            jobs = [
                wait_for(client, k, j)
                for k, j in ((alice, first), (bob, second), (bob, other_size))
            ]
        finally:
            services.executor.stop()
    assert [j["status"] for j in jobs] == ["succeeded"] * 3
    assert [len(j["images"]) for j in jobs] == [2, 1, 1]
    # Jobs of one batch share the batch's stage timings; the 96 px job ran on its own.
    assert timings(client, alice, jobs[0]) == timings(client, bob, jobs[1])
    assert timings(client, bob, jobs[2]) != timings(client, bob, jobs[1])
    assert jobs[1]["expanded"]["prompt"] != jobs[0]["expanded"]["prompt"]


def test_cancelling_one_job_of_a_batch_reruns_the_others(make_services, hold_at_step_2):
    services = make_services(batch_window_ms=0)
    with idle_client(services) as client:
        with services.db.session() as s:
            alice, bob = create_user(s, "alice")[1], create_user(s, "bob")[1]
        a, b = enroll(client, alice)["id"], enroll(client, bob)["id"]
        doomed = hold_at_step_2.job_id = generate(client, alice, a, "me", steps=40)["id"]
        kept = generate(client, bob, b, "me", steps=40)["id"]
        services.executor.start()
        try:
            wait_until_step(client, alice, doomed, 2)  # held there until the cancel is sent
            cancel = client.post(f"/v1/generations/{doomed}/cancel", headers=auth(alice))
            assert cancel.status_code == 202 and cancel.json()["status"] == "running"
            hold_at_step_2.released.set()
            cancelled, done = wait_for(client, alice, doomed), wait_for(client, bob, kept)
        finally:
            hold_at_step_2.released.set()
            services.executor.stop()
    assert cancelled["status"] == "cancelled" and cancelled["images"] == []
    assert done["status"] == "succeeded" and len(done["images"]) == 1
