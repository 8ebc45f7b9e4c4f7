"""Enrollment from photo files, with the face analyzer and limits the settings pick.

Shared by ``imagine enroll``, ``imagine generate`` and the in-process batch
executor; the steps themselves are ``identity.enrollment.enroll``.
"""

from __future__ import annotations

from pathlib import Path

from identity.analyzer import get_analyzer
from identity.enrollment import IdentityProfile, enroll
from imagine.errors import FileNotFound
from imagine.settings import Settings


def read_photos(paths: list[Path]) -> list[bytes]:
    """The bytes of each photo; a missing or unreadable path is a user error."""
    photos = []
    for path in paths:
        if not path.is_file():
            raise FileNotFound(f"{path}: no such file")
        photos.append(path.read_bytes())
    return photos


def enroll_files(paths: list[Path], settings: Settings) -> IdentityProfile:
    """Read and enroll ``paths``; a refused photo raises ``identity``'s error for it."""
    photos = read_photos(paths)
    return enroll(photos, get_analyzer(settings.face()), settings.enrollment())
