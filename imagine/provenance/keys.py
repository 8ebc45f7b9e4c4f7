"""The secrets provenance needs, made on first start: the watermark key and a C2PA chain.

Both are read as the embedding key is (``imagine/secrets.py``): a configured
value wins; a configured file that is missing is an error (a secret store that
failed to mount must not silently get a new key); only the default files under
``IMAGINE_HOME`` are created, so a laptop install marks and signs from its
first image.

The local C2PA chain (root CA -> intermediate -> signer, EC P-256) is what the
tests use too: manifests it signs validate, but no verifier trusts its root, so
they read "valid, untrusted". Production configures a certificate from a CA
that verifiers trust (``IMAGINE_C2PA_CERT`` / ``IMAGINE_C2PA_KEY``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from imagine.provenance.errors import InvalidWatermarkKey
from imagine.provenance.watermark import KEY_BYTES
from imagine.secrets import create_secret, load_secret_key

WATERMARK_KEY_FILE = "watermark.key"
LOCAL_CHAIN_DIR = "c2pa"
SIGNER_DAYS = 365  # the local signer's validity; renewed at start when it runs out
RENEW_BEFORE = dt.timedelta(days=14)


@dataclass(frozen=True)
class LocalChain:
    chain: Path  # signing certificate, then the intermediate CA (PEM)
    key: Path  # the signing certificate's private key (PEM, PKCS#8)
    root: Path  # the root CA (PEM): give it to verifiers as a trust anchor


def load_watermark_key(configured: str | None, key_file: Path | None, home: Path) -> bytes:
    """The 32-byte watermark key: ``IMAGINE_WATERMARK_KEY`` (base64), else the base64 file
    ``IMAGINE_WATERMARK_KEY_FILE``, else ``home/watermark.key`` (created, mode 0600)."""
    return load_secret_key(
        configured,
        key_file,
        home / WATERMARK_KEY_FILE,
        names=("IMAGINE_WATERMARK_KEY", "IMAGINE_WATERMARK_KEY_FILE"),
        size=KEY_BYTES,
        error=InvalidWatermarkKey,
    )


def local_chain(home: Path, organisation: str = "Imagine Me (local, untrusted)") -> LocalChain:
    """``home/c2pa/{chain.pem,signer.key,root.pem}``, made when missing; the signer is
    issued again (same root) when it has expired or will within two weeks."""
    folder = home / LOCAL_CHAIN_DIR
    paths = LocalChain(folder / "chain.pem", folder / "signer.key", folder / "root.pem")
    complete = paths.chain.is_file() and paths.key.is_file() and paths.root.is_file()
    if not complete or _expires(paths.chain) < dt.datetime.now(dt.UTC) + RENEW_BEFORE:
        write_chain(folder, organisation)
    return paths


def write_chain(folder: Path, organisation: str, days: int = SIGNER_DAYS) -> LocalChain:
    """A fresh root -> intermediate -> signer chain that c2pa-rs accepts.

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
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            ]
        )

    def issue(cn, key, issuer_cn, issuer_key, *, ca: bool, days: int) -> x509.Certificate:
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
            .not_valid_after(now + dt.timedelta(days=days))
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
    root = issue("local root", root_key, "local root", root_key, ca=True, days=days + 1)
    inter = issue("local intermediate", inter_key, "local root", root_key, ca=True, days=days)
    signer = issue("local signer", signer_key, "local intermediate", inter_key, ca=False, days=days)
    pem = serialization.Encoding.PEM
    paths = LocalChain(folder / "chain.pem", folder / "signer.key", folder / "root.pem")
    folder.mkdir(parents=True, exist_ok=True)
    private = signer_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    paths.key.unlink(missing_ok=True)
    create_secret(paths.key, private)
    paths.chain.write_bytes(signer.public_bytes(pem) + inter.public_bytes(pem))
    paths.root.write_bytes(root.public_bytes(pem))
    return paths


def _expires(chain: Path) -> dt.datetime:
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificate(chain.read_bytes()).not_valid_after_utc
    except ValueError:
        return dt.datetime.min.replace(tzinfo=dt.UTC)  # unreadable: make a new one
