"""The runner with a fake executor: layout, state, resume, keep-going, interruption."""

from __future__ import annotations

import json

import pytest

from imagine.batch.runner import BatchExists, BatchRun
from imagine.batch.state import STATE_FILE, BatchRunning, BatchState, locked
from tests.imagine.batch.fakes import PaintingExecutor, write_manifest

CONTEXT = {"profile": "test"}
LINES: list[object] = [
    {"id": "a", "photos": ["me.jpg"], "prompts": ["me", "me again"], "n": 2, "seed": 10},
    {"id": "b", "photos": ["me.jpg"], "prompt": "forbidden words"},
    "{broken",
    {"id": "c", "photos": ["me.jpg"], "prompt": "me at sea", "n": 3},
]


def run(tmp_path, lines=LINES, *, resume=False, stop_after=None, executor=None, context=CONTEXT):
    executor = executor or PaintingExecutor()
    manifest = write_manifest(tmp_path, lines)

    def should_stop() -> bool:
        return stop_after is not None and len(executor.made) >= stop_after

    outcome = BatchRun(
        manifest,
        tmp_path / "out",
        executor,
        context=context,
        resume=resume,
        should_stop=should_stop,
    ).run()
    return outcome, executor


def files(out):
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


def mtimes(out):
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.glob("*/*.png")}


def test_every_good_item_is_written_and_every_bad_one_recorded_with_its_code(tmp_path):
    outcome, executor = run(tmp_path)
    out = tmp_path / "out"
    assert outcome.status == "completed" and outcome.failed == 2
    images = [f for f in files(out) if f.endswith((".png", ".json")) and "/" in f]
    assert images == [
        f"{i}/{k}.{ext}"
        for i, n in (("a", 4), ("c", 3))
        for k in range(n)
        for ext in ("json", "png")
    ]
    # Image k of prompt p is copy j = k % n and uses seed + j.
    assert [(i, k, s) for i, k, s in executor.made if i == "a"] == [
        ("a", 0, 10),
        ("a", 1, 11),
        ("a", 2, 10),
        ("a", 3, 11),
    ]
    state = BatchState.load(out / STATE_FILE)
    assert state.items["a"].status == "done" and state.items["c"].status == "done"
    assert state.items["b"].status == "failed"
    assert state.items["b"].error == {
        "code": "prompt_rejected",
        "message": "refused: forbidden words",
    }
    assert [(bad["line"], bad["code"]) for bad in state.invalid_lines] == [(3, "invalid_json")]
    report = json.loads((out / "report.json").read_text())
    assert report["items"] == {
        "total": 4,
        "done": 2,
        "failed": 2,
        "pending": 0,
        "invalid_lines": 1,
        "already_done": 0,
    }
    assert report["images"] == {"total": 8, "done": 7, "written_this_run": 7}
    assert report["failures_by_code"] == {"invalid_json": 1, "prompt_rejected": 1}
    assert [f["line"] for f in report["failures"]] == [2, 3]
    assert report["images_per_minute"] > 0 and "write" in report["timings_s"]
    assert report["notes"] == ["paintings, not photos"]  # what the executor must tell users
    assert (out / "report.html").is_file()


def test_resume_makes_only_what_is_missing_and_never_rewrites_finished_images(tmp_path):
    first, _ = run(tmp_path, stop_after=3)
    out = tmp_path / "out"
    assert first.status == "interrupted"
    state = BatchState.load(out / STATE_FILE)
    assert state.items["a"].status == "pending" and state.items["a"].done == 3
    assert state.runs[-1]["status"] == "interrupted"
    before = mtimes(out)
    assert len(before) == 3

    second, executor = run(tmp_path, resume=True)
    assert second.status == "completed"
    assert [(i, k) for i, k, _ in executor.made] == [("a", 3), ("c", 0), ("c", 1), ("c", 2)]
    after = mtimes(out)
    assert {k: after[k] for k in before} == before  # untouched
    assert len(after) == 7 and not [f for f in files(out) if f.endswith(".part")]
    report = second.report
    assert report["images"]["written_this_run"] == 4 and report["runs"] == 2

    third, executor = run(tmp_path, resume=True)
    assert executor.made == [] and third.report["items"]["already_done"] == 2
    assert mtimes(out) == after


def test_leftovers_of_a_killed_run_are_cleaned_and_half_written_images_redone(tmp_path):
    run(tmp_path, stop_after=2)
    folder = tmp_path / "out" / "a"
    (folder / ".2.png.x1y2.part").write_bytes(b"half a png")
    (folder / "1.json").unlink()  # killed between the PNG and its sidecar
    _, executor = run(tmp_path, resume=True)
    assert [k for i, k, _ in executor.made if i == "a"] == [1, 2, 3]
    assert sorted(p.name for p in folder.iterdir()) == [
        f"{k}.{ext}" for k in range(4) for ext in ("json", "png")
    ]


def test_an_unseeded_item_keeps_its_drawn_seed_across_resume(tmp_path):
    _, executor = run(tmp_path, stop_after=5)
    seed = BatchState.load(tmp_path / "out" / STATE_FILE).items["c"].seed
    assert [s for i, _, s in executor.made if i == "c"] == [seed]
    _, executor = run(tmp_path, resume=True)
    assert [(k, s) for i, k, s in executor.made if i == "c"] == [(1, seed + 1), (2, seed + 2)]


def test_an_item_changed_between_runs_is_redone_and_its_extra_images_removed(tmp_path):
    run(tmp_path)
    changed = [dict(LINES[0], n=1), *LINES[1:]]  # "a": 4 images -> 2
    _, executor = run(tmp_path, changed, resume=True)
    assert [(i, k) for i, k, _ in executor.made] == [("a", 0), ("a", 1)]
    assert sorted(p.name for p in (tmp_path / "out" / "a").glob("*.png")) == ["0.png", "1.png"]
    _, executor = run(tmp_path, changed, resume=True, context={"profile": "other"})
    assert len(executor.made) == 5  # other model settings: every image is redone


def test_failed_items_are_retried_on_resume(tmp_path):
    run(tmp_path)
    fixed = [LINES[0], dict(LINES[1], prompt="fine words"), LINES[3]]
    outcome, executor = run(tmp_path, fixed, resume=True)
    assert [(i, k) for i, k, _ in executor.made] == [("b", 0)]
    assert outcome.failed == 0 and outcome.report["failures"] == []


def test_an_existing_run_is_not_overwritten_without_resume(tmp_path):
    run(tmp_path)
    with pytest.raises(BatchExists) as err:
        run(tmp_path)
    assert err.value.code == "batch_exists" and "--resume" in err.value.message


def test_a_second_run_on_the_same_folder_is_refused_while_one_runs(tmp_path):
    with locked(tmp_path / "out"), pytest.raises(BatchRunning) as err:
        run(tmp_path)
    assert err.value.code == "batch_running"


class LazyExecutor(PaintingExecutor):
    """Returns after the first item: a broken executor must not leave items silently pending."""

    def run(self, work, sink, should_stop):
        super().run(work[:1], sink, should_stop)


def test_work_an_executor_leaves_undone_fails_its_items(tmp_path):
    outcome, _ = run(tmp_path, executor=LazyExecutor())
    assert outcome.status == "completed"
    codes = {f["id"]: f["code"] for f in outcome.report["failures"]}
    assert codes["b"] == codes["c"] == "internal_error"
