"""Cancel latency: how long a cancel takes to end a running job, against one denoising step.

The service promises that a cancel takes effect at the job's next denoising step. This
runs the service in-process on the smoke profile (the in-process executor, SQLite under
a temporary home), submits a job, cancels it once it is under way, and times the cancel
from the moment it is accepted to the moment the job reads ``cancelled``. The baseline
is the same run's own step length (the time between recorded steps while the job ran),
so the figure that matters is the ratio: at most about 1 step, plus a poll.

    .venv/bin/python benchmarks/cancel.py [--size 512] [--steps 30] [--n 2] [--rounds 3]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

POLL_S = 0.01


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="image side, px")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--n", type=int, default=2, help="images per job")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()

    from fastapi.testclient import TestClient

    from api.auth import create_user
    from api.main import create_app
    from api.services import build_services
    from api.settings import ServiceSettings
    from tests.api.conftest import auth, enroll, ready

    with tempfile.TemporaryDirectory() as home:
        settings = ServiceSettings(
            home=Path(home),
            local_region="US-CA",
            rate_limit_per_minute=1_000_000,
            max_side=max(args.size, 1024),
            max_steps=max(args.steps, 50),
        )
        services = build_services(settings)
        with TestClient(create_app(services), client=("127.0.0.1", 1)) as client:
            with services.db.session() as s:
                key = create_user(s, "bench")[1]
            ready(client)
            identity = enroll(client, key)["id"]
            body = {
                "identity_id": identity,
                "prompt": "me as an astronaut",
                "n": args.n,
                "steps": args.steps,
                "width": args.size,
                "height": args.size,
            }
            rounds = [cancel_once(client, auth(key), body) for _ in range(args.rounds)]
        services.db.engine.dispose()

    step_s = statistics.median(r["step_s"] for r in rounds)
    latency_s = statistics.median(r["latency_s"] for r in rounds)
    report = {
        "settings": vars(args) | {"json": str(args.json) if args.json else None},
        "rounds": rounds,
        "step_s": step_s,
        "cancel_latency_s": latency_s,
        "latency_in_steps": latency_s / step_s,
    }
    for r in rounds:
        print(
            f"step {r['step_s'] * 1000:7.1f} ms   cancel {r['latency_s'] * 1000:7.1f} ms   "
            f"= {r['latency_s'] / r['step_s']:.2f} steps   ({r['status']})"
        )
    print(
        f"median: a cancel took {latency_s * 1000:.0f} ms = {latency_s / step_s:.2f} denoising "
        f"steps of {step_s * 1000:.0f} ms ({args.size}², n={args.n}, smoke profile, CPU)"
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def cancel_once(client, headers: dict, body: dict) -> dict:
    """Submit, watch the steps go by, cancel a third of the way in, time the end."""
    job_id = client.post("/v1/generations", headers=headers, json=body).json()["id"]
    url = f"/v1/generations/{job_id}"
    seen: list[tuple[float, int]] = []  # (when, step) at each change of the recorded step
    while True:
        state = client.get(url, headers=headers).json()
        if state["step"] and (not seen or state["step"] != seen[-1][1]):
            seen.append((time.perf_counter(), state["step"]))
        if len(seen) >= 3 and state["step"] >= state["total_steps"] // 3:
            break
        assert state["status"] in ("queued", "running"), f"ended before the cancel: {state}"
        time.sleep(POLL_S)
    accepted = client.post(f"{url}/cancel", headers=headers)
    asked = time.perf_counter()
    assert accepted.status_code == 202, accepted.text
    while (state := client.get(url, headers=headers).json())["status"] == "running":
        time.sleep(POLL_S)
    ended = time.perf_counter()
    # A denoising step advances the recorded step by n (one per image of the batch).
    (t0, s0), (t1, s1) = seen[0], seen[-1]
    step_s = (t1 - t0) / max((s1 - s0) / body["n"], 1e-9)
    return {"status": state["status"], "step_s": step_s, "latency_s": ended - asked}


if __name__ == "__main__":
    sys.exit(main())
