"""Envelope encryption of embeddings (api/crypto.py): a destroyed data key shreds the ciphertext."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from api.crypto import KEY, WRAPPED_KEY, EmbeddingCipher, load_key
from imagine.settings import SettingsError

MASTER = bytes(range(KEY))
EMBEDDING = np.linspace(-1, 1, 128, dtype=np.float32)  # [128] float32, as dlib gives


def test_a_sealed_embedding_opens_with_its_wrapped_key_only():
    cipher = EmbeddingCipher(MASTER)
    blob, wrapped = cipher.seal(EMBEDDING, "idn_a")
    assert len(wrapped) == WRAPPED_KEY and len(blob) == 12 + 128 * 4 + 16
    assert (cipher.decrypt(blob, "idn_a", wrapped) == EMBEDDING).all()
    data_key = cipher.unwrap(wrapped, "idn_a")
    assert cipher.wrap(data_key, "idn_a") != wrapped  # a fresh nonce each time
    assert (cipher.decrypt(blob, "idn_a", cipher.wrap(data_key, "idn_a")) == EMBEDDING).all()

    _, other = cipher.seal(EMBEDDING, "idn_a")  # another data key for the same identity
    with pytest.raises(ValueError, match="embedding of idn_a does not decrypt"):
        cipher.decrypt(blob, "idn_a", other)
    with pytest.raises(ValueError):
        cipher.decrypt(blob, "idn_a", None)  # the master key alone does not open it
    with pytest.raises(ValueError, match="data key of idn_b"):
        cipher.decrypt(blob, "idn_b", wrapped)  # bound to its identity
    with pytest.raises(ValueError):
        EmbeddingCipher(bytes(KEY)).decrypt(blob, "idn_a", wrapped)  # another master key


def test_a_wrapped_key_never_opens_as_an_embedding():
    cipher = EmbeddingCipher(MASTER)
    _, wrapped = cipher.seal(EMBEDDING, "idn_a")
    with pytest.raises(ValueError):
        cipher.decrypt(wrapped, "idn_a", None)


def test_legacy_blobs_under_the_master_key_still_open():
    """What releases before data keys stored: nonce + AES-GCM(master, embedding, identity id)."""
    cipher = EmbeddingCipher(MASTER)
    legacy = cipher.encrypt(EMBEDDING, "idn_a", MASTER)
    assert (cipher.decrypt(legacy, "idn_a", None) == EMBEDDING).all()


def test_the_master_key_comes_from_the_variable_the_key_file_or_home(tmp_path):
    key = base64.b64encode(MASTER).decode()
    assert load_key(key, tmp_path / "ignored", tmp_path) == MASTER
    key_file = tmp_path / "secrets" / "master.key"
    key_file.parent.mkdir()
    key_file.write_text(key + "\n")
    home = tmp_path / "home"
    assert load_key(None, key_file, home) == MASTER
    assert not home.exists()  # nothing written beside the data
    generated = load_key(None, None, home)
    assert len(generated) == KEY and load_key(None, None, home) == generated
    assert (home / "embedding.key").stat().st_mode & 0o777 == 0o600


def test_a_configured_key_file_that_is_missing_or_bad_is_refused(tmp_path):
    missing = tmp_path / "unmounted" / "master.key"
    with pytest.raises(SettingsError, match=r"IMAGINE_KEY_FILE=.*no such file"):
        load_key(None, missing, tmp_path)
    assert not missing.exists() and not (tmp_path / "embedding.key").exists()
    short = tmp_path / "short.key"
    short.write_text(base64.b64encode(b"x" * 16).decode())
    with pytest.raises(SettingsError, match="32 bytes"):
        load_key(None, short, tmp_path)
