"""Keys read from settings: a configured value, else a configured file, else a default file
made on first start. Shared by the embedding master key (``api/crypto.py``) and the watermark
key (``imagine/provenance/keys.py``).

A configured file that is missing is an error: a secret store that failed to mount must not
silently get a new key. Only the default file under ``IMAGINE_HOME`` is created, so a laptop
install works from its first start.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path


def load_secret_key(
    configured: str | None,
    key_file: Path | None,
    default: Path,
    *,
    names: tuple[str, str],
    size: int,
    error: type[Exception],
    what: str = "",
) -> bytes:
    """The ``size``-byte key: ``configured`` (base64, the setting ``names[0]``), else the
    base64 file ``key_file`` (the setting ``names[1]``), else ``default`` (created, mode
    0600). Bad values raise ``error``; ``what`` follows the byte count in its message."""
    setting, file_setting = names
    if configured:
        return decode_key(configured, setting, size, error, what)
    if key_file is not None:
        if not key_file.is_file():
            raise error(f"{file_setting}={str(key_file)!r}: no such file")
        source = f"{file_setting} ({key_file})"
        return decode_key(key_file.read_text().strip(), source, size, error, what)
    create_secret(default, base64.b64encode(os.urandom(size)))
    return decode_key(default.read_text().strip(), str(default), size, error, what)


def decode_key(text: str, source: str, size: int, error: type[Exception], what: str = "") -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise error(f"{source} must be base64") from None
    if len(key) != size:
        raise error(f"{source} must decode to {size} bytes{what}")
    return key


def create_secret(path: Path, content: bytes) -> None:
    """Write ``content`` to a new file readable by its owner only; keep an existing one (also
    one another process made first)."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return
    with os.fdopen(fd, "wb") as f:
        f.write(content)
