"""``imagine provenance verify`` as a user runs it."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from benchmarks.procedural import procedural_image
from imagine.cli import main
from imagine.provenance import ProvenanceConfig, mark, watermark_id
from tests.photos import hopper

KEY = bytes(range(32))  # a watermark key for these tests
MARKS = ProvenanceConfig(watermark_key=KEY)


@pytest.fixture(scope="module")
def files(tmp_path_factory, c2pa_chain) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("verify")
    scene = procedural_image(8, (384, 256))
    signing = ProvenanceConfig(
        watermark_key=KEY, c2pa_cert=c2pa_chain.chain, c2pa_key=c2pa_chain.key
    )
    signed = mark(scene, "gen-2", signing, "JPEG").data
    tampered = bytearray(signed)
    tampered[signed.rindex(b"\xff\xda") + 200] ^= 0x10  # a bit of the entropy-coded pixels
    contents = {
        "marked.png": mark(scene, "gen-1", MARKS, "PNG").data,
        "signed.jpg": signed,
        "tampered.jpg": bytes(tampered),
        "photo.jpg": hopper(),
        "notes.png": b"not an image at all",
    }
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in contents}


@pytest.fixture(autouse=True)
def deployment(tmp_path, monkeypatch) -> None:
    """The CLI reads the test key, with its home in a temporary folder."""
    monkeypatch.setenv("TEST_IMAGINE_HOME", str(tmp_path / "home"))


def run(capsys, *argv: str, environ: dict[str, str] | None = None) -> tuple[int, str, str]:
    import os

    deployment = {
        "IMAGINE_HOME": os.environ["TEST_IMAGINE_HOME"],
        "IMAGINE_WATERMARK_KEY": base64.b64encode(KEY).decode(),
    }
    code = main(list(argv), environ=deployment | (environ or {}))
    out, err = capsys.readouterr()
    return code, out, err


def test_verify_json_on_a_signed_image(capsys, files, c2pa_chain):
    env = {"IMAGINE_C2PA_TRUST_ANCHORS": str(c2pa_chain.root)}
    code, out, err = run(
        capsys, "provenance", "verify", str(files["signed.jpg"]), "--json", environ=env
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["file"] == str(files["signed.jpg"])
    assert result["marked"] and result["ai_generated"]
    assert result["watermark"]["found"] and result["watermark"]["payload"] == watermark_id("gen-2")
    assert result["iptc"]["digital_source_type"].endswith("/trainedAlgorithmicMedia")
    assert result["c2pa"]["valid"] and result["c2pa"]["trusted"]
    assert result["c2pa"]["actions"] == ["c2pa.created", "c2pa.watermarked"]
    assert result["status"] == "ai_generated"
    assert result["watermark"]["key"].startswith("this deployment's key")
    assert result["watermark"]["bit_accuracy"] == 1.0 and result["watermark"]["bits"] == 156


def test_verify_human_output(capsys, files):
    code, out, _ = run(capsys, "provenance", "verify", str(files["marked.png"]))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"{files['marked.png']}: marked as AI-generated"
    assert f"watermark: found, id {watermark_id('gen-1')}" in out
    assert "C2PA: no manifest" in out


def test_verify_says_tampered_first(capsys, files):
    """Issue 21 point 7: an invalid manifest leads, before "marked as AI-generated"."""
    code, out, _ = run(capsys, "provenance", "verify", str(files["tampered.jpg"]))
    assert code == 0
    first = out.splitlines()[0]
    assert first.startswith(f"{files['tampered.jpg']}: TAMPERED OR INVALID: ")
    assert "assertion.dataHash.mismatch" in first
    code, out, _ = run(capsys, "provenance", "verify", str(files["tampered.jpg"]), "--json")
    result = json.loads(out)
    assert result["status"] == "invalid" and result["summary"].startswith("TAMPERED")


def test_verify_says_no_marks_found_on_other_images(capsys, files):
    code, out, _ = run(capsys, "provenance", "verify", str(files["photo.jpg"]))
    assert code == 0
    assert out.splitlines()[0].endswith(": no marks found")
    code, out, _ = run(capsys, "provenance", "verify", str(files["photo.jpg"]), "--json")
    assert json.loads(out)["marked"] is False and json.loads(out)["summary"] == "no marks found"


@pytest.mark.parametrize(
    ("name", "code"), [("missing.png", "file_not_found"), ("notes.png", "unsupported_format")]
)
def test_verify_user_errors(capsys, files, name, code):
    path = files["notes.png"].parent / name
    rc, out, err = run(capsys, "provenance", "verify", str(path), "--json")
    assert rc == 2
    assert err.startswith(f"error: {code}: ")
    assert json.loads(out)["error"]["code"] == code


def test_verify_needs_an_action(capsys):
    rc, _, err = run(capsys, "provenance")
    assert rc == 2 and "error: usage:" in err
