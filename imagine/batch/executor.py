"""The ``Executor`` protocol: what makes a batch's images, behind one small interface.

The runner owns the manifest, the output folder, the state file, progress and
the report; an executor only turns work into images and reports back through
a ``Sink``. ``local`` runs the pipeline in this process. A service executor
(submitting to a running Imagine Me API, following progress, downloading the
images and their sidecars) implements the same protocol and registers a name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from imagine.batch.manifest import BatchItem
from imagine.settings import Settings


@dataclass(frozen=True)
class ImageJob:
    k: int  # image index within the item: prompt k // n, copy k % n
    prompt: str
    seed: int


@dataclass(frozen=True)
class ItemWork:
    item: BatchItem
    jobs: tuple[ImageJob, ...]  # the images still to make, in k order


class Sink(Protocol):
    """Where an executor hands its results; calls come from one thread."""

    def image(self, item_id: str, k: int, png: bytes, meta: dict[str, Any]) -> None:
        """Image ``k`` of an item: encoded PNG bytes and its sidecar (``outputs.sidecar``)."""
        ...

    def failed(self, item_id: str, code: str, message: str) -> None:
        """The item cannot be made; its remaining images are dropped."""
        ...

    def timing(self, stage: str, seconds: float) -> None:
        """Seconds spent in a stage (load, enroll, expand, encode, denoise, ...)."""
        ...

    def remember(self, key: str, value: Any) -> None:
        """Keep ``value`` in the state file at once, for this and later runs (``--resume``)."""
        ...

    def recall(self, key: str) -> Any:
        """What ``remember`` kept under ``key`` in this run or an earlier one, else None."""
        ...


class Executor(Protocol):
    name: str
    notes: tuple[str, ...]  # what users must be told (e.g. output checks are off), once loaded

    def run(self, work: Sequence[ItemWork], sink: Sink, should_stop: Callable[[], bool]) -> None:
        """Make every job's image or fail its item through ``sink``; never raise for one item.

        Return early, leaving jobs undone, once ``should_stop()`` is true (after the
        current denoising step at the latest).
        """
        ...


def error_code(exc: BaseException) -> str | None:
    """The stable code of an error from any of the project's hierarchies, if it has one."""
    code = getattr(exc, "code", None)
    return code if isinstance(code, str) and code else None


def _local(settings: Settings) -> Executor:
    from imagine.batch.local import LocalExecutor

    return LocalExecutor(settings)


EXECUTORS: dict[str, Callable[[Settings], Executor]] = {"local": _local}


def get_executor(name: str, settings: Settings) -> Executor:
    if name not in EXECUTORS:
        raise ValueError(f"unknown batch executor {name!r}; choose one of {sorted(EXECUTORS)}")
    return EXECUTORS[name](settings)
