"""Image bytes under random keys (never a client-supplied one), behind one protocol.

Keys are ``ab/cdef...png``: 128 random bits, fanned out over 256 folders. A key may
have variants beside it, copies derived from it once and kept (the labelled download,
``ab/cdef....labelled.png``): they go wherever their key goes (delete, orphan sweeps).

Two stores implement ``Storage``: ``FileStorage`` (a folder; the default,
``IMAGINE_HOME/images``) and ``S3Storage`` (``api/s3_storage.py``: an S3-compatible
bucket through boto3, imported only when a ``s3://`` URL asks for it). ``open_storage``
picks one by the URL's scheme (``STORAGES``).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from api.errors import ApiError, NotFound
from imagine.outputs import atomic_write
from imagine.settings import SettingsError


class MissingObject(NotFound):
    """The bytes of a key are gone: deleted while a request that had read its row was on
    its way to them. The object, not the service, is missing: 404, never 500."""


class StorageUnavailable(ApiError):
    """The store did not answer, or refused us (network, credentials): the service's
    trouble, not the client's."""

    code = "storage_unavailable"
    status = 503


VARIANTS = ("labelled",)
# What new_key makes (with a variant infix or not). Listing and the orphan sweep see only
# these, so other objects sharing the folder or bucket prefix are never deleted.
KEY_SHAPE = re.compile(r"[0-9a-f]{2}/[0-9a-f]{30}\.[A-Za-z0-9.]+")


def random_key(suffix: str = ".png") -> str:
    token = secrets.token_hex(16)
    return f"{token[:2]}/{token[2:]}{suffix}"


def variant_key(key: str, variant: str) -> str:
    """Where the ``variant`` copy of ``key`` is kept (``ab/cd.png`` -> ``ab/cd.labelled.png``)."""
    assert variant in VARIANTS
    stem, dot, suffix = key.rpartition(".")
    return f"{stem}.{variant}.{suffix}" if dot else f"{key}.{variant}"


def with_variants(key: str) -> tuple[str, ...]:
    return (key, *(variant_key(key, v) for v in VARIANTS))


def base_key(key: str) -> str:
    """The key a stored file belongs to: itself, or the key a variant was derived from."""
    stem, dot, suffix = key.rpartition(".")
    for variant in VARIANTS:
        if dot and stem.endswith(f".{variant}"):
            return f"{stem.removesuffix(f'.{variant}')}.{suffix}"
    return key


def age(stamps: list[float], now: float | None = None) -> float:
    """Seconds since the newest of ``stamps`` (write times of a key and its variants, in
    seconds since the epoch); inf when there is none."""
    return (time.time() if now is None else now) - max(stamps) if stamps else float("inf")


def is_key(name: str) -> bool:
    return KEY_SHAPE.fullmatch(name) is not None


class Storage(Protocol):
    """Where image bytes live. ``put`` is atomic: a reader sees all the bytes or none."""

    location: str  # the URL or folder, for messages

    def new_key(self, suffix: str = ".png") -> str: ...

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes:
        """The bytes; ``MissingObject`` (404) when there are none."""
        ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Delete ``key`` and its variants (deleting a missing key is no error)."""
        ...

    def age_seconds(self, key: str, now: float | None = None) -> float:
        """Seconds from when the newest of ``key`` and its variants was written to ``now``
        (default: the current time); inf when none is left."""
        ...

    def keys(self) -> set[str]:
        """The keys that have bytes: a variant counts as its key, so a variant left
        without its image is found, and deleted, with it."""
        ...

    def presigned_url(self, key: str, expires_s: int, filename: str | None = None) -> str | None:
        """A URL anyone holding it can GET ``key``'s bytes from for ``expires_s`` seconds
        (as an attachment named ``filename`` when given); None when the store has none."""
        ...


class FileStorage:
    def __init__(self, root: Path):
        self.root = root
        self.location = str(root)
        root.mkdir(parents=True, exist_ok=True)

    def new_key(self, suffix: str = ".png") -> str:
        return random_key(suffix)

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
        for stored in with_variants(key):
            self.path(stored).unlink(missing_ok=True)

    def age_seconds(self, key: str, now: float | None = None) -> float:
        stamps = [p.stat().st_mtime for p in map(self.path, with_variants(key)) if p.is_file()]
        return age(stamps, now)

    def keys(self) -> set[str]:
        names = (p.relative_to(self.root).as_posix() for p in self.root.glob("*/*"))
        return {base_key(name) for name in names if is_key(name)}

    def presigned_url(self, key: str, expires_s: int, filename: str | None = None) -> None:
        return None


def storage_scheme(url: str) -> str:
    """``file`` for a path or ``file://`` URL, else the URL's scheme (``s3``)."""
    return urlsplit(url).scheme.lower() if "://" in url else "file"


def file_path(url: str) -> Path:
    """The folder of a ``file:///abs/path`` URL or a plain path."""
    if storage_scheme(url) != "file":
        raise SettingsError(f"image storage {url!r} is not a folder")
    if "://" not in url:
        return Path(url)
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise SettingsError(f"image storage {url!r}: a file URL names no host (file:///path)")
    return Path(unquote(parts.path))


def _file(url: str, s3_endpoint_url: str | None) -> Storage:
    return FileStorage(file_path(url))


def _s3(url: str, s3_endpoint_url: str | None) -> Storage:
    from api.s3_storage import S3Storage

    return S3Storage(url, endpoint_url=s3_endpoint_url)


STORAGES: dict[str, Callable[[str, str | None], Storage]] = {"file": _file, "s3": _s3}


def open_storage(url: str, *, s3_endpoint_url: str | None = None) -> Storage:
    """The store at ``url`` (a path, ``file:///path`` or ``s3://bucket/prefix``), checked:
    a bucket that is missing or cannot be reached is a ``SettingsError`` naming the URL."""
    scheme = storage_scheme(url)
    if scheme not in STORAGES:
        raise SettingsError(
            f"image storage {url!r}: expected a path, file:///path or s3://bucket/prefix"
        )
    return STORAGES[scheme](url, s3_endpoint_url)
