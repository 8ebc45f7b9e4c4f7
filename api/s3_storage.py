"""Image bytes in an S3-compatible bucket (AWS S3, MinIO, ...): ``FileStorage``'s layout
under the URL's prefix (``s3://bucket/prefix`` keeps ``prefix/ab/cdef....png``).

The client, its credentials and the endpoint of a non-AWS server come from
``imagine.s3.connect``, as for ``imagine batch --out s3://``. A vanished object is a 404;
the store's own failures are a 503.
"""

from __future__ import annotations

import mimetypes
from contextlib import AbstractContextManager

from botocore.exceptions import ClientError

from api.storage import (
    MissingObject,
    StorageUnavailable,
    age,
    base_key,
    is_key,
    random_key,
    with_variants,
)
from imagine.s3 import NO_KEY, answering, connect, error_code


def _answering(location: str) -> AbstractContextManager[None]:
    """The store's own failures (down, refused, throttled) as a 503, not a 500."""
    return answering(f"image storage {location}", StorageUnavailable)


class S3Storage:
    def __init__(self, url: str, *, endpoint_url: str | None = None, page_size: int = 1000):
        bucket = connect(url, endpoint_url=endpoint_url, what="image storage")
        self.location, self.client, self._bucket = url, bucket.client, bucket
        self.bucket, self.prefix = bucket.name, bucket.prefix
        self.page_size = page_size

    def name(self, key: str) -> str:
        return self.prefix + key

    def new_key(self, suffix: str = ".png") -> str:
        return random_key(suffix)

    def put(self, key: str, data: bytes) -> None:
        content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
        with _answering(self.location):
            self.client.put_object(
                Bucket=self.bucket, Key=self.name(key), Body=data, ContentType=content_type
            )

    def get(self, key: str) -> bytes:
        with _answering(self.location):
            data = self._bucket.read(key)
        if data is None:
            raise MissingObject("no such image (it was just deleted)")
        return data

    def _modified(self, key: str) -> float | None:
        """When ``key`` was last written (seconds since the epoch), or None."""
        with _answering(self.location):
            try:
                head = self.client.head_object(Bucket=self.bucket, Key=self.name(key))
            except ClientError as err:
                if error_code(err) in NO_KEY:
                    return None
                raise
            stamp: float = head["LastModified"].timestamp()
            return stamp

    def exists(self, key: str) -> bool:
        return self._modified(key) is not None

    def delete(self, key: str) -> None:
        # One DeleteObject per name: deleting a missing one is no error on S3, and some
        # S3-compatible servers lack the batch DeleteObjects.
        with _answering(self.location):
            for stored in with_variants(key):
                self.client.delete_object(Bucket=self.bucket, Key=self.name(stored))

    def age_seconds(self, key: str, now: float | None = None) -> float:
        return age([s for s in map(self._modified, with_variants(key)) if s is not None], now)

    def keys(self) -> set[str]:
        found = set()
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix, PaginationConfig={"PageSize": self.page_size}
        )
        with _answering(self.location):
            for page in pages:
                for item in page.get("Contents", []):
                    name = item["Key"].removeprefix(self.prefix)
                    if is_key(name):
                        found.add(base_key(name))
        return found

    def presigned_url(self, key: str, expires_s: int, filename: str | None = None) -> str:
        params = {"Bucket": self.bucket, "Key": self.name(key)}
        content_type = mimetypes.guess_type(key)[0]
        if content_type:
            params["ResponseContentType"] = content_type
        if filename:
            params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
        url: str = self.client.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=expires_s
        )
        return url
