"""``imagine gate`` as an operator runs it: JSON shape, exit codes, settings from the env."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from api.cli import main
from tests.api.region.geodb import NOW, city, write_mmdb

ROOT = Path(__file__).resolve().parents[3]


def gate(capsys, *argv: str, **env: str) -> tuple[int, str, str]:
    code = main(["gate", *argv], environ={f"IMAGINE_{k.upper()}": v for k, v in env.items()})
    out, err = capsys.readouterr()
    return code, out, err


def test_json_shape(capsys):
    code, out, _ = gate(capsys, "8.8.8.8", "--json")
    assert code == 0
    result = json.loads(out)
    assert {"decision", "reason", "country", "subdivision"} <= set(result)
    assert (result["decision"], result["reason"], result["country"]) == ("allow", None, "US")
    assert (result["subdivision"], result["subdivision_verified"]) == (None, False)
    assert (result["feature"], result["residence_checked"]) == ("enroll", False)
    assert (result["network"], result["resolver"]) == ("8.8.8.0/24", "iptocc")


def test_deny_exits_zero_with_its_reasons(capsys):
    code, out, _ = gate(
        capsys, "8.8.8.8", "--residence", "us-il", "--feature", "generate", "--json"
    )
    assert code == 0
    result = json.loads(out)
    assert (result["decision"], result["reason"], result["residence"]) == (
        "deny",
        "region_denied",
        "US-IL",
    )
    assert result["reasons"][0]["message"] == "generate is not offered to residents of US-IL"


def test_human_output(capsys):
    code, out, _ = gate(capsys, "81.2.69.142", "--residence", "US")
    assert code == 0
    assert out.startswith("deny enroll: region_denied\n")
    assert "81.2.69.0/24 in GB" in out
    assert "residence_required" in out and "policy     default-2026-11" in out


def test_private_address_needs_a_local_region(capsys):
    _, out, _ = gate(capsys, "127.0.0.1", "--json")
    assert json.loads(out)["reason"] == "unknown_location"
    _, out, _ = gate(capsys, "127.0.0.1", "--residence", "US-CA", "--json", local_region="US-CA")
    assert json.loads(out)["decision"] == "allow"
    _, out, _ = gate(capsys, "10.0.0.1", "--feature", "gallery", "--json")
    assert json.loads(out)["decision"] == "allow"


def test_mmdb_resolver_from_settings(capsys, tmp_path):
    records = {"23.1.0.0/16": city("US", "IL"), "8.8.8.0/24": city("US", "CA")}
    fresh = write_mmdb(tmp_path / "fresh.mmdb", records)
    old = write_mmdb(tmp_path / "old.mmdb", records, built=NOW - timedelta(days=60))
    env = {"geo_resolver": "mmdb", "geo_mmdb": str(fresh)}
    _, out, _ = gate(capsys, "23.1.2.3", "--json", **env)
    result = json.loads(out)
    assert (result["reason"], result["subdivision"], result["subdivision_verified"]) == (
        "region_denied",
        "US-IL",
        True,
    )
    assert result["database_build_date"].startswith(NOW.date().isoformat())
    _, out, _ = gate(capsys, "8.8.8.8", "--json", **{**env, "geo_mmdb": str(old)})
    assert json.loads(out)["reason"] == "stale_geo_database"
    _, out, _ = gate(
        capsys, "8.8.8.8", "--json", **{**env, "geo_mmdb": str(old)}, geo_max_age_days="90"
    )
    assert json.loads(out)["decision"] == "allow"
    _, out, _ = gate(capsys, "8.8.8.8", "--json", "--resolver", "iptocc", **env)
    assert json.loads(out)["resolver"] == "iptocc"


def test_policy_overrides_from_settings(capsys):
    _, out, _ = gate(capsys, "212.27.48.10", "--json", enroll_regions="US,FR,!US-IL")
    result = json.loads(out)
    assert result["decision"] == "allow"
    assert result["policy_version"].startswith("default-2026-11+env.")


def test_anonymizer_file_from_settings(capsys, tmp_path):
    listed = tmp_path / "tor-exits.txt"
    listed.write_text("8.8.8.8\n")
    _, out, _ = gate(capsys, "8.8.8.8", "--json", anonymizer_file=str(listed))
    assert json.loads(out)["reason"] == "anonymizer"


@pytest.mark.parametrize(
    ("argv", "env", "code"),
    [
        (["999.1.1.1"], {}, "invalid_address"),
        (["not-an-ip"], {}, "invalid_address"),
        (["8.8.8.8", "--residence", "Illinois"], {}, "invalid_region"),
        (["8.8.8.8", "--residence", "US-XX"], {}, "invalid_region"),
        (["8.8.8.8"], {"local_region": "Chicago"}, "invalid_region_config"),
        (["8.8.8.8"], {"geo_resolver": "mmdb"}, "invalid_region_config"),
        (["8.8.8.8"], {"geo_resolver": "mmdb", "geo_mmdb": "/nope.mmdb"}, "invalid_region_config"),
        (["8.8.8.8"], {"enroll_regions": "US,!Texas"}, "invalid_region_config"),
        (["8.8.8.8"], {"forwarded_header": "x-real-ip"}, "invalid_setting"),
        (["8.8.8.8"], {"geo_max_age_days": "soon"}, "invalid_setting"),
        (["8.8.8.8", "--feature", "upload"], {}, "usage"),
    ],
)
def test_user_errors_exit_2(capsys, argv, env, code):
    rc, out, err = gate(capsys, *argv, "--json", **env)
    assert rc == 2
    assert err.strip().splitlines()[-1].startswith(f"error: {code}: ")
    assert json.loads(out)["error"]["code"] == code


def test_console_script_end_to_end(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "api", "gate", "2a01:e0a::1", "--feature", "generate", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},  # this checkout, not an installed copy
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["decision"], result["country"], result["network"]) == (
        "deny",
        "FR",
        "2a01:e0a::/48",
    )
