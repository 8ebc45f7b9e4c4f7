"""``imagine serve --executor ray``: generations on a Ray Serve deployment, a replica per GPU.

The job row stays the truth, as with every executor. A dispatcher thread in the
API process reads queued jobs from the database and hands their ids to the
deployment ``imagine-generator``; Serve routes each to a replica and batches
compatible ones (``serve.batch``, counted in images, up to ``IMAGINE_MAX_BATCH``,
waiting ``IMAGINE_BATCH_WINDOW_MS``). A replica loads the pipeline once, leases
each job it is handed (``claim_job``: a job another process took, or that ended,
is skipped), runs it with heartbeats and commits or ends it, as ``imagine worker``
does (``api.worker.run_leased``). Progress and cancel go through the database, so
any API process streams them.

A replica that dies (``ray.kill``, out of memory, node lost) loses its leases;
the sweep here puts its jobs back in the queue once a lease has run out, and the
dispatcher hands them out again: each job ends once, its images published by the
one run that still held its lease. Serve's autoscaler keeps between
``IMAGINE_RAY_MIN_REPLICAS`` and ``IMAGINE_RAY_MAX_REPLICAS`` replicas from the
requests in flight; a replica takes one GPU where the cluster has GPUs, else
one CPU.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import groupby
from typing import Any

from api.jobs import Claim, batch_key, claim_job, job_request, queued_jobs, requeue_expired
from api.settings import ServiceSettings
from api.worker import STOP_TIMEOUT_S, WorkerContext, run_leased
from imagine.provenance.keys import WATERMARK_KEY_FILE

log = logging.getLogger("api.worker")

APP = "imagine"
DEPLOYMENT = "imagine-generator"
NAMESPACE = "imagine"
# Jobs handed to the deployment per replica it may have: enough to fill every replica's
# batches and to show Serve's autoscaler a queue, few enough that fairness stays the
# database's (a job waits in the database, in claim order, not in a replica's queue).
IN_FLIGHT_PER_REPLICA = 2
STATUS_EVERY_S = 5.0  # how often /readyz's detail counts the running replicas


class Generator:
    """The deployment's replica: one pipeline, loaded once, running the jobs it is handed."""

    def __init__(self, settings: ServiceSettings):
        from api.services import open_worker_context
        from imagine.runtime import load_runtime

        logging.getLogger("api").setLevel(logging.INFO)
        # The API process's key files, never new keys: on a node without them the replica
        # fails to start, rather than run under a key that opens no stored embedding, or
        # mark images with a watermark key that the deployment's verify does not know.
        if not settings.embedding_key and settings.key_file is None:
            settings = settings.replace(key_file=settings.home / "embedding.key")
        if not settings.watermark_key and settings.watermark_key_file is None:
            settings = settings.replace(watermark_key_file=settings.home / WATERMARK_KEY_FILE)
        self.ctx: WorkerContext = open_worker_context(settings)
        self.runtime = load_runtime(settings)
        self.max_batch = self.runtime.pipeline.max_batch
        from ray import serve

        host = socket.gethostname()[:32]
        replica = serve.get_replica_context().replica_id.unique_id
        # As a job row's lease_owner shows it: host, PID and the replica's Serve id (the
        # end of its actor's name).
        self.owner = f"ray-{host}-{os.getpid()}-{replica}"
        self.stopping = threading.Event()

    async def run(self, jobs: list[dict[str, Any]]) -> list[str]:
        """A Serve batch of handed-out jobs ({"id", "n"}); each answers how it ended here."""
        return await asyncio.to_thread(self._run, [job["id"] for job in jobs])

    def _run(self, job_ids: list[str]) -> list[str]:
        ctx = self.ctx
        claims = {i: claim_job(ctx.db, i, self.owner, ctx.lease_s) for i in job_ids}
        taken = [c for c in claims.values() if c is not None]
        for claim in taken:
            log.info("%s runs job %s (attempt %d)", self.owner, claim.job_id, claim.attempt)
        for chunk in self._device_batches(taken):
            run_leased(ctx, self.runtime, chunk, self.stopping.is_set)
        return ["ran" if claims[i] else "taken" for i in job_ids]

    def _device_batches(self, claims: list[Claim]) -> list[list[Claim]]:
        """Claims of one size and step count together, up to max_batch images a run."""
        requests = {c.job_id: job_request(self.ctx.db, c) for c in claims}
        live = [c for c in claims if requests[c.job_id] is not None]  # not erased meanwhile

        def key(claim: Claim) -> tuple[int, int, int]:
            request = requests[claim.job_id]
            assert request is not None
            return batch_key(request)

        chunks: list[list[Claim]] = []
        for _, same in groupby(sorted(live, key=key), key=key):
            chunk: list[Claim] = []
            images = 0
            for claim in same:
                n = int((requests[claim.job_id] or {})["n"])
                if chunk and images + n > self.max_batch:
                    chunks.append(chunk)
                    chunk, images = [], 0
                chunk.append(claim)
                images += n
            chunks.append(chunk)
        return chunks

    def __del__(self) -> None:  # Serve stops a replica (scale down, shutdown)
        self.stopping.set()


def _running_replicas() -> int:
    from ray import serve
    from ray.serve.schema import ReplicaState

    try:
        app = serve.status().applications[APP]
        return app.deployments[DEPLOYMENT].replica_states.get(ReplicaState.RUNNING, 0)
    except Exception:  # the controller is restarting: say so on the next round
        return 0


def _images(jobs: list[dict[str, Any]]) -> int:
    return sum(int(job["n"]) for job in jobs)


def deployment(settings: ServiceSettings, gpus: bool) -> Any:
    """The Serve application: ``Generator`` with this service's batching and scaling."""
    from ray import serve

    batched = serve.batch(
        max_batch_size=settings.max_batch,
        batch_wait_timeout_s=settings.batch_window_ms / 1000,
        batch_size_fn=_images,
    )(Generator.run)
    replica = type("Generator", (Generator,), {"run": batched})
    resources = {"num_gpus": 1, "num_cpus": 0} if gpus else {"num_cpus": 1}
    app = serve.deployment(
        name=DEPLOYMENT,
        ray_actor_options=resources,
        max_ongoing_requests=settings.max_batch * IN_FLIGHT_PER_REPLICA,
        autoscaling_config={
            "min_replicas": settings.ray_min_replicas,
            "initial_replicas": max(1, settings.ray_min_replicas),
            "max_replicas": settings.ray_max_replicas,
            "target_ongoing_requests": settings.max_batch,
            "upscale_delay_s": 5,
            "downscale_delay_s": 60,
        },
        # Loading SDXL takes a minute; a replica that stops has its jobs requeued anyway.
        graceful_shutdown_timeout_s=STOP_TIMEOUT_S,
    )(replica)
    return app.bind(settings)


class RayExecutor:
    """``--executor ray``: start (or join) Ray, run the deployment, hand it queued jobs."""

    name = "ray"

    def __init__(self, ctx: WorkerContext, settings: ServiceSettings):
        self.ctx = ctx
        self.settings = settings
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._main, name="imagine-ray", daemon=True)
        self._ready = False
        self._detail = "starting Ray"
        self._started_ray = False
        self.failure: Exception | None = None
        self._in_flight: dict[str, Future[Any]] = {}
        self._lock = threading.Lock()
        self.capacity = settings.max_batch * settings.ray_max_replicas * IN_FLIGHT_PER_REPLICA
        self._waiters = ThreadPoolExecutor(self.capacity, thread_name_prefix="imagine-ray-wait")

    def start(self) -> None:
        self._thread.start()

    def notify(self) -> None:
        self._wake.set()

    def status(self) -> tuple[bool, str]:
        return self._ready and self._thread.is_alive(), self._detail

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def models(self) -> dict[str, Any] | None:
        return None  # the pipelines are the replicas'; each job's sidecar names its adapters

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop handing out jobs. A local Ray started here ends with its replicas (their
        jobs go back to the queue when their leases run out); a cluster's deployment
        keeps running for the other API processes."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=timeout)
        self._waiters.shutdown(wait=False, cancel_futures=True)
        if self._started_ray:
            import ray

            ray.shutdown()

    def _connect(self) -> Any:
        import ray
        from ray import serve

        address = self.settings.ray_address
        if not ray.is_initialized():
            ray.init(
                address=address,
                namespace=NAMESPACE,
                include_dashboard=False,
                log_to_driver=False,
                ignore_reinit_error=True,
            )
            self._started_ray = address is None
        gpus = ray.cluster_resources().get("GPU", 0) > 0
        serve.start(proxy_location="Disabled")
        self._detail = "loading models in Ray Serve replicas"
        return serve.run(deployment(self.settings, gpus), name=APP, route_prefix=None)

    def _main(self) -> None:
        try:
            handle = self._connect()
        except Exception as exc:  # the service stays up and says why it is not ready
            log.exception("the ray executor failed to start")
            self._detail = f"Ray Serve failed to start: {exc}"
            self.failure = exc
            return
        self._ready = True
        last_status = last_sweep = 0.0
        while not self._stop.is_set():
            if time.monotonic() - last_status > STATUS_EVERY_S:
                self._detail = f"ready (Ray Serve, {_running_replicas()} replicas running)"
                last_status = time.monotonic()
            if time.monotonic() - last_sweep > self.ctx.sweep_s:  # as the worker thread does
                requeue_expired(self.ctx.db, self.ctx.max_attempts)
                last_sweep = time.monotonic()
            with self._lock:
                room = self.capacity - len(self._in_flight)
                skip = frozenset(self._in_flight)
            for row in queued_jobs(self.ctx.db, room, skip) if room > 0 else ():
                self._hand_out(handle, {"id": row.id, "n": int(row.request["n"])})
            self._wake.wait(timeout=1.0)
            self._wake.clear()

    def _hand_out(self, handle: Any, job: dict[str, Any]) -> None:
        response = handle.run.remote(job)
        with self._lock:
            self._in_flight[job["id"]] = self._waiters.submit(self._wait, job["id"], response)

    def _wait(self, job_id: str, response: Any) -> None:
        """Until the replica answers; a replica that died answers with an error, and the
        job, if it had leased it, comes back to the queue when its lease runs out."""
        try:
            response.result()
        except Exception as exc:
            log.warning("job %s: its Ray Serve replica failed: %s", job_id, exc)
        finally:
            with self._lock:
                self._in_flight.pop(job_id, None)
            self._wake.set()
