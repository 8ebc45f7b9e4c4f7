"""Errors of the service, each with a stable ``code`` and the HTTP status it answers with.

The API turns any ``ApiError`` into ``{"error": {"code", "message"}}`` with
``status`` in one handler; the CLI prints ``error: <code>: <message>`` and exits 2.
"""

from __future__ import annotations


class ApiError(Exception):
    """A request the service refuses; ``code`` is stable, the message is for people."""

    code = "api_error"
    status = 400

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidAddress(ApiError):
    """Text that is not an IPv4 or IPv6 address."""

    code = "invalid_address"


class InvalidRegion(ApiError):
    """Not an ISO 3166-1 country or ISO 3166-2 subdivision code, e.g. ``US`` or ``US-CA``."""

    code = "invalid_region"
    status = 422


class RegionConfigError(ApiError):
    """The operator's region settings (policy, database, lists) cannot be used."""

    code = "invalid_region_config"
    status = 503


class RegionUnavailable(ApiError):
    """The region gate denied the request; ``reason`` is the first reason code."""

    code = "region_unavailable"
    status = 451

    def __init__(self, message: str, *, reason: str):
        super().__init__(message)
        self.reason = reason


class NotFound(ApiError):
    """Missing, or owned by someone else: the two are indistinguishable on purpose."""

    code = "not_found"
    status = 404


class Conflict(ApiError):
    code = "conflict"
    status = 409


class NotReady(ApiError):
    code = "not_ready"
    status = 503


# Library error codes -> HTTP status. Anything not listed is a 422 (the request
# was understood but refused); server-side conditions are 503.
STATUS_BY_CODE = {
    "invalid_image": 400,
    "unsupported_format": 415,
    "image_too_large": 413,
    "request_too_large": 413,
    "file_not_found": 400,
    "cancelled": 409,
    "face_backend_unavailable": 503,
    "model_not_found": 503,
    "invalid_model_config": 503,
    "invalid_setting": 503,
    "expander_unavailable": 503,
    "moderation_unavailable": 503,
}
