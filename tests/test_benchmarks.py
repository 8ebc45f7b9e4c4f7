"""The pipeline benchmarks run end to end on the CPU, as CI and the GPU run rely on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--size", "64", "--steps", "2", "--repeats", "1"]


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )


@pytest.mark.slow
def test_gpu_benchmark_cpu_fallback_measures_every_configuration(tmp_path):
    out = tmp_path / "pipeline_gpu.json"
    done = run("pipeline_gpu.py", "--cpu", *TINY, "--out", str(out))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["finished"] and report["settings"]["architecture"] == "smoke"
    rows = {r["name"]: r for r in report["results"]}
    for name in (
        "stock x1",
        "ours[none] x1",
        "ours[channels_last] x1",
        "ours[fuse_qkv] x1",
        "ours[channels_last+fuse_qkv] x1",
        "stock x2",
    ):
        assert rows[name]["status"] == "ok", rows[name]
    assert any(n.startswith("ours[") and n.endswith(" x2") for n in rows)
    assert report["flops"]["per_image"] > 0
    for row in rows.values():
        assert row["status"] == "ok" and row["s_per_image"] > 0
        assert row["images_per_hour"] == pytest.approx(3600 / row["s_per_image"], rel=1e-3)
        assert 0 < row["share_of_peak"] < 1
        if row["runner"] == "ours":
            assert row["speedup_vs_stock"] > 0
            assert set(row["stages_s"]) >= {"encode", "denoise", "decode"}
    assert report["summary"]["best_ours"] in rows
    assert "stock x1" in done.stdout and "best:" in done.stdout
    assert report["env"]["torch"] and report["env"]["date"]


@pytest.mark.slow
def test_gpu_benchmark_skips_what_does_not_fit_the_budget(tmp_path):
    out = tmp_path / "pipeline_gpu.json"
    done = run("pipeline_gpu.py", "--cpu", *TINY, "--budget-s", "1", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["finished"] and report["results"]
    assert all(r["status"] == "skipped" and "left" in r["reason"] for r in report["results"])


@pytest.mark.slow
def test_cpu_benchmark_compares_stock_and_every_switch(tmp_path):
    out = tmp_path / "pipeline_cpu.json"
    done = run("pipeline_cpu.py", *TINY, "--n", "1", "2", "--json", str(out))
    assert done.returncode in (0, 1), done.stderr[-3000:]  # 1: over the overhead target
    report = json.loads(out.read_text())
    assert [r["n"] for r in report["results"]] == [1, 2]
    for row in report["results"]:
        names = {"stock", "ours", "ours+channels_last", "ours+fuse_qkv", "ours+scoring"}
        assert set(row["best_s"]) == names
        assert row["vs_stock"]["stock"] == 0.0
        assert set(row["stages_s"]) >= {"encode", "denoise", "decode"}
    assert ("PASS" in done.stdout) == (done.returncode == 0)
    for row in report["variants"]:  # FaceID, FaceID+LoRA fused and not, InstantID
        assert row["vs_faceid"]["faceid"] == 1.0 and row["vs_faceid"]["instantid"] > 1.0
        assert row["fused_vs_unfused_max_levels"] <= 1 < row["lora_effect_mean_levels"]


@pytest.mark.slow
def test_cancel_benchmark_times_a_cancel_against_a_step(tmp_path):
    out = tmp_path / "cancel.json"
    done = run(
        "cancel.py",
        "--size",
        "256",
        "--steps",
        "50",
        "--n",
        "1",
        "--rounds",
        "1",
        "--json",
        str(out),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [r["status"] for r in report["rounds"]] == ["cancelled"]
    assert report["step_s"] > 0 and report["cancel_latency_s"] > 0
    assert "denoising steps of" in done.stdout


def test_moderation_benchmark_prints_the_table_by_category(tmp_path):
    out = tmp_path / "moderation.json"
    done = run("moderation.py", "--json", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    rows = {r["group"]: r for r in report["sets"]["likeness_set"]["lists"]["rows"]}
    assert set(rows) >= {"allowed", "deception", "minors_harm", "sexual", "hate"}
    assert report["sets"]["likeness_heldout"]["default"]["prompts"] >= 70
    blind3 = report["sets"]["likeness_blind3"]["default"]["rows"]
    assert all(r["rate"] >= (0.95 if r["group"] == "allowed" else 0.9) for r in blind3)
    assert "likeness_blind3, default" in done.stdout and "deception" in done.stdout


@pytest.mark.slow
def test_watermark_benchmark_reports_recovery_bit_accuracy_and_false_positives(tmp_path):
    out = tmp_path / "watermark.json"
    done = run("watermark.py", "--quick", "--json", str(out))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    attacks = report["marked"]["attacks"]
    for name in ("none", "jpeg50", "resize0.5", "crop50", "crop240", "rotate1", "flip"):
        assert 0 <= attacks[name]["found"] <= 1 and 0 <= attacks[name]["bit_accuracy"] <= 1
    assert attacks["none"]["found"] == 1.0 and attacks["none"]["bit_accuracy"] == 1.0
    assert report["unmarked"]["checked"] >= 50 and report["unmarked"]["false_positives"] == []
    assert report["targets"]["no false positives"] is True
    assert "false positives: 0 of" in done.stdout and "targets:" in done.stdout
