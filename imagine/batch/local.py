"""The in-process executor: ``load_runtime``'s pipeline, fed device batches across items.

Models load once. Each distinct set of photos (by content) is enrolled once and
only its embedding is kept; a refused enrollment fails every item that uses
those photos, without trying again. Items are taken in (size, steps) order and
their images fill device batches of ``max_batch`` rows across items: other
prompts and other faces denoise together (``PersonalizedPipeline.generate_batch``).
Anything with an error code fails only its item; the run goes on.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import groupby

import numpy as np
from PIL import Image

from imagine.batch.executor import ImageJob, ItemWork, Sink, error_code
from imagine.batch.manifest import BatchItem
from imagine.enrollment import enroll_files
from imagine.errors import ImagineError
from imagine.models.config import check_config
from imagine.models.files import find_sdxl_files
from imagine.outputs import finalize
from imagine.pipeline import Cancelled, GenerationRequest, GenerationResult
from imagine.runtime import Runtime, load_runtime
from imagine.settings import Settings
from llm_prompting import ExpandedPrompt

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Refusal:
    code: str
    message: str


@dataclass
class Prepared:
    """An item ready for the device: its face and its expanded prompts."""

    item: BatchItem
    embedding: np.ndarray  # [D]
    backend: str
    crops: tuple[Image.Image, ...]  # aligned faces, for FaceID Plus v2; in memory only
    texts: dict[str, tuple[ExpandedPrompt, float]]  # prompt -> (expansion, seconds it took)


@dataclass(frozen=True)
class _Row:
    prepared: Prepared
    job: ImageJob


Identities = dict[str, tuple[np.ndarray, str, tuple[Image.Image, ...]] | _Refusal]


def prepare(
    w: ItemWork,
    settings: Settings,
    identities: Identities,
    sink: Sink,
    expand: Callable[[str, str | None], ExpandedPrompt],
) -> Prepared:
    """Enroll the item's photos (once per photo set: ``identities`` keeps each face, or why
    it was refused) and expand each of its prompts; raises with the item's error."""
    item = w.item
    if item.photo_key not in identities:
        start = time.perf_counter()
        try:
            profile = enroll_files(list(item.photos), settings)
            identities[item.photo_key] = (profile.embedding, profile.backend, profile.crops)
        except Exception as exc:
            code = error_code(exc) or "internal_error"
            identities[item.photo_key] = _Refusal(code, str(exc))
        sink.timing("enroll", time.perf_counter() - start)
    found = identities[item.photo_key]
    if isinstance(found, _Refusal):
        raise ImagineError(found.message, code=found.code)
    embedding, backend, crops = found
    texts = {}
    for prompt in dict.fromkeys(job.prompt for job in w.jobs):
        start = time.perf_counter()
        texts[prompt] = (expand(prompt, item.style), time.perf_counter() - start)
        sink.timing("expand", texts[prompt][1])
    return Prepared(item, embedding, backend, crops, texts)


def _shape(item: BatchItem) -> tuple[int, int, int]:
    return (item.width, item.height, item.steps)


class LocalExecutor:
    name = "local"

    def __init__(self, settings: Settings, runtime: Runtime | None = None):
        if runtime is None:
            # Missing weights or a bad choice fail now, before the run writes any state.
            config = settings.models(embedding_dim=0)
            check_config(config)
            if config.profile == "sdxl":
                find_sdxl_files(config)
        self.settings = settings
        self.runtime = runtime  # loaded on the first run when not given
        # photo_key -> (embedding, backend, crops) or why enrollment failed
        self.identities: Identities = {}
        self.failed: set[str] = set()
        self.notes: tuple[str, ...] = ()
        self.run_token = secrets.token_hex(4)  # watermark ids: <token>-<item>-<k>, unique per run

    def run(self, work: Sequence[ItemWork], sink: Sink, should_stop: Callable[[], bool]) -> None:
        if not work:
            return
        self.load(sink)
        ordered = sorted(work, key=lambda w: _shape(w.item))  # stable: manifest order within
        self.run_prepared(((w, self._prepare(w, sink)) for w in ordered), sink, should_stop)

    def load(self, sink: Sink) -> Runtime:
        if self.runtime is None:
            start = time.perf_counter()
            self.runtime = load_runtime(self.settings)
            sink.timing("load", time.perf_counter() - start)
        self.notes = self.runtime.notes
        return self.runtime

    def run_prepared(
        self,
        prepared: Iterable[tuple[ItemWork, Prepared | None]],
        sink: Sink,
        should_stop: Callable[[], bool],
    ) -> None:
        """Fill device batches with the images of items already enrolled and expanded, in
        (size, steps) order; None: the item failed while it was prepared."""
        runtime = self.load(sink)
        max_batch = runtime.pipeline.max_batch
        rows: list[_Row] = []
        try:
            for w, ready in prepared:
                if should_stop():
                    return
                if rows and _shape(rows[0].prepared.item) != _shape(w.item):
                    self._generate(rows, sink, should_stop)
                    rows = []
                if ready is None or not self._check(ready, sink):
                    continue
                for job in w.jobs:
                    rows.append(_Row(ready, job))
                    if len(rows) == max_batch:
                        self._generate(rows, sink, should_stop)
                        rows = []
                        if should_stop():
                            return
            if rows:
                self._generate(rows, sink, should_stop)
        except Cancelled:
            return  # stopped after a denoising step; the runner keeps the rest for --resume

    def _prepare(self, w: ItemWork, sink: Sink) -> Prepared | None:
        """Enroll (once per photo set) and expand; None when the item failed."""
        assert self.runtime is not None
        try:
            return prepare(w, self.settings, self.identities, sink, self.runtime.pipeline.expand)
        except Exception as exc:
            self._fail(w.item.id, exc, sink)
            return None

    def _check(self, ready: Prepared, sink: Sink) -> bool:
        """The pipeline's own checks of each prompt of the item (sizes, embedding)."""
        assert self.runtime is not None
        try:
            for prompt in ready.texts:
                self.runtime.pipeline.check_inputs(
                    ready.item.request(prompt), ready.embedding, ready.crops
                )
        except Exception as exc:
            self._fail(ready.item.id, exc, sink)
            return False
        return True

    def _generate(self, rows: list[_Row], sink: Sink, should_stop: Callable[[], bool]) -> None:
        """One device batch: rows of one (size, steps), one request per (item, prompt)."""
        assert self.runtime is not None
        rows = [r for r in rows if r.prepared.item.id not in self.failed]
        if not rows:
            return
        groups = [
            list(g)
            for _, g in groupby(
                rows, key=lambda r: (r.prepared.item.id, r.job.k // r.prepared.item.n)
            )
        ]
        requests = [
            GenerationRequest(
                prompt=g[0].job.prompt,
                text=g[0].prepared.texts[g[0].job.prompt][0],
                embedding=g[0].prepared.embedding,
                seeds=tuple(r.job.seed for r in g),
                face_crops=g[0].prepared.crops,
            )
            for g in groups
        ]
        item = rows[0].prepared.item
        try:
            results = self.runtime.pipeline.generate_batch(
                requests,
                steps=item.steps,
                width=item.width,
                height=item.height,
                is_cancelled=should_stop,
            )
        except Cancelled:
            raise
        except Exception as exc:
            for item_id in dict.fromkeys(r.prepared.item.id for r in rows):
                self._fail(item_id, exc, sink)
            return
        for stage, seconds in results[0].timings.items():
            sink.timing(stage, seconds)
        for group, result in zip(groups, results, strict=True):
            try:
                self._finish(group, result, sink)
            except Exception as exc:  # a mark that cannot be made fails the item, not the run
                self._fail(group[0].prepared.item.id, exc, sink)

    def _finish(self, group: list[_Row], result: GenerationResult, sink: Sink) -> None:
        """Check and mark each image as ``imagine generate`` does, then hand it to the sink."""
        assert self.runtime is not None
        prepared, runtime = group[0].prepared, self.runtime
        item, ks = prepared.item, [row.job.k for row in group]
        expand_s = prepared.texts[result.prompt][1]
        # The sidecar's timings are this image's: its prompt's expansion, then its device batch.
        result = dataclasses.replace(result, timings={"expand": expand_s, **result.timings})
        start = time.perf_counter()
        finished = finalize(
            result,
            item.id,
            checker=runtime.checker,
            provenance=runtime.provenance,
            face_backend=prepared.backend,
            notes=runtime.notes,
            mark_ids=[f"{self.run_token}-{item.id}-{k}" for k in ks],
        )
        sink.timing("finalize", time.perf_counter() - start)
        for k, done in zip(ks, finished, strict=True):
            done.meta["index"] = k
            if done.data is None:  # withheld by the output safety check: never stored
                self.failed.add(item.id)
                sink.failed(
                    item.id,
                    done.withheld or "unsafe_output",
                    f"image {k} (seed {done.item.seed}) did not pass the output safety check",
                )
                continue
            sink.image(item.id, k, done.data, done.meta)

    def _fail(self, item_id: str, exc: Exception, sink: Sink) -> None:
        code, message = error_code(exc), str(exc)
        if code is None:
            log.error("item %s failed unexpectedly", item_id, exc_info=exc)
            code, message = "internal_error", f"{type(exc).__name__}: {exc}"
        self.failed.add(item_id)
        sink.failed(item_id, code, message)
