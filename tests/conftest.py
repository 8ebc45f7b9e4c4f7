from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from identity.analyzer import FaceAnalyzer, FaceSettings, get_analyzer


@pytest.fixture(scope="session")
def dlib_analyzer() -> FaceAnalyzer:
    return get_analyzer(FaceSettings(backend="dlib"))


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    """One model cache per test session: the smoke weights are built into it once."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="session")
def smoke(model_cache):
    """The smoke pipeline for 128-d (dlib) embeddings, built once per test session."""
    from imagine.models.config import ModelConfig
    from imagine.models.loading import load_pipeline

    return load_pipeline(ModelConfig(profile="smoke", cache=model_cache, embedding_dim=128))


@dataclass(frozen=True)
class CertChain:
    chain: Path  # signing certificate, then the intermediate CA
    key: Path  # the signing certificate's private key
    root: Path  # the root CA, to be trusted explicitly


@pytest.fixture(scope="session")
def c2pa_chain(tmp_path_factory) -> CertChain:
    """A throwaway EC P-256 root -> intermediate -> signer chain that c2pa-rs accepts,
    made as a fresh install makes its local chain (``imagine.provenance.keys``)."""
    from imagine.provenance.keys import write_chain

    made = write_chain(tmp_path_factory.mktemp("c2pa"), "Imagine Me tests", days=2)
    return CertChain(made.chain, made.key, made.root)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-protocol server (moto's, in this process, on loopback) for the session."""
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@dataclass
class Bucket:
    name: str
    endpoint_url: str
    client: Any  # a boto3 S3 client of the test's own

    @property
    def url(self) -> str:
        return f"s3://{self.name}/images"

    def objects(self) -> list[str]:
        """Every object in the bucket, whatever its prefix."""
        listed = self.client.list_objects_v2(Bucket=self.name)
        return sorted(item["Key"] for item in listed.get("Contents", []))


@pytest.fixture
def s3_bucket(s3_endpoint, monkeypatch) -> Bucket:
    """A new, empty bucket. The server takes any credentials; these reach boto3's usual
    chain (the service's client reads them as in production) for this test only."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "imagine-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "imagine-test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)  # no profile of the machine's user
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    client = boto3.session.Session().client("s3", endpoint_url=s3_endpoint)
    name = f"imagine-test-{secrets.token_hex(4)}"
    client.create_bucket(Bucket=name)
    return Bucket(name, s3_endpoint, client)
