"""Image files on the local filesystem under random names (never a client-supplied one).

Keys are ``ab/cdef...png``: 128 random bits, fanned out over 256 folders. An
S3-compatible store can implement the same four methods later.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

from imagine.outputs import atomic_write


class FileStorage:
    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def new_key(self, suffix: str = ".png") -> str:
        token = secrets.token_hex(16)
        return f"{token[:2]}/{token[2:]}{suffix}"

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"storage key escapes the store: {key!r}")
        return path

    def put(self, key: str, data: bytes) -> None:
        atomic_write(self.path(key), data)

    def get(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def age_seconds(self, key: str) -> float:
        return time.time() - self.path(key).stat().st_mtime

    def keys(self) -> set[str]:
        return {p.relative_to(self.root).as_posix() for p in self.root.glob("*/*") if p.is_file()}
