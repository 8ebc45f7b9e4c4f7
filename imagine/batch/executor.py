"""The ``Executor`` protocol: what makes a batch's images, behind one small interface.

The runner owns the manifest, the output folder, the state file, progress and
the report; an executor only turns work into images and reports back through
a ``Sink``. ``local`` runs the pipeline in this process; ``ray`` runs it in a
pool of Ray actors (``imagine/batch/ray_data.py``); ``service`` submits
to a running Imagine Me API, follows progress and downloads the images and their
sidecars.

``EXECUTORS`` maps a name to a factory of a ``Target``: what a manifest is
checked against before it is read (defaults, bounds), then, for the manifest
read, the checks a run needs before any work and the executor itself
(``imagine/batch/targets.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from imagine.batch.manifest import BatchItem, ItemDefaults, Manifest
from imagine.request import GenerationLimits
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


class Target(Protocol):
    """Where a batch's images are made, known before its manifest is read."""

    server: str | None  # the service the run submits to; None: this process
    defaults: ItemDefaults  # for lines that leave size or steps out
    limits: GenerationLimits
    max_photos: int  # per line
    is_noise: bool  # the images are noise (the smoke profile): users are told

    def executor(self, manifest: Manifest) -> tuple[Executor, dict[str, Any]]:
        """The executor and the context that fingerprints its images, once what must hold
        before any work does (raises an error with a code otherwise)."""
        ...


@dataclass(frozen=True)
class BatchOptions:
    """A run's choices that are not settings; each target reads those it uses."""

    concurrency: int = 4  # service: generation jobs in flight at once
    consent_version: str | None = None  # service: declared for the people whose photos are enrolled
    residence: str | None = None  # service: ISO 3166 code declared for them, e.g. US-CA
    replicas: int = 1  # ray: generation actors (a GPU each where the cluster has GPUs)
    ray_address: str | None = None  # ray: the cluster to join; None: a local Ray


def _local(settings: Settings, options: BatchOptions) -> Target:
    from imagine.batch.targets import LocalTarget

    return LocalTarget(settings)


def _service(settings: Settings, options: BatchOptions) -> Target:
    from imagine.batch.targets import ServiceTarget

    return ServiceTarget(settings, options)


def _ray(settings: Settings, options: BatchOptions) -> Target:
    from imagine.batch.targets import RayTarget

    return RayTarget(settings, options)


EXECUTORS: dict[str, Callable[[Settings, BatchOptions], Target]] = {
    "local": _local,  # this process, the settings' models
    "ray": _ray,  # a Ray Data pipeline over actors that load the settings' models
    "service": _service,  # the service at settings.batch_server
}


def get_target(name: str, settings: Settings, options: BatchOptions | None = None) -> Target:
    if name not in EXECUTORS:
        raise ValueError(f"unknown batch executor {name!r}; choose one of {sorted(EXECUTORS)}")
    return EXECUTORS[name](settings, options or BatchOptions())
