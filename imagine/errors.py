"""Errors of the imagine package, each with a stable ``code``; and ``CODED_ERRORS``."""

from __future__ import annotations

from identity.errors import IdentityError
from llm_prompting.errors import PromptingError


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


# Every library's error base: a refusal with a stable ``code``, which each entry point
# reports by that code (an HTTP status, exit code 2, a failed job) rather than as a bug.
CODED_ERRORS = (IdentityError, ImagineError, PromptingError)
