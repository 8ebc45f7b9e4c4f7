"""Errors raised by the identity package, each with a stable ``code``.

The API maps codes to HTTP statuses in one place (``api/errors.py``); the CLI
prints ``error: <code>: <message>`` and exits 2.
"""

from __future__ import annotations


class IdentityError(Exception):
    """A photo or an enrollment was refused; ``code`` is stable, ``message`` is for people."""

    code = "identity_error"

    def __init__(self, message: str, *, code: str | None = None, photo: int | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.photo = photo  # 0-based index of the offending photo in an enrollment, if any

    def __str__(self) -> str:
        return self.message


class InvalidImage(IdentityError):
    code = "invalid_image"


class UnsupportedFormat(IdentityError):
    code = "unsupported_format"


class ImageTooLarge(IdentityError):
    code = "image_too_large"


class ImageTooSmall(IdentityError):
    code = "image_too_small"


class NoFace(IdentityError):
    code = "no_face"


class MultipleFaces(IdentityError):
    code = "multiple_faces"


class FaceTooSmall(IdentityError):
    code = "face_too_small"


class LowQuality(IdentityError):
    code = "low_quality"


class IdentityMismatch(IdentityError):
    code = "identity_mismatch"


class NotSameFace(IdentityError):
    """A photo added to a stored identity does not match its face."""

    code = "not_same_face"

    def __init__(self, message: str, *, photo: int, similarity: float):
        super().__init__(message, photo=photo)
        self.similarity = similarity  # of the photo to the identity's face


class TooManyPhotos(IdentityError):
    code = "too_many_photos"


class AnalyzerUnavailable(IdentityError):
    """The configured face backend cannot run (missing model pack or package): an operator error."""

    code = "face_backend_unavailable"
