"""``imagine enroll`` as a user runs it: exit codes, stdout/stderr shapes, nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imagine.cli import main
from tests.photos import astronaut, astronaut_reframed, group, hopper, no_face


@pytest.fixture
def photos(tmp_path: Path) -> dict[str, Path]:
    files = {
        "astronaut.jpg": astronaut(),
        "astronaut2.png": astronaut_reframed(),
        "hopper.jpg": hopper(),
        "group.jpg": group(),
        "mask.jpg": no_face(),
        "notes.jpg": b"hello, not an image",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return {name: tmp_path / name for name in files}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv), environ={})
    out, err = capsys.readouterr()
    return code, out, err


def test_enroll_json(capsys, photos):
    code, out, err = run(
        capsys, "enroll", str(photos["astronaut.jpg"]), str(photos["astronaut2.png"]), "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["faces_found"] == 2
    assert result["embedding_dim"] == 128
    assert result["backend"] == "dlib"
    assert [p["file"] for p in result["photos"]] == [
        str(photos["astronaut.jpg"]),
        str(photos["astronaut2.png"]),
    ]
    assert {"face_px", "sharpness", "yaw", "detection_score"} <= set(result["photos"][0])


def test_enroll_human_output(capsys, photos):
    code, out, _ = run(capsys, "enroll", str(photos["hopper.jpg"]))
    assert code == 0
    assert "128-d embedding" in out and "hopper.jpg" in out


@pytest.mark.parametrize(
    ("files", "code"),
    [
        (["group.jpg"], "multiple_faces"),
        (["mask.jpg"], "no_face"),
        (["astronaut.jpg", "hopper.jpg"], "identity_mismatch"),
        (["notes.jpg"], "unsupported_format"),
        (["missing.jpg"], "file_not_found"),
    ],
)
def test_enroll_user_errors(capsys, photos, tmp_path, files, code):
    before = sorted(tmp_path.iterdir())
    rc, out, err = run(capsys, "enroll", *(str(tmp_path / f) for f in files), "--json")
    assert rc == 2
    assert err.startswith(f"error: {code}: ")
    assert json.loads(out)["error"]["code"] == code
    assert sorted(tmp_path.iterdir()) == before  # nothing written


def test_console_script_end_to_end(photos, tmp_path):
    exe = Path(sys.executable).with_name("imagine")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "api"]
    ok = subprocess.run(
        [*cmd, "enroll", str(photos["astronaut.jpg"])],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "IMAGINE_HOME": str(tmp_path / "home")},
    )
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(
        [*cmd, "enroll", str(photos["group.jpg"])], capture_output=True, text=True, cwd=tmp_path
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].startswith("error: multiple_faces:")
    assert "Traceback" not in bad.stderr
    assert not (tmp_path / "home").exists()
