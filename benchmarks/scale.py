"""Scale-out figures: Ray replicas (online and batch) and the claim path's ceiling on PostgreSQL.

Three measurements, each against a baseline in the same run (timings here are noisy):

1. claim path: queued jobs claimed, run through a 1-second job's database writes (5
   progress reports, 1 heartbeat) and committed per second by W competing worker processes
   on one PostgreSQL database, W = 1 (the baseline) and up; from the best figure, how many
   GPUs at ~1 image/s one database serves;
2. online: images/minute through the API with the in-process executor (the baseline), then
   ``--executor ray`` with 1 and 2 Serve replicas (logical GPUs on this CPU machine);
3. batch: images/minute of ``imagine batch`` in local mode (the baseline), then ``--ray``
   with 1 and 2 actors.

Every generator runs torch on one thread, as Ray gives its actors (OMP_NUM_THREADS=1):
small models on a busy 2-core machine otherwise lose most of their time to thread
contention, and the comparison would measure that. The smoke profile makes the images
(noise from tiny random-weight models): the figures measure the machinery around the
model, not a model. On 2 cores a second replica has little room; the ratio says how much
of one replica's rate Ray keeps.

    .venv/bin/python benchmarks/scale.py [--jobs 2000] [--workers 1 4 16] [--images 16]
        [--size 128] [--steps 8] [--skip online batch] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PROGRESS_WRITES = 5  # a 1 s job reports progress at most every 0.2 s


@contextmanager
def database(admin_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for the run, dropped at the end."""
    import sqlalchemy

    name = f"imagine_bench_{secrets.token_hex(4)}"
    admin = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def settings_for(home: str, url: str, **extra: object) -> object:
    from api.settings import ServiceSettings

    return ServiceSettings(
        home=Path(home),
        database_url=url,
        local_region="US-CA",
        rate_limit_per_minute=1_000_000,
        max_queued_jobs=100_000,
        **extra,  # type: ignore[arg-type]
    )


# 1. The claim path -------------------------------------------------------------------------


def queue_jobs(url: str, home: str, count: int) -> None:
    """One job submitted through the API, then ``count`` copies of its row in one INSERT."""
    from fastapi.testclient import TestClient
    from sqlalchemy import insert, select

    from api.auth import create_user
    from api.jobs import JOBS
    from api.main import create_app
    from api.services import build_services
    from tests.api.conftest import enroll, generate

    services = build_services(settings_for(home, url, executor="none"))  # type: ignore[arg-type]
    with TestClient(create_app(services), client=("127.0.0.1", 1)) as client:
        with services.db.session() as s:
            key = create_user(s, "bench")[1]
        first = generate(client, key, enroll(client, key)["id"])["id"]
    copied = [c for c in JOBS.c if c.name not in ("id", "idempotency_key")]
    with services.db.connection() as c:
        source = select(*copied).where(JOBS.c.id == first).subquery()
        rows = [
            {"id": f"gen_bench{i:07d}", **dict(c.execute(select(source)).one()._mapping)}
            for i in range(count)
        ]
        c.execute(insert(JOBS), rows)
    services.close()


def drain(url: str, owner: str, start: multiprocessing.synchronize.Event, out: object) -> None:
    """A worker: claim, 5 progress writes, 1 heartbeat, commit; until the queue is empty."""
    from api.db import Database
    from api.jobs import claim_next, complete, heartbeat, report_progress

    db = Database(url)
    done = 0
    start.wait()
    while (claim := claim_next(db, owner, 30.0)) is not None:
        for step in range(1, PROGRESS_WRITES + 1):
            report_progress(db, claim, step, PROGRESS_WRITES)
        heartbeat(db, claim, 30.0)
        done += complete(db, claim, [], [])
    out.put(done)  # type: ignore[attr-defined]
    db.engine.dispose()


def claim_path(admin_url: str, jobs: int, workers: list[int]) -> list[dict]:
    results = []
    for w in workers:
        with database(admin_url) as url, tempfile.TemporaryDirectory() as home:
            queue_jobs(url, home, jobs)
            ctx = multiprocessing.get_context("spawn")
            start, out = ctx.Event(), ctx.Queue()
            procs = [
                ctx.Process(target=drain, args=(url, f"bench-{i}", start, out)) for i in range(w)
            ]
            for p in procs:
                p.start()
            time.sleep(2.0)  # every process connected and waiting
            began = time.perf_counter()
            start.set()
            done = sum(out.get(timeout=900) for _ in procs)
            seconds = time.perf_counter() - began
            for p in procs:
                p.join()
        results.append({"workers": w, "jobs": done, "seconds": round(seconds, 2)})
        results[-1]["jobs_per_s"] = round(done / seconds, 1)
        print(
            f"claim path: {w:3d} workers  {done} jobs in {seconds:6.1f} s  "
            f"{done / seconds:7.1f} jobs/s",
            flush=True,
        )
    base = results[0]["jobs_per_s"]
    for row in results:
        row["vs_1_worker"] = round(row["jobs_per_s"] / base, 2)
    return results


# 2. Online: the API's executors ------------------------------------------------------------


def online(admin_url: str, executor: str, replicas: int, images: int, size: int, steps: int):
    from fastapi.testclient import TestClient

    from api.auth import create_user
    from api.main import create_app
    from api.services import build_services
    from tests.api.conftest import enroll, generate, ready, wait_for

    extra = {"ray_min_replicas": replicas, "ray_max_replicas": replicas} if replicas else {}
    with database(admin_url) as url, tempfile.TemporaryDirectory() as home:
        settings = settings_for(home, url, executor=executor, max_side=max(size, 1024), **extra)
        if executor == "ray":
            import ray

            ray.init(num_cpus=4, num_gpus=replicas, include_dashboard=False, log_to_driver=False)
        services = build_services(settings)  # type: ignore[arg-type]
        try:
            with TestClient(create_app(services), client=("127.0.0.1", 1)) as client:
                with services.db.session() as s:
                    key = create_user(s, "bench")[1]
                ready(client, timeout=600)
                identity = enroll(client, key)["id"]
                warm = generate(client, key, identity, "me", steps=2, width=size, height=size)
                wait_for(client, key, warm["id"], timeout=1800)  # first-call costs, untimed
                began = time.perf_counter()
                ids = [
                    generate(client, key, identity, "me", steps=steps, width=size, height=size)[
                        "id"
                    ]
                    for _ in range(images)
                ]
                bodies = [wait_for(client, key, i, timeout=1800) for i in ids]
                seconds = time.perf_counter() - began
        finally:
            services.close()
            if executor == "ray":
                import ray

                ray.shutdown()
    ok = sum(b["status"] == "succeeded" for b in bodies)
    name = f"{executor}" + (f" x{replicas}" if replicas else "")
    print(
        f"online: {name:12s} {ok}/{images} images in {seconds:6.1f} s  "
        f"{60 * ok / seconds:6.1f} images/min",
        flush=True,
    )
    return {
        "executor": name,
        "images": ok,
        "seconds": round(seconds, 2),
        "images_per_min": round(60 * ok / seconds, 1),
    }


# 3. Batch: local mode and Ray Data ---------------------------------------------------------


def batch(flags: list[str], images: int, size: int, steps: int, home: Path) -> dict:
    from tests.photos import astronaut

    work = Path(tempfile.mkdtemp(dir=home))
    (work / "me.jpg").write_bytes(astronaut())
    lines = [{"photos": ["me.jpg"], "prompt": f"me, take {i}", "seed": i} for i in range(images)]
    (work / "m.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    argv = [
        sys.executable,
        "-m",
        "api",
        "batch",
        str(work / "m.jsonl"),
        "--out",
        str(work / "out"),
        "--size",
        f"{size}x{size}",
        "--steps",
        str(steps),
        "--json",
    ]
    env = {"IMAGINE_HOME": str(home), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    env["OMP_NUM_THREADS"] = "1"
    began = time.perf_counter()
    done = subprocess.run([*argv, *flags], env=env, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - began
    assert done.returncode == 0, done.stderr[-3000:]
    made = json.loads(done.stdout)["images"]["written_this_run"]
    name = " ".join(flags) or "local"
    print(
        f"batch: {name:20s} {made} images in {seconds:6.1f} s (process start and model "
        f"load included)  {60 * made / seconds:6.1f} images/min",
        flush=True,
    )
    return {
        "mode": name,
        "images": made,
        "seconds": round(seconds, 2),
        "images_per_min": round(60 * made / seconds, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000, help="jobs for the claim path")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--images", type=int, default=16, help="images, online and batch")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--skip", nargs="*", default=[], choices=["claims", "online", "batch"])
    parser.add_argument("--admin-url", default=PG_ADMIN, help="PostgreSQL to create a DB on")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)  # as a Ray actor's (see the docstring)

    report: dict = {"settings": vars(args) | {"json": str(args.json)}, "profile": "smoke"}
    if "claims" not in args.skip:
        rows = claim_path(args.admin_url, args.jobs, args.workers)
        best = max(r["jobs_per_s"] for r in rows)
        report["claim_path"] = {
            "rows": rows,
            "best_jobs_per_s": best,
            "gpus_at_1_image_per_s": int(best),
        }
        print(
            f"one database serves about {int(best)} GPUs at ~1 image/s each (1 job = "
            f"1 claim + {PROGRESS_WRITES} progress + 1 heartbeat + 1 commit)"
        )
    if "online" not in args.skip:
        runs = [
            online(args.admin_url, "inprocess", 0, args.images, args.size, args.steps),
            online(args.admin_url, "ray", 1, args.images, args.size, args.steps),
            online(args.admin_url, "ray", 2, args.images, args.size, args.steps),
        ]
        base = runs[0]["images_per_min"]
        for r in runs:
            r["vs_inprocess"] = round(r["images_per_min"] / base, 2)
        report["online"] = runs
    if "batch" not in args.skip:
        with tempfile.TemporaryDirectory() as home:
            runs = [
                batch(flags, args.images, args.size, args.steps, Path(home))
                for flags in ([], ["--ray"], ["--ray", "--replicas", "2"])
            ]
        base = runs[0]["images_per_min"]
        for r in runs:
            r["vs_local"] = round(r["images_per_min"] / base, 2)
        report["batch"] = runs
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
