"""HTTP throughput and latency of the service next to a bare FastAPI endpoint, in one run.

Starts two real server processes on loopback: ``imagine serve`` with the
``null`` executor (jobs complete at once without images, so only the API is
measured) and a bare FastAPI app with one GET and one POST route doing no
work. The same client (httpx, asyncio, ``--concurrency`` in flight) then
measures job creation (``POST /v1/generations``) against the bare POST and
status polling (``GET /v1/generations/{id}``) against the bare GET. The
figures that matter are the ratios of the medians: timings on a shared
2-core machine are noisy, and client and servers share it.

    .venv/bin/python benchmarks/api.py [--requests 400] [--concurrency 8] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BARE_APP = textwrap.dedent(
    """
    from fastapi import FastAPI
    from pydantic import BaseModel

    app = FastAPI()

    class Body(BaseModel):
        identity_id: str
        prompt: str
        n: int = 1

    @app.get("/bare/{item}")
    def read(item: str) -> dict:
        return {"id": item, "status": "succeeded"}

    @app.post("/bare", status_code=202)
    def create(body: Body) -> dict:
        return {"id": "gen_x", "status": "queued"}
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early ({proc.returncode})")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} did not become ready")


async def measure(client: httpx.AsyncClient, make_request, total: int, concurrency: int) -> dict:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue = iter(range(total))

    async def worker() -> None:
        for i in queue:
            start = time.perf_counter()
            response = await make_request(client, i)
            latencies.append(time.perf_counter() - start)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - start
    latencies.sort()
    return {
        "requests": total,
        "rps": total / wall,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000,
        "statuses": statuses,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from tests.photos import astronaut

    home = Path(tempfile.mkdtemp(prefix="imagine-bench-api-"))
    env = {
        **os.environ,
        "IMAGINE_HOME": str(home),
        "IMAGINE_LOCAL_REGION": "US-CA",
        "IMAGINE_EXECUTOR": "null",
        "IMAGINE_RATE_LIMIT_PER_MINUTE": "10000000",
        "IMAGINE_MAX_QUEUED_JOBS": "100000000",
    }
    imagine = [sys.executable, "-m", "api"]
    key = json.loads(
        subprocess.run(
            [*imagine, "users", "create", "bench", "--json"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )["api_key"]
    ours_port, bare_port = free_port(), free_port()
    (home / "bare_app.py").write_text(BARE_APP)
    procs = [
        subprocess.Popen(
            [*imagine, "serve", "--port", str(ours_port)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bare_app:app",
                "--port",
                str(bare_port),
                "--log-level",
                "info",
            ],
            cwd=home,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    ours, bare = f"http://127.0.0.1:{ours_port}", f"http://127.0.0.1:{bare_port}"
    try:
        wait_ready(ours + "/readyz", procs[0])
        wait_ready(bare + "/docs", procs[1])
        headers = {"Authorization": f"Bearer {key}"}
        version = httpx.get(ours + "/v1/consent").json()["version"]
        identity = httpx.post(
            ours + "/v1/identities",
            headers=headers,
            timeout=60,
            files=[("photos", ("me.jpg", astronaut(), "image/jpeg"))],
            data={"consent": "true", "consent_version": version, "residence": "US-CA"},
        ).json()["id"]
        body = {"identity_id": identity, "prompt": "me as an astronaut", "n": 1}
        job_ids: list[str] = []

        async def create(client: httpx.AsyncClient, i: int) -> httpx.Response:
            r = await client.post(
                ours + "/v1/generations", json={**body, "seed": i}, headers=headers
            )
            if r.status_code == 202:
                job_ids.append(r.json()["id"])
            return r

        async def poll(client: httpx.AsyncClient, i: int) -> httpx.Response:
            return await client.get(
                f"{ours}/v1/generations/{job_ids[i % len(job_ids)]}", headers=headers
            )

        async def bare_post(client: httpx.AsyncClient, i: int) -> httpx.Response:
            return await client.post(bare + "/bare", json=body)

        async def bare_get(client: httpx.AsyncClient, i: int) -> httpx.Response:
            return await client.get(f"{bare}/bare/gen_{i}")

        async def run() -> dict:
            limits = httpx.Limits(max_connections=args.concurrency)
            async with httpx.AsyncClient(limits=limits, timeout=60) as client:
                for fn in (create, poll, bare_post, bare_get):  # warm-up: connections, caches
                    await measure(client, fn, 2 * args.concurrency, args.concurrency)
                results = {}
                for name, fn in (
                    ("bare POST", bare_post),
                    ("create job", create),
                    ("bare GET", bare_get),
                    ("poll status", poll),
                ):
                    results[name] = await measure(client, fn, args.requests, args.concurrency)
                return results

        results = asyncio.run(run())
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=30)

    print(f"{args.requests} requests per endpoint, {args.concurrency} in flight, loopback")
    for name, r in results.items():
        print(
            f"  {name:12s} {r['rps']:7.0f} req/s  p50 {r['p50_ms']:6.1f} ms  "
            f"p99 {r['p99_ms']:6.1f} ms  statuses {r['statuses']}"
        )
    ratios = {
        "create job / bare POST": results["create job"]["p50_ms"] / results["bare POST"]["p50_ms"],
        "poll status / bare GET": results["poll status"]["p50_ms"] / results["bare GET"]["p50_ms"],
    }
    for name, ratio in ratios.items():
        print(f"  p50 {name}: {ratio:.2f}x (target < 2x)")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "ratios": ratios}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
