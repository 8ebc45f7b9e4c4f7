"""Embeddings at rest: AES-256-GCM with a key from settings, bound to the identity id."""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from imagine.settings import SettingsError

NONCE = 12  # bytes, GCM's standard nonce size


def load_key(configured: str | None, key_file: Path) -> bytes:
    """The 32-byte key from ``IMAGINE_EMBEDDING_KEY`` (base64), else from ``key_file``.

    On first start without a configured key, a random key is written to
    ``key_file`` (mode 0600) so a laptop install works; production should set
    the variable from a secret store.
    """
    if configured:
        try:
            key = base64.b64decode(configured, validate=True)
        except (binascii.Error, ValueError):
            raise SettingsError("IMAGINE_EMBEDDING_KEY must be base64") from None
        if len(key) != 32:
            raise SettingsError("IMAGINE_EMBEDDING_KEY must decode to 32 bytes (AES-256)")
        return key
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(base64.b64encode(AESGCM.generate_key(bit_length=256)))
    return base64.b64decode(key_file.read_bytes().strip())


class EmbeddingCipher:
    def __init__(self, key: bytes):
        self._aead = AESGCM(key)

    def encrypt(self, embedding: np.ndarray, identity_id: str) -> bytes:
        nonce = os.urandom(NONCE)
        plain = np.asarray(embedding, dtype="<f4").tobytes()  # [D] float32 little-endian
        return nonce + self._aead.encrypt(nonce, plain, identity_id.encode())

    def decrypt(self, blob: bytes, identity_id: str) -> np.ndarray:
        try:
            plain = self._aead.decrypt(blob[:NONCE], blob[NONCE:], identity_id.encode())
        except InvalidTag:
            raise ValueError(f"embedding of {identity_id} does not decrypt with this key") from None
        return np.frombuffer(plain, dtype="<f4").astype(np.float32)
