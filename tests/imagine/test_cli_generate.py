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
from imagine.provenance import verify, watermark_id
from imagine.settings import Settings
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
    # The FaceID LoRA inside the adapter file is applied, merged into the UNet by default.
    (lora,) = meta["adapters"]["loras"]
    assert (lora["name"], lora["scale"], lora["fused"]) == ("faceid_0", 1.0, True)
    assert meta["adapters"]["face_adapter"] == "ip-adapter-faceid-smoke-128d.safetensors"
    assert "embedding" not in json.dumps(meta).replace("embedding_dim", "")
    assert Image.open(pngs[0]).size == (64, 64)
    assert "noise" in err  # the user is told plainly
    findings = verify(pngs[0].read_bytes(), Settings.from_env(env).provenance())
    assert findings.ai_generated and findings.matches(watermark_id(pngs[0].stem))
    assert meta["provenance"]["watermark_id"] == watermark_id(pngs[0].stem)
    assert meta["safety"]["checker"] in ("nudenet", "none")


def test_same_seed_reproduces_the_image_up_to_its_watermark(capsys, env, portrait, tmp_path, smoke):
    def run(seed: int, name: str) -> np.ndarray:
        code, _, err = generate(
            capsys,
            env,
            "--photo",
            str(portrait),
            "--prompt",
            "me as an astronaut",
            "--seed",
            str(seed),
            "--size",
            "64x64",
            "--steps",
            "2",
            "--out",
            str(tmp_path / name),
        )
        assert code == 0, err
        (png,) = (tmp_path / name).glob("*.png")
        return np.asarray(Image.open(png)).astype(float)

    def blocks(a: np.ndarray) -> np.ndarray:
        return a.reshape(4, 16, 4, 16, 3).mean(axis=(1, 3))

    # Each run's watermark carries its own generation id, so the files differ by that
    # watermark: periods of 4-16 px, which 16 px block means average out, while
    # another seed changes the image at every scale.
    first, again, other = run(7, "a"), run(7, "b"), run(8, "c")
    same = np.abs(blocks(first) - blocks(again)).mean()
    different = np.abs(blocks(first) - blocks(other)).mean()
    assert same < 2.0 and different > 5 * same, (same, different)


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["--size", "100x100"], "invalid_size"),
        (["--size", "big"], "invalid_size"),
        (["--n", "0"], "invalid_n"),
        (["--steps", "1000"], "invalid_steps"),
        (["--seed", str(2**32 - 1), "--n", "2"], "invalid_seed"),
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


@pytest.mark.parametrize(
    ("prompt", "code", "words"),
    [
        ("me as a \x1b[31mred pirate", "invalid_prompt", "U+001B"),
        ("me as a pirate\u202e", "invalid_prompt", "U+202E"),
        ("me\x00", "invalid_prompt", "U+0000"),
        ("me " * 200, "prompt_too_long", "the limit is 500"),
    ],
)
def test_bad_prompts_fail_before_photos_and_models(capsys, env, tmp_path, prompt, code, words):
    photo = tmp_path / "group.jpg"
    photo.write_bytes(group())  # would fail with multiple_faces if it were read first
    out_dir = tmp_path / "o"
    rc, out, err = generate(
        capsys, env, "--photo", str(photo), "--prompt", prompt, "--out", str(out_dir), "--json"
    )
    assert rc == 2 and err.startswith(f"error: {code}: ") and words in err
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
    for x, y in zip(a, b, strict=True):  # the same up to each run's own watermark
        marks = Settings.from_env(env).provenance()  # the key the runs made in that home
        assert verify(x.read_bytes(), marks).matches(watermark_id(x.stem))
        assert verify(y.read_bytes(), marks).matches(watermark_id(y.stem))
        gap = np.asarray(Image.open(x), float) - np.asarray(Image.open(y), float)
        assert np.abs(gap.reshape(16, 16, 16, 16, 3).mean(axis=(1, 3))).mean() < 2.0
    assert "generating [" in first.stderr and "noise" in first.stderr
