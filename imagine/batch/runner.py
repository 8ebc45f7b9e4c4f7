"""One batch run over one output folder or S3 prefix: plan, resume, hand work to an executor,
record, report.

Layout of ``out``: ``<item>/<k>.png`` and ``<item>/<k>.json`` (exactly what
``imagine generate`` writes), ``batch-state.json``, ``report.json`` and
``report.html``. Every file lands whole or not at all (``destination``).
"""

from __future__ import annotations

import hashlib
import json
import resource
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from imagine.batch.destination import (
    Destination,
    FolderDestination,
    complete_images,
    stale_files,
)
from imagine.batch.executor import Executor, ImageJob, ItemWork
from imagine.batch.manifest import BatchItem, Manifest
from imagine.batch.report import REPORT_HTML, REPORT_JSON, summarize, write_html
from imagine.batch.state import STATE_FILE, BatchState, ItemState, now
from imagine.errors import ImagineError
from imagine.outputs import sidecar_bytes
from imagine.settings import Settings

SAVE_EVERY_S = 2.0  # the state file is rewritten at most this often while images stream in


class BatchExists(ImagineError):
    code = "batch_exists"


@dataclass(frozen=True)
class BatchOutcome:
    status: str  # "completed" | "interrupted"
    report: dict[str, Any]  # what report.json holds

    @property
    def failed(self) -> int:
        return int(self.report["items"]["failed"])


def image_context(settings: Settings, executor: str = "local") -> dict[str, Any]:
    """The settings that change pixels; an item made under other ones is redone on resume."""
    return {
        "executor": executor,
        "profile": settings.profile,
        "model_dir": str(settings.model_dir) if settings.model_dir else None,
        "faceid_adapter": str(settings.faceid_adapter) if settings.faceid_adapter else None,
        "scheduler": settings.scheduler,
        "dtype": settings.dtype,
        "face_backend": settings.face_backend,
        "insightface_pack": settings.insightface_pack,
    }


def fingerprint(item: BatchItem, context: Mapping[str, Any]) -> str:
    blob = json.dumps({"item": item.spec(), "context": dict(context)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class BatchRun:
    """Runs a manifest into ``out`` (a folder, or a ``Destination``) through an executor; it is
    also the executor's ``Sink``."""

    def __init__(
        self,
        manifest: Manifest,
        out: Path | Destination,
        executor: Executor,
        *,
        context: Mapping[str, Any],
        resume: bool = False,
        should_stop: Callable[[], bool] = lambda: False,
        progress: Callable[[int, int], None] | None = None,
        say: Callable[[str], None] = lambda _: None,
    ):
        self.manifest, self.executor = manifest, executor
        self.out = FolderDestination(out) if isinstance(out, Path) else out
        self.context, self.resume = dict(context), resume
        self.should_stop, self.progress, self.say = should_stop, progress, say
        self.state = BatchState(manifest=str(manifest.path))
        self.made: dict[str, set[int]] = {}  # item id -> image indices complete on disk
        self.timings: dict[str, float] = {}
        self.to_make = self.written = self.dropped = self.skipped = 0
        self.last_save = 0.0

    def run(self) -> BatchOutcome:
        started_at, start = now(), time.perf_counter()
        with self.out.lock():
            self.state = self._open_state()
            work = self._plan()
            self._save()
            self.last_save = time.perf_counter()
            executor_start = time.perf_counter()
            try:
                if work:
                    self.say(f"{len(work)} item(s) with {self.to_make} image(s) to make")
                    self.executor.run(work, self, self.should_stop)
            finally:  # a second Ctrl-C lands here too: keep what is known
                self._save()
            executor_s = time.perf_counter() - executor_start
            status = self._settle()
            run = self._run_record(status, started_at, start, executor_s)
            self.state.runs.append(run)
            self._save()
            report = summarize(self.manifest, self.state, self.out.location, self.context, run)
            self.out.write(REPORT_JSON, (json.dumps(report, indent=2) + "\n").encode())
            with self.out.writer(REPORT_HTML) as html:
                write_html(html, self.manifest, self.state, self.out, self.made, report)
        return BatchOutcome(status=status, report=report)

    def _run_record(
        self, status: str, started_at: str, start: float, executor_s: float
    ) -> dict[str, Any]:
        """This invocation's figures; images per minute leave model loading out."""
        # an executor's own load timing can exceed this clock's view of a very short run
        making_s = max(executor_s - self.timings.get("load", 0.0), 1e-3)
        return {
            "started_at": started_at,
            "finished_at": now(),
            "status": status,
            "resumed": self.resume,
            "images_written": self.written,
            "items_already_done": self.skipped,
            "wall_s": round(time.perf_counter() - start, 3),
            "images_per_minute": round(60 * self.written / making_s, 2) if self.written else 0.0,
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "notes": list(self.executor.notes),
        }

    def _save(self) -> None:
        self.out.write(STATE_FILE, self.state.to_bytes())

    def _open_state(self) -> BatchState:
        where = self.out.location
        saved = self.out.read(STATE_FILE)
        if saved is None:
            if self.resume:
                self.say(f"nothing to resume in {where}; starting a new run")
            return BatchState(manifest=str(self.manifest.path))
        if not self.resume:
            raise BatchExists(
                f"{where} already holds a batch run ({STATE_FILE}); pass --resume to continue "
                "it, or choose another --out"
            )
        return BatchState.from_bytes(saved, self.out.show(STATE_FILE))

    def _plan(self) -> list[ItemWork]:
        """Decide each item's seed and the images still to make; record it all before any work."""
        earlier, state = self.state.items, self.state
        state.manifest = str(self.manifest.path)
        state.items = {}
        state.invalid_lines = [asdict(bad) for bad in self.manifest.invalid]
        work, changed = [], 0
        found = self.out.listing()  # one look at what is there, also for a million images
        for item in self.manifest.items:
            mark = fingerprint(item, self.context)
            old = earlier.get(item.id)
            same = old is not None and old.fingerprint == mark
            changed += old is not None and not same
            names = found.get(item.id, set())
            self.out.delete(f"{item.id}/{name}" for name in stale_files(names, same))
            if same and old is not None:
                seed = old.seed
            else:
                seed = item.seed if item.seed is not None else secrets.randbelow(2**31)
            done = complete_images(names) & set(range(item.image_count)) if same else set()
            jobs = tuple(
                ImageJob(k, item.prompts[k // item.n], seed + k % item.n)
                for k in range(item.image_count)
                if k not in done
            )
            record = ItemState(item.line, mark, seed, item.image_count, done=len(done))
            state.items[item.id] = record
            self.made[item.id] = done
            if jobs:
                work.append(ItemWork(item, jobs))
                self.to_make += len(jobs)
            else:
                record.status, record.finished_at = "done", (old.finished_at if old else now())
                self.skipped += 1
        if self.resume and earlier:
            kept = sum(len(d) for d in self.made.values())
            self.say(
                f"resuming: {self.skipped} item(s) complete, {kept} image(s) already there, "
                f"{self.to_make} to make"
                + (f"; {changed} item(s) changed since the last run are redone" if changed else "")
            )
        return work

    def image(self, item_id: str, k: int, png: bytes, meta: dict[str, Any]) -> None:
        start = time.perf_counter()
        self.out.write(f"{item_id}/{k}.png", png)  # the image first: a sidecar vouches for it
        self.out.write(f"{item_id}/{k}.json", sidecar_bytes(meta))
        self.timing("write", time.perf_counter() - start)
        record, made = self.state.items[item_id], self.made[item_id]
        if k not in made:
            made.add(k)
            self.written += 1
        record.done = len(made)
        if record.done == record.images and record.status == "pending":
            record.status, record.finished_at = "done", now()
        self._report_progress()
        self._save_now_and_then()

    def failed(self, item_id: str, code: str, message: str) -> None:
        record = self.state.items[item_id]
        if record.status == "failed":
            return
        if record.status == "pending":
            self.dropped += record.images - record.done
        record.status, record.finished_at = "failed", now()
        record.error = {"code": code, "message": message}
        self._report_progress()
        self._save_now_and_then()

    def timing(self, stage: str, seconds: float) -> None:
        self.timings[stage] = self.timings.get(stage, 0.0) + seconds
        if stage == "load":
            self._report_progress()  # models are ready: the bar's clock starts now

    def remember(self, key: str, value: Any) -> None:
        self.state.executor[key] = value
        self._save()

    def recall(self, key: str) -> Any:
        return self.state.executor.get(key)

    def _report_progress(self) -> None:
        if self.progress is not None:
            self.progress(self.written, self.to_make - self.dropped)

    def _save_now_and_then(self) -> None:
        if time.perf_counter() - self.last_save >= SAVE_EVERY_S:
            self._save()
            self.last_save = time.perf_counter()

    def _settle(self) -> str:
        """``interrupted`` when asked to stop with work left; an executor that just gave up
        on items fails them, so nothing is silently left pending."""
        pending = [i for i, r in self.state.items.items() if r.status == "pending"]
        if pending and self.should_stop():
            return "interrupted"
        for item_id in pending:
            record = self.state.items[item_id]
            self.failed(
                item_id,
                "internal_error",
                f"the {self.executor.name} executor returned with "
                f"{record.images - record.done} image(s) unmade",
            )
        return "completed"
