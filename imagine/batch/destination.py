"""Where a batch run writes: a folder (``--out DIR``) or an S3 prefix (``--out s3://bucket/prefix``).

Both hold the same layout, ``<item>/<k>.png`` + ``<item>/<k>.json``,
``batch-state.json``, ``report.json`` and ``report.html``, and both write every file
whole or not at all: a folder through a temporary file renamed into place, a bucket
because a PutObject is atomic. The PNG is written before its sidecar, so a sidecar
vouches for its image in both.

One run at a time per destination: a folder holds an ``flock`` the kernel drops when
the process dies; a bucket holds a lease object (``.batch.lock``) created only if
absent (S3's conditional ``If-None-Match: *`` write), renewed while the run lives and
taken over once it expires, or at once when its holder was a process on this host
that is gone (a killed driver can be resumed straight away).
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from imagine.batch.state import BatchRunning, locked
from imagine.errors import ImagineError
from imagine.outputs import atomic_file, atomic_write, is_temporary

if TYPE_CHECKING:
    from imagine.s3 import Bucket

LOCK_OBJECT = ".batch.lock"
LEASE_S = 60.0  # a bucket lock not renewed for this long is free to take over


class DestinationUnavailable(ImagineError):
    code = "storage_unavailable"


class Destination(Protocol):
    location: str  # the --out as given, for reports and messages

    def lock(self) -> AbstractContextManager[None]:
        """Held for the whole run; ``BatchRunning`` when another run holds it."""
        ...

    def read(self, name: str) -> bytes | None:
        """``name``'s bytes (``"batch-state.json"``, ``"a/0.png"``), or None if absent."""
        ...

    def write(self, name: str, data: bytes) -> None:
        """Write ``name`` whole or not at all."""
        ...

    def writer(self, name: str) -> AbstractContextManager[BinaryIO]:
        """A file to stream ``name`` into; it appears whole when the block ends."""
        ...

    def listing(self) -> dict[str, set[str]]:
        """Every file in an item folder: folder name -> file names (leftovers included)."""
        ...

    def delete(self, names: Iterable[str]) -> None: ...

    def show(self, name: str) -> str:
        """Where ``name`` is, for people."""
        ...


class FolderDestination:
    def __init__(self, root: Path):
        self.root, self.location = root, str(root)

    def lock(self) -> AbstractContextManager[None]:
        return locked(self.root)

    def read(self, name: str) -> bytes | None:
        try:
            return (self.root / name).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, name: str, data: bytes) -> None:
        atomic_write(self.root / name, data)

    def writer(self, name: str) -> AbstractContextManager[BinaryIO]:
        return atomic_file(self.root / name)

    def listing(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        if self.root.is_dir():
            for folder in self.root.iterdir():
                if folder.is_dir():
                    found[folder.name] = {p.name for p in folder.iterdir() if p.is_file()}
        return found

    def delete(self, names: Iterable[str]) -> None:
        for name in names:
            (self.root / name).unlink(missing_ok=True)

    def show(self, name: str) -> str:
        return str(self.root / name)


class S3Destination:
    """The layout under ``s3://bucket/prefix/``; S3 failures stop the run with
    ``storage_unavailable`` (the state written so far stays, and ``--resume`` goes on)."""

    def __init__(self, bucket: Bucket):
        self.bucket, self.location = bucket, bucket.url.rstrip("/")
        self.lease: _Lease | None = None

    @contextmanager
    def lock(self) -> Iterator[None]:
        with self._answering():
            lease = _Lease(self.bucket, self.location)
        self.lease = lease
        try:
            yield
        finally:
            self.lease = None
            with self._answering():
                lease.release()

    def read(self, name: str) -> bytes | None:
        with self._answering():
            return self.bucket.read(name)

    def write(self, name: str, data: bytes) -> None:
        if self.lease is not None and self.lease.lost:
            raise BatchRunning(
                f"another imagine batch took over {self.location} (this run's lock lapsed)"
            )
        with self._answering():
            self._client.put_object(
                Bucket=self.bucket.name, Key=self._key(name), Body=data, ContentType=_type(name)
            )

    @contextmanager
    def writer(self, name: str) -> Iterator[BinaryIO]:
        with tempfile.TemporaryFile() as spool:
            yield spool
            spool.seek(0)
            self.write(name, spool.read())

    def listing(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket.name, Prefix=self.bucket.prefix
        )
        with self._answering():
            for page in pages:
                for entry in page.get("Contents", []):
                    folder, _, name = entry["Key"].removeprefix(self.bucket.prefix).rpartition("/")
                    if folder and "/" not in folder:
                        found.setdefault(folder, set()).add(name)
        return found

    def delete(self, names: Iterable[str]) -> None:
        # One DeleteObject per name: some S3-compatible servers lack the batch DeleteObjects.
        with self._answering():
            for name in names:
                self._client.delete_object(Bucket=self.bucket.name, Key=self._key(name))

    def show(self, name: str) -> str:
        return f"{self.location}/{name}"

    @property
    def _client(self) -> Any:
        return self.bucket.client

    def _key(self, name: str) -> str:
        return self.bucket.key(name)

    def _answering(self) -> AbstractContextManager[None]:
        from imagine.s3 import answering

        return answering(f"batch output {self.location}", DestinationUnavailable)


def _type(name: str) -> str:
    return {".png": "image/png", ".json": "application/json", ".html": "text/html"}.get(
        Path(name).suffix, "application/octet-stream"
    )


class _Lease:
    """The bucket's ``.batch.lock``: who holds it and until when, renewed every quarter lease."""

    def __init__(self, bucket: Bucket, location: str):
        self.bucket, self.location, self.key = bucket, location, bucket.key(LOCK_OBJECT)
        self.lost = False
        self.etag = self._take()
        self._stop = threading.Event()
        self._renewer = threading.Thread(target=self._renew, name="batch-lease", daemon=True)
        self._renewer.start()

    def _body(self) -> bytes:
        holder = {"host": socket.gethostname(), "pid": os.getpid()}
        return json.dumps({**holder, "expires_at": time.time() + LEASE_S}).encode()

    def _put(self, **condition: str) -> str | None:
        """Write the lease under ``condition``; its ETag, or None when the condition failed."""
        from botocore.exceptions import ClientError

        from imagine.s3 import PRECONDITION_FAILED, error_code

        try:
            answer = self.bucket.client.put_object(
                Bucket=self.bucket.name, Key=self.key, Body=self._body(), **condition
            )
        except ClientError as err:
            if error_code(err) in PRECONDITION_FAILED:
                return None
            raise
        etag: str = answer["ETag"]
        return etag

    def _take(self) -> str:
        from botocore.exceptions import ClientError

        from imagine.s3 import NO_KEY, error_code

        for _ in range(3):  # the holder may release it between our two requests
            etag = self._put(IfNoneMatch="*")
            if etag:
                return etag
            try:
                held = self.bucket.client.get_object(Bucket=self.bucket.name, Key=self.key)
            except ClientError as err:
                if error_code(err) in NO_KEY:
                    continue
                raise
            holder = _holder(held["Body"].read())
            if not _abandoned(holder):
                until = time.strftime("%H:%M:%S", time.localtime(holder.get("expires_at", 0)))
                raise BatchRunning(
                    f"another imagine batch is running on {self.location} (host "
                    f"{holder.get('host')}, pid {holder.get('pid')}; its lock lapses at {until} "
                    "unless renewed)"
                )
            etag = self._put(IfMatch=held["ETag"])  # take over the abandoned lease
            if etag:
                return etag
        raise BatchRunning(f"another imagine batch is taking {self.location}")

    def _renew(self) -> None:
        while not self._stop.wait(LEASE_S / 4):
            try:
                etag = self._put(IfMatch=self.etag)
            except Exception:  # a blip: the next round tries again
                continue
            if etag is None:
                self.lost = True
                return
            self.etag = etag

    def release(self) -> None:
        self._stop.set()
        self._renewer.join()
        if self.lost:
            return
        head = self.bucket.client.head_object(Bucket=self.bucket.name, Key=self.key)
        if head["ETag"] == self.etag:
            self.bucket.client.delete_object(Bucket=self.bucket.name, Key=self.key)


def _holder(body: bytes) -> dict[str, Any]:
    try:
        holder = json.loads(body)
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def _abandoned(holder: dict[str, Any]) -> bool:
    """Expired, unreadable, or held by a process of this host that no longer exists."""
    expires = holder.get("expires_at")
    if not isinstance(expires, int | float) or expires < time.time():
        return True
    pid = holder.get("pid")
    if holder.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def stale_files(names: Iterable[str], keep_images: bool) -> list[str]:
    """What a killed run left in an item folder (temporary files) and, unless the images
    are kept, the numbered images and sidecars of an earlier request."""
    stale = []
    for name in names:
        stem, _, suffix = name.rpartition(".")
        numbered = stem.isdigit() and suffix in ("png", "json")
        if is_temporary(Path(name)) or (numbered and not keep_images):
            stale.append(name)
    return stale


def complete_images(names: set[str]) -> set[int]:
    """Image numbers whose PNG and sidecar both exist (the sidecar is written last)."""
    return {
        int(stem)
        for stem, _, suffix in (name.rpartition(".") for name in names)
        if suffix == "png" and stem.isdigit() and f"{stem}.json" in names
    }


def open_destination(out: str | Path, s3_endpoint_url: str | None = None) -> Destination:
    """``s3://bucket/prefix`` (the bucket must exist) or a folder."""
    if str(out).startswith("s3://"):
        from imagine.s3 import connect

        return S3Destination(connect(str(out), endpoint_url=s3_endpoint_url, what="--out"))
    return FolderDestination(Path(out))
