"""Image files on the local filesystem under random names (never a client-supplied one).

Keys are ``ab/cdef...png``: 128 random bits, fanned out over 256 folders. A key may
have variants beside it, copies derived from it once and kept (the labelled download,
``ab/cdef....labelled.png``): they go wherever their key goes (delete, orphan sweeps).
An S3-compatible store can implement the same methods later.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

from api.errors import NotFound
from imagine.outputs import atomic_write


class MissingObject(NotFound):
    """The bytes of a key are gone: deleted while a request that had read its row was on
    its way to them. The object, not the service, is missing: 404, never 500."""


VARIANTS = ("labelled",)


def variant_key(key: str, variant: str) -> str:
    """Where the ``variant`` copy of ``key`` is kept (``ab/cd.png`` -> ``ab/cd.labelled.png``)."""
    assert variant in VARIANTS
    stem, dot, suffix = key.rpartition(".")
    return f"{stem}.{variant}.{suffix}" if dot else f"{key}.{variant}"


def base_key(key: str) -> str:
    """The key a stored file belongs to: itself, or the key a variant was derived from."""
    stem, dot, suffix = key.rpartition(".")
    for variant in VARIANTS:
        if dot and stem.endswith(f".{variant}"):
            return f"{stem.removesuffix(f'.{variant}')}.{suffix}"
    return key


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
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            raise MissingObject("no such image (it was just deleted)") from None

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> None:
        """Delete ``key`` and its variants (deleting a missing key is no error)."""
        for stored in (key, *(variant_key(key, v) for v in VARIANTS)):
            self.path(stored).unlink(missing_ok=True)

    def age_seconds(self, key: str) -> float:
        """Seconds since the newest of ``key``'s files was written (inf when none is left)."""
        stamps = [
            path.stat().st_mtime
            for path in map(self.path, (key, *(variant_key(key, v) for v in VARIANTS)))
            if path.is_file()
        ]
        return time.time() - max(stamps) if stamps else float("inf")

    def keys(self) -> set[str]:
        """The keys that have files: a variant counts as its key, so a variant left
        without its image is found, and deleted, with it."""
        return {
            base_key(p.relative_to(self.root).as_posix())
            for p in self.root.glob("*/*")
            if p.is_file()
        }
