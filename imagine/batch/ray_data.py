"""``imagine batch --ray``: the same run on a Ray Data pipeline, over a pool of actors.

The runner is unchanged: it owns the manifest, the output folder, the state file,
progress, ``--resume`` and the report, and writes each image and its sidecar
atomically as they come back. Only the making of images moves into Ray:

1. ``Prepare`` (CPU actors): enroll each item's photos (once per photo set) and
   moderate and expand its prompts, as ``LocalExecutor`` does;
2. ``Generate`` (``--replicas`` actors, a GPU each where the cluster has GPUs,
   else a CPU): each loads the models once and runs ``LocalExecutor``'s device
   batches on the items it is given, handing back PNG bytes and sidecars.

Rows travel as pickles in a bytes column (Ray Data's blocks are Arrow tables).
Photos are read where the ``Prepare`` actors run: on a cluster of several
machines, manifest paths must be on a filesystem they all see.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Sequence
from typing import Any

from imagine.batch.executor import ItemWork, Sink, error_code
from imagine.batch.local import Identities, LocalExecutor, Prepared, prepare
from imagine.errors import ImagineError
from imagine.runtime import load_checker
from imagine.settings import Settings

ITEMS_PER_CALL = 4  # items per Ray Data batch handed to an actor


class _Collect:
    """A ``Sink`` inside an actor: what the runner must hear, as rows for the driver."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, tuple[Any, ...]]] = []

    def image(self, item_id: str, k: int, png: bytes, meta: dict[str, Any]) -> None:
        self.rows.append(("image", (item_id, k, png, meta)))

    def failed(self, item_id: str, code: str, message: str) -> None:
        self.rows.append(("failed", (item_id, code, message)))

    def timing(self, stage: str, seconds: float) -> None:
        self.rows.append(("timing", (stage, seconds)))

    def remember(self, key: str, value: Any) -> None:  # the local executor keeps no state
        pass

    def recall(self, key: str) -> Any:
        return None


def _rows(batch: dict[str, Any]) -> list[Any]:
    return [pickle.loads(blob) for blob in batch["row"]]


def _batch(rows: list[Any]) -> dict[str, list[bytes]]:
    return {"row": [pickle.dumps(row) for row in rows]}


class Prepare:
    """CPU stage: (work, None) -> (work, Prepared | None, what the sink heard)."""

    def __init__(self, settings: Settings):
        from llm_prompting import expand

        self.settings = settings
        self.identities: Identities = {}
        prompting, count_tokens = settings.prompting(), settings.token_counter()
        self.expand = lambda prompt, style: expand(prompt, style, prompting, count_tokens)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[bytes]]:
        out = []
        for w in _rows(batch):
            sink = _Collect()
            ready: Prepared | None = None
            try:
                ready = prepare(w, self.settings, self.identities, sink, self.expand)
            except Exception as exc:  # the item fails, as in local mode; the run goes on
                sink.failed(w.item.id, error_code(exc) or "internal_error", str(exc))
            out.append((w, ready, sink.rows))
        return _batch(out)


class Generate:
    """Device stage: the models, loaded once per actor, make the prepared items' images."""

    def __init__(self, settings: Settings):
        self.executor = LocalExecutor(settings)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[bytes]]:
        sink = _Collect()
        rows = _rows(batch)
        for _, _, heard in rows:  # the Prepare stage's timings and failures, in order
            sink.rows.extend(heard)
        self.executor.run_prepared(
            [(w, ready) for w, ready, _ in rows], sink, should_stop=lambda: False
        )
        return _batch(sink.rows)


class RayDataExecutor:
    """The ``Executor`` of ``imagine batch --ray``."""

    name = "ray"

    def __init__(self, settings: Settings, replicas: int = 1, address: str | None = None):
        if replicas < 1:
            raise ImagineError(f"--replicas must be at least 1, got {replicas}", code="usage")
        self.settings, self.replicas, self.address = settings, replicas, address
        self.notes: tuple[str, ...] = load_checker(settings)[1]

    def run(self, work: Sequence[ItemWork], sink: Sink, should_stop: Callable[[], bool]) -> None:
        if not work:
            return
        import ray

        started = not ray.is_initialized()
        if started:
            # A local Ray gets a CPU for the Prepare actor beside each CPU replica.
            cpus = None if self.address else max(os.cpu_count() or 1, self.replicas + 1)
            ray.init(
                address=self.address, num_cpus=cpus, include_dashboard=False, log_to_driver=False
            )
        try:
            self._run(ray, work, sink, should_stop)
        finally:
            if started:
                ray.shutdown()

    def _run(
        self, ray: Any, work: Sequence[ItemWork], sink: Sink, should_stop: Callable[[], bool]
    ) -> None:
        import ray.data

        ray.data.DataContext.get_current().enable_progress_bars = False
        gpus = ray.cluster_resources().get("GPU", 0) > 0
        device = {"num_gpus": 1} if gpus else {"num_cpus": 1}
        ordered = sorted(work, key=lambda w: (w.item.width, w.item.height, w.item.steps))
        dataset = (
            ray.data.from_items(
                [{"row": blob} for blob in _batch(ordered)["row"]],
                override_num_blocks=len(ordered),
            )
            .map_batches(
                Prepare,
                fn_constructor_kwargs={"settings": self.settings},
                batch_size=1,
                concurrency=1,
                num_cpus=1,
            )
            .map_batches(
                Generate,
                fn_constructor_kwargs={"settings": self.settings},
                batch_size=ITEMS_PER_CALL,
                concurrency=self.replicas,
                **device,
            )
        )
        for row in dataset.iter_rows():  # as actors finish their batches
            kind, args = pickle.loads(row["row"])
            getattr(sink, kind)(*args)  # the runner writes images atomically, here
            if should_stop():
                return  # the actors go with Ray; --resume makes what is missing
