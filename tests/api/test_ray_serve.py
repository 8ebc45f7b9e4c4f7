"""``imagine serve --executor ray``: the generator as a Ray Serve deployment on a local Ray
cluster with two logical GPUs, jobs in PostgreSQL, and a replica killed mid-job."""

from __future__ import annotations

import time

import httpx
import pytest

from api.db import Database
from api.tables import Generation
from tests.api.server import Server, free_port, smoke_home
from tests.api.test_server_process import enroll
from tests.api.test_workers import (
    each_succeeds_once,
    lease_owner_once_running,
    stored_once,
    wait_all,
)

ray = pytest.importorskip("ray")


@pytest.fixture
def ray_cluster():
    """A local Ray head with 2 logical GPUs (no CUDA: the replicas run on CPU)."""
    ray.init(num_cpus=4, num_gpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def replica_actors() -> list[str]:
    """The names of the Serve replicas' actors (in the namespace ``serve``)."""
    named = ray.util.list_named_actors(all_namespaces=True)
    return [a["name"] for a in named if a["name"].startswith("SERVE_REPLICA::")]


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.ray
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_serve_replicas_run_each_job_once_and_a_killed_replicas_job_again(
    tmp_path, database_url, model_cache, smoke, ray_cluster
):
    server = Server(
        smoke_home(tmp_path / "home", model_cache),
        free_port(),
        "--executor",
        "ray",
        IMAGINE_DATABASE_URL=database_url,
        IMAGINE_RAY_ADDRESS=ray_cluster,
        IMAGINE_RAY_MIN_REPLICAS="2",
        IMAGINE_RAY_MAX_REPLICAS="2",
        IMAGINE_LEASE_SECONDS="3",
        IMAGINE_RATE_LIMIT_PER_MINUTE="100000",
        IMAGINE_MAX_QUEUED_JOBS="10",
        IMAGINE_MAX_STEPS="400",  # a replica runs torch on one thread: long jobs are long
    )
    db = Database(database_url)
    try:
        key = server.cli("users", "create", "alice")["api_key"]
        server.start(timeout=300)  # ready once both replicas have loaded the pipeline
        ready = httpx.get(server.url + "/readyz").json()
        assert ready["details"]["executor"] == "ray", ready
        replicas = replica_actors()
        assert len(replicas) == 2, replicas
        assert ray.available_resources().get("GPU", 0) == 0  # one logical GPU each
        http = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        identity = enroll(http)

        ids = each_succeeds_once(http, db, server.home, identity, [64, 64, 64, 72, 80, 96])

        long_job = {"identity_id": identity, "prompt": "me", "n": 2, "steps": 400}
        long_job |= {"width": 64, "height": 64}

        # Cancel reaches the replica through the database.
        job = http.post("/v1/generations", json=long_job).json()["id"]
        assert lease_owner_once_running(http, db, job).startswith("ray-")
        assert http.post(f"/v1/generations/{job}/cancel").status_code == 202
        [body] = wait_all(http, [job])
        assert body["status"] == "cancelled", body

        # Kill the replica running a job mid-denoise: Serve replaces it, the job's lease
        # runs out (3 s), and it runs again, once.
        job = http.post("/v1/generations", json=long_job).json()["id"]
        owner = lease_owner_once_running(http, db, job)
        with db.session() as s:  # still denoising: the kill lands mid-job
            row = s.get(Generation, job)
            assert row is not None and row.status == "running" and row.step < row.total_steps // 2
        [victim] = [name for name in replica_actors() if name.endswith("#" + owner.split("-")[-1])]
        ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
        killed_at = time.monotonic()
        [body] = wait_all(http, [job])
        print(f"the killed replica's job finished {time.monotonic() - killed_at:.1f} s later")
        assert body["status"] == "succeeded" and len(body["images"]) == 2, body
        assert stored_once(db, server.home, [*ids, job])[job] == (2, 2)
    finally:
        server.stop()
        db.engine.dispose()
