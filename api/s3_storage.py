"""Image bytes in an S3-compatible bucket (AWS S3, MinIO, ...): ``FileStorage``'s layout
under the URL's prefix (``s3://bucket/prefix`` keeps ``prefix/ab/cdef....png``).

boto3 is imported here only. Credentials come from boto3's own chain
(``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, an instance or
task role); the endpoint of a non-AWS server is passed in. A PutObject is atomic on
S3: a reader sees the whole object or none.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from api.storage import (
    MissingObject,
    StorageUnavailable,
    age,
    base_key,
    is_key,
    random_key,
    with_variants,
)
from imagine.settings import SettingsError

# Fail in seconds, not minutes, when the endpoint is down: botocore's defaults are a
# 60 s connect timeout with 5 legacy-mode attempts.
CLIENT_CONFIG = Config(
    connect_timeout=5,
    read_timeout=30,
    retries={"mode": "standard", "max_attempts": 3},
    signature_version="s3v4",  # presigned URLs too
)
NO_BUCKET = ("404", "NoSuchBucket", "NotFound")  # HEAD answers carry no error code: "404"
NO_KEY = ("404", "NoSuchKey", "NotFound")  # a vanished bucket is the service's trouble: 503


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


@contextmanager
def _answering(location: str) -> Iterator[None]:
    """The store's own failures (down, refused, throttled) as a 503, not a 500."""
    try:
        yield
    except ClientError as err:
        raise StorageUnavailable(f"image storage {location}: {_code(err)}") from err
    except BotoCoreError as err:
        raise StorageUnavailable(f"image storage {location}: {err}") from err


class S3Storage:
    def __init__(self, url: str, *, endpoint_url: str | None = None, page_size: int = 1000):
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise SettingsError(f"image storage {url!r}: expected s3://bucket/prefix")
        self.location = url
        self.bucket = parts.netloc
        self.prefix = f"{parts.path.strip('/')}/" if parts.path.strip("/") else ""
        self.page_size = page_size
        where = f" at {endpoint_url}" if endpoint_url else ""
        config = CLIENT_CONFIG
        if endpoint_url:  # MinIO and friends serve buckets by path, not by host name
            config = config.merge(Config(s3={"addressing_style": "path"}))
        try:
            # A session of its own: boto3's default one is not thread-safe; clients are.
            self.client = boto3.session.Session().client(
                "s3", endpoint_url=endpoint_url, config=config
            )
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as err:
            code = _code(err)
            if code in NO_BUCKET:
                why = f"bucket {self.bucket!r} does not exist{where}"
            elif code in ("403", "AccessDenied"):
                why = f"access to bucket {self.bucket!r}{where} denied (check the AWS credentials)"
            else:
                why = f"bucket {self.bucket!r}{where}: {code} {err}"
            raise SettingsError(f"image storage {url}: {why}") from None
        except (BotoCoreError, ValueError) as err:  # unreachable, no credentials, bad endpoint
            raise SettingsError(f"image storage {url}{where}: {err}") from None

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
            try:
                answer = self.client.get_object(Bucket=self.bucket, Key=self.name(key))
            except ClientError as err:
                if _code(err) in NO_KEY:
                    raise MissingObject("no such image (it was just deleted)") from None
                raise
            data: bytes = answer["Body"].read()
            return data

    def _modified(self, key: str) -> float | None:
        """When ``key`` was last written (seconds since the epoch), or None."""
        with _answering(self.location):
            try:
                head = self.client.head_object(Bucket=self.bucket, Key=self.name(key))
            except ClientError as err:
                if _code(err) in NO_KEY:
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
