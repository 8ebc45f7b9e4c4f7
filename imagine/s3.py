"""One way to reach an S3-compatible bucket (AWS S3, MinIO, ...) from an ``s3://bucket/prefix``
URL: the service's image storage (``api/s3_storage.py``) and ``imagine batch --out s3://``.

boto3 is imported here only, and this module only when an s3:// URL is used. Credentials
come from boto3's own chain (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``,
``AWS_PROFILE``, an instance or task role); the endpoint of a non-AWS server is
``IMAGINE_S3_ENDPOINT_URL``. A PutObject is atomic on S3: a reader sees the whole object
or none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

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
NO_KEY = ("404", "NoSuchKey", "NotFound")
PRECONDITION_FAILED = ("412", "PreconditionFailed", "ConditionalRequestConflict")


def error_code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


@dataclass(frozen=True)
class Bucket:
    """A connected client and where under the bucket the objects live."""

    url: str  # as given, for messages
    name: str
    prefix: str  # "" or "some/prefix/"
    client: Any  # a boto3 S3 client (thread-safe)

    def key(self, name: str) -> str:
        return self.prefix + name

    def read(self, name: str) -> bytes | None:
        """The object ``name`` under the prefix, or None when there is none."""
        try:
            answer = self.client.get_object(Bucket=self.name, Key=self.key(name))
        except ClientError as err:
            if error_code(err) in NO_KEY:
                return None
            raise
        data: bytes = answer["Body"].read()
        return data


@contextmanager
def answering(location: str, unavailable: Callable[[str], Exception]) -> Iterator[None]:
    """The store's own failures (down, refused, throttled) as ``unavailable(message)``, an
    error of the caller's that names ``location`` and S3's code, not a traceback."""
    try:
        yield
    except ClientError as err:
        raise unavailable(f"{location}: {error_code(err)}") from err
    except BotoCoreError as err:
        raise unavailable(f"{location}: {err}") from err


def connect(url: str, *, endpoint_url: str | None = None, what: str = "storage") -> Bucket:
    """A client for ``url`` whose bucket was seen to exist; a ``SettingsError`` naming the
    URL and the reason (no such bucket, access denied, unreachable) otherwise."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise SettingsError(f"{what} {url!r}: expected s3://bucket/prefix")
    name = parts.netloc
    prefix = f"{parts.path.strip('/')}/" if parts.path.strip("/") else ""
    where = f" at {endpoint_url}" if endpoint_url else ""
    config = CLIENT_CONFIG
    if endpoint_url:  # MinIO and friends serve buckets by path, not by host name
        config = config.merge(Config(s3={"addressing_style": "path"}))
    try:
        # A session of its own: boto3's default one is not thread-safe; clients are.
        client = boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=config)
        client.head_bucket(Bucket=name)
    except ClientError as err:
        code = error_code(err)
        if code in NO_BUCKET:
            why = f"bucket {name!r} does not exist{where}"
        elif code in ("403", "AccessDenied"):
            why = f"access to bucket {name!r}{where} denied (check the AWS credentials)"
        else:
            why = f"bucket {name!r}{where}: {code} {err}"
        raise SettingsError(f"{what} {url}: {why}") from None
    except (BotoCoreError, ValueError) as err:  # unreachable, no credentials, bad endpoint
        raise SettingsError(f"{what} {url}{where}: {err}") from None
    return Bucket(url, name, prefix, client)
