from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

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
    """A throwaway EC P-256 root -> intermediate -> signer chain that c2pa-rs accepts.

    The signer needs SubjectKeyIdentifier, AuthorityKeyIdentifier, the
    digitalSignature key usage and the emailProtection EKU (PITFALLS.md).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Imagine Me tests"),
            ]
        )

    def issue(cn, key, issuer_cn, issuer_key, *, ca: bool) -> x509.Certificate:
        usage = dict.fromkeys(
            (
                "content_commitment",
                "key_encipherment",
                "data_encipherment",
                "key_agreement",
                "encipher_only",
                "decipher_only",
            ),
            False,
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(name(issuer_cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=1 if ca else None), True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
            )
            .add_extension(
                x509.KeyUsage(digital_signature=not ca, key_cert_sign=ca, crl_sign=ca, **usage),
                True,
            )
        )
        if not ca:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False
            )
        return builder.sign(issuer_key, hashes.SHA256())

    root_key, inter_key, signer_key = (ec.generate_private_key(ec.SECP256R1()) for _ in "abc")
    root = issue("test root", root_key, "test root", root_key, ca=True)
    inter = issue("test intermediate", inter_key, "test root", root_key, ca=True)
    signer = issue("test signer", signer_key, "test intermediate", inter_key, ca=False)

    folder = tmp_path_factory.mktemp("c2pa")
    pem = serialization.Encoding.PEM
    chain = CertChain(folder / "chain.pem", folder / "signer.key", folder / "root.pem")
    chain.chain.write_bytes(signer.public_bytes(pem) + inter.public_bytes(pem))
    chain.root.write_bytes(root.public_bytes(pem))
    chain.key.write_bytes(
        signer_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return chain
