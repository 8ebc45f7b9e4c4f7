"""``imagine batch --ray``: the manifest through a Ray Data pipeline on a local Ray, with two
generation actors; one is killed mid-run, then the driver, and ``--resume`` finishes."""

from __future__ import annotations

import itertools
import json
import os
import signal

import numpy as np
import pytest
from PIL import Image

from imagine.cli import main
from tests.imagine.test_cli_batch import (
    SMALL,
    complete_images,
    start,
    thirty_lines,
    wait_for_images,
)

pytest.importorskip("ray")


def generate_actors() -> list[int]:
    """PIDs of the Ray Data actors running ``Generate`` (Ray names their processes)."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
        except OSError:
            continue
        if cmdline.startswith("ray::") and "Generate" in cmdline:
            pids.append(int(entry))
    return pids


def seeded(line: str, seed: int) -> str:
    """The line with a seed, so that both runs make the same images (bad JSON stays bad)."""
    try:
        item = json.loads(line)
    except json.JSONDecodeError:
        return line
    return json.dumps(item | {"seed": seed}) if isinstance(item, dict) else line


@pytest.mark.slow
@pytest.mark.ray
def test_ray_batch_survives_a_killed_actor_and_driver_and_matches_local_mode(
    capsys, env, photos, smoke, tmp_path
):
    manifest, expected, codes = thirty_lines(photos)
    lines = manifest.read_text().splitlines()
    manifest.write_text("".join(seeded(line, 1000 + i) + "\n" for i, line in enumerate(lines)))

    # The reference: local mode, in this process.
    local = tmp_path / "local"
    assert main(["batch", str(manifest), "--out", str(local), *SMALL, "--json"], environ=env) == 1
    capsys.readouterr()
    assert len(complete_images(local)) == expected

    out, log = photos / "out", photos / "ray.log"
    argv = [str(manifest), "--out", str(out), *SMALL, "--ray", "--replicas", "2"]

    # 1. Kill a generation actor (SIGKILL, as the OOM killer would) once images flow, then
    #    the driver: Ray Data retries the actor's batch; what was written stays written.
    proc = start(env, *argv, log=log)
    wait_for_images(out, 4, proc, timeout=600)
    actors = generate_actors()
    assert len(actors) == 2, actors
    os.kill(actors[0], signal.SIGKILL)
    wait_for_images(out, 12, proc, timeout=600)
    proc.kill()
    assert proc.wait(timeout=60) == -signal.SIGKILL
    written = complete_images(out)
    assert 12 <= len(written) < expected, log.read_text()

    # 2. Resume on Ray: only what is missing is made.
    proc = start(env, *argv, "--resume", "--json", log=log)
    assert proc.wait(timeout=900) == 1, log.read_text()  # the five bad lines failed
    final = complete_images(out)
    assert len(final) == expected
    assert {p: final[p] for p in written} == written
    report = json.loads((out / "report.json").read_text())
    assert report["images"]["written_this_run"] == expected - len(written)
    assert report["failures_by_code"] == codes
    assert report["items"]["done"] == 25 and report["images"]["done"] == expected

    # 3. The same seeds make the same images as local mode. Each file carries its own
    #    watermark payload (periods of 4-16 px), which 16 px block means average out, while
    #    another seed changes the image at every scale (as test_cli_generate checks).
    assert sorted(final) == sorted(complete_images(local))
    same, different = [], []
    for path in sorted(final):
        ray_meta = json.loads((out / path).with_suffix(".json").read_text())
        local_meta = json.loads((local / path).with_suffix(".json").read_text())
        assert ray_meta["seed"] == local_meta["seed"]
        same.append(np.abs(blocks(out / path) - blocks(local / path)).mean())
    paths = sorted(p for p in final if p.endswith("/0.png"))
    for a, b in itertools.pairwise(paths):
        if Image.open(out / a).size == Image.open(out / b).size:
            different.append(np.abs(blocks(out / a) - blocks(out / b)).mean())
    assert np.mean(same) < 2.0 and max(same) < 3.0, same
    assert min(different) > 3 * max(same), (max(same), min(different))


def blocks(png) -> np.ndarray:
    a = np.asarray(Image.open(png), dtype=np.float32)
    h, w, c = a.shape
    return a.reshape(h // 16, 16, w // 16, 16, c).mean(axis=(1, 3))
