"""``imagine batch`` as a user runs it, on the smoke profile at 64x64 and 2 steps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagine.cli import main
from imagine.provenance import verify
from imagine.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--size", "64x64", "--steps", "2"]


def batch(capsys, env, *argv: str) -> tuple[int, str, str]:
    code = main(["batch", *argv], environ=env)
    out, err = capsys.readouterr()
    return code, out, err


def write_lines(path: Path, lines: list[object]) -> Path:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


def complete_images(out: Path) -> dict[str, int]:
    """Relative PNG path -> mtime in ns, for images whose sidecar exists (done)."""
    return {
        str(p.relative_to(out)): p.stat().st_mtime_ns
        for p in out.glob("*/*.png")
        if p.with_suffix(".json").is_file()
    }


def test_check_reports_invalid_lines_with_numbers_and_does_no_work(capsys, env, photos):
    manifest = write_lines(
        photos / "m.jsonl",
        [
            {"photos": ["me.jpg"], "prompt": "me"},
            "{oops",
            {"photos": ["me.jpg"]},
            {"photos": ["me.jpg"], "prompt": "me \u202etxt.exe"},
        ],
    )
    out = photos / "out"
    code, stdout, err = batch(capsys, env, str(manifest), "--out", str(out), "--check", "--json")
    assert code == 1
    assert f"{manifest}:2: invalid_json:" in err and f"{manifest}:3: missing_prompt:" in err
    assert f"{manifest}:4: invalid_prompt: the prompt contains U+202E" in err
    report = json.loads(stdout)
    assert report["valid"] == 1 and [b["line"] for b in report["invalid"]] == [2, 3, 4]
    assert not out.exists()
    write_lines(manifest, [{"photos": ["me.jpg"], "prompts": ["a", "b"], "n": 2}])
    code, stdout, _ = batch(capsys, env, str(manifest), "--out", str(out), "--check")
    assert code == 0 and "1 valid item(s) making 4 image(s), 0 invalid" in stdout
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "environ", "code"),
    [
        (["nowhere.jsonl"], {}, "file_not_found"),
        (["m.jsonl", "--size", "big"], {}, "invalid_size"),
        (["m.jsonl"], {"IMAGINE_SCHEDULER": "fastest"}, "invalid_model_config"),
        (["m.jsonl"], {"IMAGINE_PROFILE": "sdxl"}, "model_not_found"),
    ],
)
def test_problems_with_the_whole_run_exit_2_before_anything_is_written(
    capsys, env, photos, argv, environ, code
):
    write_lines(photos / "m.jsonl", [{"photos": ["me.jpg"], "prompt": "me"}])
    argv = [str(photos / argv[0]), *argv[1:], "--out", str(photos / "out"), "--json"]
    rc, stdout, err = batch(capsys, {**env, **environ}, *argv)
    assert rc == 2 and f"error: {code}:" in err
    assert json.loads(stdout)["error"]["code"] == code
    assert not (photos / "out").exists()  # a corrected rerun needs no --resume


def test_batch_writes_what_generate_writes_and_resume_redoes_nothing(capsys, env, photos, smoke):
    manifest = write_lines(
        photos / "m.jsonl",
        [
            {"id": "me", "photos": ["me.jpg"], "prompt": "me as an astronaut", "n": 2, "seed": 7},
            {"id": "crowd", "photos": ["group.jpg"], "prompt": "us"},
            '{"photos": ["me.jpg"], "prompt": "half a line"',
        ],
    )
    out = photos / "out"
    code, stdout, err = batch(capsys, env, str(manifest), "--out", str(out), *SMALL)
    assert code == 1, err  # two items failed
    assert (
        "line 2 (crowd): multiple_faces" in stdout and "line 3 (line-0003): invalid_json" in stdout
    )
    assert "batch [" in err and "noise" in err
    assert sorted(complete_images(out)) == ["me/0.png", "me/1.png"]

    code, _, err = main_generate(capsys, env, photos, out=photos / "alone")
    assert code == 0, err
    for k in range(2):
        (alone,) = (photos / "alone").glob(f"*-{k}.json")
        ours, theirs = (
            json.loads((out / "me" / f"{k}.json").read_text()),
            json.loads(alone.read_text()),
        )
        assert ours.keys() == theirs.keys()
        # Each image's watermark carries its own id (and the strength that id needed to be
        # read back); everything else is the same.
        mark, their_mark = (m["provenance"].pop("watermark_id") for m in (ours, theirs))
        for m in (ours, theirs):
            m["provenance"].pop("watermark_strength")
        assert mark != their_mark
        varying = {"generation_id", "created_at", "timings"}
        assert {x: ours[x] for x in ours.keys() - varying} == {
            x: theirs[x] for x in theirs.keys() - varying
        } | {"index": k}
        png = (out / "me" / f"{k}.png").read_bytes()
        assert verify(png, Settings.from_env(env).provenance()).matches(mark)
        # Same pixels up to the two watermarks (periods of 4-16 px, averaged out by 16 px
        # blocks) and float rounding from the batch composition.
        a = blocks(np.asarray(Image.open(out / "me" / f"{k}.png"), dtype=float))
        b = blocks(np.asarray(Image.open(alone.with_suffix(".png")), dtype=float))
        assert np.abs(a - b).mean() < 2.0

    code, _, err = batch(capsys, env, str(manifest), "--out", str(out), *SMALL)
    assert code == 2 and "error: batch_exists:" in err
    before = complete_images(out)
    code, stdout, err = batch(
        capsys, env, str(manifest), "--out", str(out), "--resume", "--json", *SMALL
    )
    assert code == 1
    report = json.loads(stdout)
    assert report["items"]["already_done"] == 1 and report["images"]["written_this_run"] == 0
    assert report["failures_by_code"] == {"invalid_json": 1, "multiple_faces": 1}
    assert complete_images(out) == before


def blocks(a: np.ndarray) -> np.ndarray:
    return a.reshape(4, 16, 4, 16, 3).mean(axis=(1, 3))  # 64x64 -> 4x4 block means


def main_generate(capsys, env, photos: Path, out: Path) -> tuple[int, str, str]:
    argv = ["generate", "--photo", str(photos / "me.jpg"), "--prompt", "me as an astronaut"]
    code = main([*argv, "--n", "2", "--seed", "7", *SMALL, "--out", str(out)], environ=env)
    stdout, err = capsys.readouterr()
    return code, stdout, err


def thirty_lines(photos: Path) -> tuple[Path, int, dict[str, int]]:
    """25 good items of 2 images each (three people, two sizes) and 5 deliberately bad lines."""
    people = ["me.jpg", "hopper.jpg", "reframed.png"]
    bad = {
        5: '{"photos": ["me.jpg"], "prompt": "unfinished"',
        10: {"photos": ["me.jpg"]},
        15: {"photos": ["group.jpg"], "prompt": "us"},
        20: {"photos": ["nobody.jpg"], "prompt": "me"},
        25: {"photos": ["me.jpg"], "prompt": "me", "size": "100x100"},
    }
    lines: list[object] = []
    for number in range(1, 31):
        good = {"photos": [people[number % 3]], "prompt": f"portrait {number}", "n": 2}
        lines.append(bad.get(number, good | ({"size": "96x64"} if number % 7 == 0 else {})))
    codes = {
        "invalid_json": 1,
        "missing_prompt": 1,
        "multiple_faces": 1,
        "file_not_found": 1,
        "invalid_size": 1,
    }
    return write_lines(photos / "thirty.jsonl", lines), 50, codes


def start(env: dict[str, str], *argv: str, log: Path) -> subprocess.Popen:
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "api", "batch", *argv],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def wait_for_images(out: Path, at_least: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while len(complete_images(out)) < at_least:
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline, f"fewer than {at_least} images after {timeout}s"
        time.sleep(0.1)


@pytest.mark.slow
def test_thirty_lines_survive_sigint_and_sigkill_and_resume_finishes_them(env, photos, smoke):
    manifest, expected, codes = thirty_lines(photos)
    out, log = photos / "out", photos / "batch.log"
    argv = [str(manifest), "--out", str(out), *SMALL]

    # 1. Ctrl-C halfway: stops after the current step, exits 130, state says interrupted.
    proc = start(env, *argv, log=log)
    wait_for_images(out, 6, proc)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130, log.read_text()
    assert "stopping after the current step" in log.read_text()
    state = json.loads((out / "batch-state.json").read_text())
    assert state["runs"][-1]["status"] == "interrupted"
    after_sigint = complete_images(out)
    assert 6 <= len(after_sigint) < expected

    # 2. Resume, then SIGKILL halfway: no chance to clean up at all.
    proc = start(env, *argv, "--resume", log=log)
    wait_for_images(out, len(after_sigint) + 6, proc)
    proc.kill()
    assert proc.wait(timeout=60) == -signal.SIGKILL
    after_sigkill = complete_images(out)
    assert len(after_sigkill) < expected
    assert {p: after_sigkill[p] for p in after_sigint} == after_sigint

    # 3. Resume to the end: only the missing images are made, none twice.
    proc = start(env, *argv, "--resume", "--json", log=log)
    assert proc.wait(timeout=600) == 1, log.read_text()  # the five bad lines failed
    final = complete_images(out)
    assert len(final) == expected
    assert {p: final[p] for p in after_sigkill} == after_sigkill
    report = json.loads((out / "report.json").read_text())
    assert report["images"]["written_this_run"] == expected - len(after_sigkill)
    assert report["failures_by_code"] == codes
    assert [f["line"] for f in report["failures"]] == [5, 10, 15, 20, 25]
    assert report["items"]["done"] == 25 and report["images"]["done"] == expected
    for folder in (p for p in out.iterdir() if p.is_dir()):
        assert sorted(f.name for f in folder.iterdir()) == ["0.json", "0.png", "1.json", "1.png"]
    assert (out / "report.html").stat().st_size > 0
