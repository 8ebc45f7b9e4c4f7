"""The per-run state file and the output folder's lock.

``<out>/batch-state.json`` says, for every item, what it asked for (a
fingerprint), the seed it was given, whether it finished or failed and why.
It is rewritten atomically, so a kill leaves the previous version whole. The
images on disk stay the truth for what is done: an image counts when its PNG
and sidecar both exist (``destination.complete_images``), and the state only vouches
that they were made for the same request. A state a few images behind the
disk (after SIGKILL) costs nothing; the images are found on resume.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from imagine.errors import ImagineError
from imagine.outputs import atomic_write

STATE_FILE = "batch-state.json"
LOCK_FILE = ".batch.lock"
STATE_VERSION = 1


class BatchStateError(ImagineError):
    code = "invalid_state"


class BatchRunning(ImagineError):
    code = "batch_running"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class ItemState:
    line: int
    fingerprint: str  # sha256 of what the images depend on (manifest fields and model settings)
    seed: int  # image k of prompt p uses seed + (k - p * n)
    images: int  # how many the item makes
    status: str = "pending"  # "pending" | "done" | "failed"
    done: int = 0  # images complete on disk when last recorded
    error: dict[str, str] | None = None  # {"code", "message"} when failed
    finished_at: str | None = None


@dataclass
class BatchState:
    manifest: str
    created_at: str = field(default_factory=now)
    updated_at: str = field(default_factory=now)
    runs: list[dict[str, Any]] = field(default_factory=list)  # one record per invocation
    items: dict[str, ItemState] = field(default_factory=dict)
    invalid_lines: list[dict[str, Any]] = field(default_factory=list)  # re-checked every run
    # what an executor keeps between runs (the service executor: its idempotency token and
    # the identities it enrolled); ids only, never photos or embeddings
    executor: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> BatchState:
        return cls.from_bytes(path.read_bytes(), str(path))

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> BatchState:
        try:
            raw = json.loads(data.decode("utf-8"))
            if raw.get("version") != STATE_VERSION:
                raise ValueError(f"version {raw.get('version')!r}, expected {STATE_VERSION}")
            items = {key: ItemState(**value) for key, value in raw["items"].items()}
            return cls(
                manifest=raw["manifest"],
                created_at=raw["created_at"],
                updated_at=raw["updated_at"],
                runs=raw["runs"],
                items=items,
                invalid_lines=raw["invalid_lines"],
                executor=raw.get("executor", {}),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise BatchStateError(
                f"{where} cannot be read ({exc}); move it away to start the run over"
            ) from None

    def to_bytes(self) -> bytes:
        self.updated_at = now()
        payload = {"version": STATE_VERSION, **asdict(self)}
        return (json.dumps(payload, indent=1, ensure_ascii=False) + "\n").encode()

    def save(self, path: Path) -> None:
        atomic_write(path, self.to_bytes())


@contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold ``<out>/.batch.lock`` for the run; a second run on the same folder is refused.

    An advisory ``flock``: the kernel releases it when the process dies, even by SIGKILL.
    """
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BatchRunning(f"another imagine batch is running on {out}") from None
        yield
    finally:
        os.close(fd)
