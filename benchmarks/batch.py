"""``imagine batch`` on the smoke profile: images per minute and peak memory for N items.

Each N runs as its own process (``python -m api batch``), as users run it, into
a fresh output folder with one shared model cache (a warm-up run builds the
smoke weights first). Items cycle through three photo sets (the bundled
example portrait, mirrored, and cropped closer: three enrollments) and four
prompts; every item makes one image. Figures per N: images per minute from
the run's report (model loading excluded), the process's wall time, and its
peak resident memory (``wait4``'s ``ru_maxrss``). Rounds interleave the Ns and
the fastest round per N counts, since other load on a shared CPU only slows
runs down. The claims checked: time grows linearly with N (every run within
30% of a least-squares line a + b * N) and peak memory stays flat (under +10%).

    .venv/bin/python benchmarks/batch.py [--n 8 32 128] [--size 256] [--steps 4] [--repeats 2]
                                         [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ("me as an astronaut", "me as a jazz singer", "me hiking at dawn", "me in a library")


def photo_sets(folder: Path) -> list[str]:
    portrait = Image.open(ROOT / "examples" / "astronaut.jpg").convert("RGB")
    variants = {
        "plain.jpg": portrait,
        "mirrored.jpg": ImageOps.mirror(portrait),
        "closer.jpg": portrait.crop((40, 0, 472, 432)).resize((512, 512)),
    }
    for name, image in variants.items():
        image.save(folder / name, quality=92)
    return list(variants)


def write_manifest(path: Path, n: int, photos: list[str]) -> None:
    lines = [
        json.dumps({"photos": [photos[i % len(photos)]], "prompt": PROMPTS[i % len(PROMPTS)]})
        for i in range(n)
    ]
    path.write_text("\n".join(lines) + "\n")


def run_batch(manifest: Path, out: Path, env: dict[str, str], size: int, steps: int) -> dict:
    """One ``imagine batch`` process: its report, wall seconds and peak RSS in MiB."""
    argv = [sys.executable, "-m", "api", "batch", str(manifest), "--out", str(out)]
    argv += ["--size", f"{size}x{size}", "--steps", str(steps), "--json"]
    start = time.perf_counter()
    with open(out.parent / f"{out.name}.log", "wb") as log:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log)
        stdout = proc.stdout.read() if proc.stdout else b""
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(
            f"batch failed ({proc.returncode}); see {out.parent / (out.name + '.log')}"
        )
    return {"report": json.loads(stdout), "wall_s": wall, "peak_rss_mib": usage.ru_maxrss / 1024}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, nargs="+", default=[8, 32, 128], help="items per run")
    parser.add_argument("--size", type=int, default=256, help="image side (smoke default 256)")
    parser.add_argument("--steps", type=int, default=4, help="denoising steps (smoke default 4)")
    parser.add_argument(
        "--home", type=Path, default=Path(tempfile.gettempdir()) / "imagine-bench-home"
    )
    parser.add_argument("--repeats", type=int, default=2, help="runs per N; the fastest counts")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    env = {**os.environ, "IMAGINE_HOME": str(args.home), "IMAGINE_PROFILE": "smoke"}
    with tempfile.TemporaryDirectory(prefix="imagine-bench-batch-") as tmp:
        folder = Path(tmp)
        photos = photo_sets(folder)
        write_manifest(folder / "warmup.jsonl", 1, photos)
        run_batch(folder / "warmup.jsonl", folder / "warmup", env, args.size, args.steps)
        best: dict[int, dict] = {}
        for round_ in range(args.repeats):  # N interleaved, so load spikes hit every N alike
            for n in args.n:
                write_manifest(folder / f"n{n}.jsonl", n, photos)
                out = folder / f"n{n}-{round_}"
                got = run_batch(folder / f"n{n}.jsonl", out, env, args.size, args.steps)
                report = got["report"]
                row = {
                    "n": n,
                    "images": report["images"]["written_this_run"],
                    "images_per_minute": report["images_per_minute"],
                    "seconds_per_image": round(60 / report["images_per_minute"], 4),
                    "load_s": report["timings_s"].get("load", 0.0),
                    "wall_s": round(got["wall_s"], 2),
                    "peak_rss_mib": round(got["peak_rss_mib"], 1),
                    "timings_s": report["timings_s"],
                }
                print(
                    f"N={n:4d} run {round_ + 1}: {row['images_per_minute']:7.1f} images/min "
                    f"({row['seconds_per_image']:.3f} s/image), wall {row['wall_s']:.1f} s "
                    f"(load {row['load_s']:.1f} s), peak RSS {row['peak_rss_mib']:.0f} MiB",
                    flush=True,
                )
                # Fastest run per N (least disturbed by other load); highest memory seen.
                kept = best.setdefault(n, row)
                if row["seconds_per_image"] < kept["seconds_per_image"]:
                    best[n] = row | {"peak_rss_mib": max(row["peak_rss_mib"], kept["peak_rss_mib"])}
                else:
                    kept["peak_rss_mib"] = max(row["peak_rss_mib"], kept["peak_rss_mib"])
    rows = [best[n] for n in args.n]
    for r in rows:
        print(
            f"N={r['n']:4d} best of {args.repeats}: {r['images_per_minute']:7.1f} images/min "
            f"({r['seconds_per_image']:.3f} s/image), peak RSS {r['peak_rss_mib']:.0f} MiB"
        )

    # Linear time: a run costs a fixed part (enrolling three photo sets, first-call
    # warm-up) plus a constant time per image. Fit seconds = a + b * N by least squares;
    # every run must lie within 30% of the line (N log N or N^2 growth misses it by far).
    n = np.array([r["n"] for r in rows], dtype=float)
    seconds = np.array([r["images"] * r["seconds_per_image"] for r in rows])
    linear = True
    if len(rows) >= 3:
        b, a = np.polyfit(n, seconds, 1)
        worst = float(np.max(np.abs(seconds - (a + b * n)) / seconds))
        linear = worst <= 0.30
        print(
            f"{'PASS' if linear else 'FAIL'}: making time = {a:.2f} s + {b:.4f} s x N; "
            f"worst run off the line by {worst:.0%} (linear: within 30%)"
        )
    first, last = rows[0], rows[-1]
    memory_growth = last["peak_rss_mib"] / first["peak_rss_mib"] - 1.0
    flat = memory_growth < 0.10
    print(
        f"{'PASS' if flat else 'FAIL'}: peak RSS at N={last['n']} is {memory_growth:+.1%} vs "
        f"N={first['n']} (flat memory: under +10%)"
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0 if linear and flat else 1


if __name__ == "__main__":
    sys.exit(main())
