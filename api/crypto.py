"""Embeddings at rest: envelope encryption with AES-256-GCM, so that erasure can shred a key.

Each identity's embedding is encrypted under its own random data key; the data key is
stored wrapped (encrypted) by the master key in ``identity_keys``, a row apart from the
ciphertext. Erasure deletes that row, and with it the only way to open any copy of the
ciphertext that outlives the delete (SQLite free pages and WAL, PostgreSQL dead tuples,
backups): crypto-shredding (issue 16). Both layers bind the identity id as associated data,
each with its own label, so a blob opens only for its identity and only as what it is.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from imagine.secrets import load_secret_key
from imagine.settings import SettingsError

NONCE = 12  # bytes, GCM's standard nonce size
TAG = 16  # bytes, GCM's authentication tag
KEY = 32  # bytes, AES-256 (master and data keys)
WRAPPED_KEY = NONCE + KEY + TAG  # 60 bytes: identity_keys.wrapped_key


def load_key(configured: str | None, key_file: Path | None, home: Path) -> bytes:
    """The 32-byte master key: ``IMAGINE_EMBEDDING_KEY`` (base64), else the base64 file
    ``IMAGINE_KEY_FILE``, else ``home/embedding.key``, created (random, mode 0600) on first
    start (``imagine.secrets``)."""
    return load_secret_key(
        configured,
        key_file,
        home / "embedding.key",
        names=("IMAGINE_EMBEDDING_KEY", "IMAGINE_KEY_FILE"),
        size=KEY,
        error=SettingsError,
        what=" (AES-256)",
    )


class EmbeddingCipher:
    def __init__(self, master_key: bytes):
        self._master = AESGCM(master_key)

    def seal(self, embedding: np.ndarray, identity_id: str) -> tuple[bytes, bytes]:
        """(ciphertext, wrapped data key) for a new identity: a fresh data key each time."""
        data_key = AESGCM.generate_key(bit_length=KEY * 8)
        return self.encrypt(embedding, identity_id, data_key), self.wrap(data_key, identity_id)

    def seal_identity(
        self, embedding: np.ndarray, keypoints: np.ndarray | None, identity_id: str
    ) -> tuple[bytes, bytes | None, bytes]:
        """(embedding ciphertext, keypoints ciphertext or None, wrapped data key) for a new
        identity: both under one fresh data key, so erasure shreds both at once."""
        data_key = AESGCM.generate_key(bit_length=KEY * 8)
        sealed_keypoints = None
        if keypoints is not None:
            plain = np.asarray(keypoints, dtype="<f4").tobytes()  # [5, 2] float32
            sealed_keypoints = _seal(AESGCM(data_key), plain, _keypoints_label(identity_id))
        embedding_blob = self.encrypt(embedding, identity_id, data_key)
        return embedding_blob, sealed_keypoints, self.wrap(data_key, identity_id)

    def decrypt_keypoints(self, blob: bytes, identity_id: str, wrapped_key: bytes) -> np.ndarray:
        """The [5, 2] float32 face keypoints that ``seal_identity`` sealed."""
        aead = AESGCM(self.unwrap(wrapped_key, identity_id))
        plain = _open(aead, blob, _keypoints_label(identity_id), f"keypoints of {identity_id}")
        return np.frombuffer(plain, dtype="<f4").astype(np.float32).reshape(-1, 2)

    def wrap(self, data_key: bytes, identity_id: str) -> bytes:
        return _seal(self._master, data_key, _key_label(identity_id))

    def unwrap(self, wrapped_key: bytes, identity_id: str) -> bytes:
        return _open(
            self._master, wrapped_key, _key_label(identity_id), f"data key of {identity_id}"
        )

    def encrypt(self, embedding: np.ndarray, identity_id: str, data_key: bytes) -> bytes:
        plain = np.asarray(embedding, dtype="<f4").tobytes()  # [D] float32 little-endian
        return _seal(AESGCM(data_key), plain, _embedding_label(identity_id))

    def decrypt(self, blob: bytes, identity_id: str, wrapped_key: bytes | None) -> np.ndarray:
        """The [D] float32 embedding. ``wrapped_key`` None means a legacy blob, encrypted
        directly under the master key before data keys existed (migration 0004) and not yet
        resealed (``api.erasure.seal_legacy_embeddings``)."""
        if wrapped_key is None:
            aead = self._master
        else:
            aead = AESGCM(self.unwrap(wrapped_key, identity_id))
        plain = _open(aead, blob, _embedding_label(identity_id), f"embedding of {identity_id}")
        return np.frombuffer(plain, dtype="<f4").astype(np.float32)


def _embedding_label(identity_id: str) -> bytes:
    return identity_id.encode()  # as legacy blobs were bound, so both formats share it


def _keypoints_label(identity_id: str) -> bytes:
    return b"keypoints:" + identity_id.encode()  # never opens as an embedding, or vice versa


def _key_label(identity_id: str) -> bytes:
    return b"data-key:" + identity_id.encode()  # a wrapped key never opens as an embedding


def _seal(aead: AESGCM, plain: bytes, label: bytes) -> bytes:
    nonce = os.urandom(NONCE)
    return nonce + aead.encrypt(nonce, plain, label)


def _open(aead: AESGCM, blob: bytes, label: bytes, what: str) -> bytes:
    try:
        return aead.decrypt(blob[:NONCE], blob[NONCE:], label)
    except InvalidTag:
        raise ValueError(f"{what} does not decrypt with this key") from None
