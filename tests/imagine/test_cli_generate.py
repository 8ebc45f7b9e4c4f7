"""``imagine generate`` as a user runs it, on the smoke profile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagine.cli import main
from tests.photos import group


def generate(capsys, env, *argv: str) -> tuple[int, str, str]:
    code = main(["generate", *argv], environ=env)
    out, err = capsys.readouterr()
    return code, out, err


def test_writes_pngs_and_sidecars(capsys, env, portrait, tmp_path, smoke):
    out_dir = tmp_path / "out"
    code, out, err = generate(
        capsys,
        env,
        "--photo",
        str(portrait),
        "--prompt",
        "me as an astronaut",
        "--n",
        "2",
        "--seed",
        "7",
        "--size",
        "64x64",
        "--steps",
        "2",
        "--out",
        str(out_dir),
        "--json",
    )
    assert code == 0, err
    report = json.loads(out)
    assert len(report["images"]) == 2
    pngs = sorted(out_dir.glob("*.png"))
    sidecars = sorted(out_dir.glob("*.json"))
    assert len(pngs) == 2 and len(sidecars) == 2
    assert [p.stem for p in pngs] == [s.stem for s in sidecars]
    assert not list(out_dir.glob(".*"))  # no temporary files left behind
    meta = json.loads(sidecars[0].read_text())
    assert meta["seed"] == 7 and meta["steps"] == 2 and meta["size"] == "64x64"
    assert meta["prompt"] == "me as an astronaut" and meta["expanded_prompt"]
    assert meta["profile"] == "smoke" and "noise" in meta["notice"]
    assert meta["identity_similarity"] is None and "no face" in meta["identity_similarity_note"]
    assert meta["face_backend"] == "dlib"
    assert "embedding" not in json.dumps(meta).replace("embedding_dim", "")
    assert Image.open(pngs[0]).size == (64, 64)
    assert "noise" in err  # the user is told plainly


def test_same_seed_reproduces_pixels(capsys, env, portrait, tmp_path, smoke):
    runs = []
    for name in ("a", "b"):
        code, _, _ = generate(
            capsys,
            env,
            "--photo",
            str(portrait),
            "--prompt",
            "me as an astronaut",
            "--seed",
            "7",
            "--size",
            "64x64",
            "--steps",
            "2",
            "--out",
            str(tmp_path / name),
        )
        assert code == 0
        (png,) = (tmp_path / name).glob("*.png")
        runs.append(np.asarray(Image.open(png)))
    assert np.array_equal(runs[0], runs[1])


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["--size", "100x100"], "invalid_size"),
        (["--size", "big"], "invalid_size"),
        (["--n", "0"], "invalid_n"),
        (["--steps", "1000"], "invalid_steps"),
        (["--profile", "sdxl"], "model_not_found"),
        (["--profile", "sdxl", "--model-dir", "/nonexistent/sdxl"], "model_not_found"),
    ],
)
def test_bad_requests_exit_2_with_a_code(capsys, env, portrait, tmp_path, smoke, argv, code):
    out_dir = tmp_path / "out"
    rc, out, err = generate(
        capsys,
        env,
        "--photo",
        str(portrait),
        "--prompt",
        "me",
        "--out",
        str(out_dir),
        "--json",
        *argv,
    )
    assert rc == 2
    assert f"error: {code}:" in err
    assert json.loads(out)["error"]["code"] == code
    assert not out_dir.exists()


def test_bad_photo_fails_before_models_load(capsys, env, tmp_path):
    photo = tmp_path / "group.jpg"
    photo.write_bytes(group())
    rc, _, err = generate(
        capsys, env, "--photo", str(photo), "--prompt", "me", "--out", str(tmp_path / "o")
    )
    assert rc == 2 and err.startswith("error: multiple_faces:")


@pytest.mark.slow
def test_console_script_on_a_fresh_home(portrait, tmp_path):
    """The acceptance run: a fresh IMAGINE_HOME builds the smoke weights, then generates."""
    exe = Path(sys.executable).with_name("imagine")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "api"]
    args = [
        "generate",
        "--photo",
        str(portrait),
        "--prompt",
        "me as an astronaut",
        "--n",
        "2",
        "--seed",
        "7",
        "--out",
    ]
    env = {**os.environ, "IMAGINE_HOME": str(tmp_path / "home")}
    first = subprocess.run(
        [*cmd, *args, str(tmp_path / "a")], capture_output=True, text=True, env=env, timeout=120
    )
    assert first.returncode == 0, first.stderr
    second = subprocess.run(
        [*cmd, *args, str(tmp_path / "b")], capture_output=True, text=True, env=env, timeout=120
    )
    assert second.returncode == 0, second.stderr
    a, b = sorted((tmp_path / "a").glob("*.png")), sorted((tmp_path / "b").glob("*.png"))
    assert len(a) == 2 and len(list((tmp_path / "a").glob("*.json"))) == 2
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(np.asarray(Image.open(x)), np.asarray(Image.open(y)))
    assert "generating [" in first.stderr and "noise" in first.stderr
