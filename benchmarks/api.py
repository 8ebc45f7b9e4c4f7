"""HTTP throughput and latency of the service next to a bare FastAPI endpoint, in one run.

Starts two real server processes on loopback: ``imagine serve`` with the
``null`` executor (jobs complete at once without images, so only the API is
measured) and a bare FastAPI app with one GET and one POST route doing no
work. The same client (httpx, asyncio, ``--concurrency`` in flight) then
measures job creation (``POST /v1/generations``) against the bare POST and
status polling (``GET /v1/generations/{id}``) against the bare GET. The
figures that matter are the ratios: the median over interleaved rounds of
each round's p50 latency ratio (the issue's target is under 2x), and the
same for each server's CPU time per request, which the client's share of
the cores does not blur. Between phases the run waits until the executor
has finished every job, and counts its CPU in the job creation's share.

    .venv/bin/python benchmarks/api.py [--requests 5000] [--rounds 10] [--concurrency 8]
        [--json out.json]
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (Linux /proc), all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    parser.add_argument("--requests", type=int, default=5000, help="per endpoint, all rounds")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds (default 10)")
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

        async def drain(client: httpx.AsyncClient) -> None:
            """Wait until the null executor has finished every job made so far (it takes
            the oldest first), so one phase's backlog never runs during the next."""
            while job_ids:
                r = await client.get(f"{ours}/v1/generations/{job_ids[-1]}", headers=headers)
                if r.json()["status"] not in ("queued", "running"):
                    return
                await asyncio.sleep(0.05)

        phases = (
            ("bare POST", bare_post),
            ("create job", create),
            ("bare GET", bare_get),
            ("poll status", poll),
        )
        pids = (procs[1].pid, procs[0].pid, procs[1].pid, procs[0].pid)  # whose CPU each uses
        per_round = args.requests // args.rounds

        async def run() -> list[dict]:
            limits = httpx.Limits(max_connections=args.concurrency)
            async with httpx.AsyncClient(limits=limits, timeout=60) as client:
                for _, fn in phases:  # warm-up: connections, caches
                    await measure(client, fn, 2 * args.concurrency, args.concurrency)
                await drain(client)
                rounds = []
                for _ in range(args.rounds):  # interleaved, so drift hits both sides alike
                    results = {}
                    for (name, fn), pid in zip(phases, pids, strict=True):
                        cpu = cpu_seconds(pid)
                        results[name] = await measure(client, fn, per_round, args.concurrency)
                        await drain(client)  # the executor's share of the jobs counts too
                        results[name]["server_cpu_ms"] = (cpu_seconds(pid) - cpu) / per_round * 1000
                    rounds.append(results)
                return rounds

        rounds = asyncio.run(run())
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=30)

    pairs = {"create job": "bare POST", "poll status": "bare GET"}
    print(
        f"{args.requests} requests per endpoint in {args.rounds} interleaved rounds, "
        f"{args.concurrency} in flight, loopback"
    )

    def median(name: str, field: str) -> float:
        return statistics.median(r[name][field] for r in rounds)

    for name, _ in phases:
        statuses: dict[int, int] = {}
        for r in rounds:
            for code, count in r[name]["statuses"].items():
                statuses[code] = statuses.get(code, 0) + count
        print(
            f"  {name:12s} {median(name, 'rps'):5.0f} req/s  p50 {median(name, 'p50_ms'):5.1f} ms"
            f"  p99 {median(name, 'p99_ms'):6.1f} ms  server CPU "
            f"{median(name, 'server_cpu_ms'):4.2f} ms/request  statuses {statuses}"
        )
    ratios = {}
    for ours_name, bare_name in pairs.items():
        for field, label in (("p50_ms", "p50 latency"), ("server_cpu_ms", "server CPU")):
            by_round = [r[ours_name][field] / r[bare_name][field] for r in rounds]
            ratios[f"{label}: {ours_name} / {bare_name}"] = statistics.median(by_round)
            spread = ", ".join(f"{x:.2f}" for x in by_round)
            target = " (target < 2x)" if field == "p50_ms" else ""
            print(
                f"  {label} {ours_name} / {bare_name}: {statistics.median(by_round):.2f}x"
                f"{target}; rounds: {spread}"
            )
    if args.json:
        args.json.write_text(json.dumps({"rounds": rounds, "ratios": ratios}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
