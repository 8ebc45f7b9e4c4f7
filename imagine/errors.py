"""Errors of the imagine package, each with a stable ``code``."""

from __future__ import annotations


class ImagineError(Exception):
    """A request the library refuses; ``code`` is stable, the message is for people."""

    code = "imagine_error"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message


class FileNotFound(ImagineError):
    code = "file_not_found"
