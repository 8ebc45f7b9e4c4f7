"""Request limits: body size (before it is read), per-user request rate."""

from __future__ import annotations

import json
import math
import threading
import time
from typing import Any

from starlette.exceptions import HTTPException as StarletteHTTPException

from api.errors import ApiError


class TooManyRequests(ApiError):
    code = "rate_limited"
    status = 429

    def __init__(self, message: str, *, retry_after: float, code: str | None = None):
        super().__init__(message, code=code)
        self.retry_after = max(1, math.ceil(retry_after))


class RateLimiter:
    """A token bucket per user: ``per_minute`` requests, refilled continuously.

    In-process, so one server; with several servers the same interface sits on Redis.
    """

    def __init__(self, per_minute: int):
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, user_id: str, cost: float = 1.0) -> None:
        """Spend ``cost`` requests' worth of the user's bucket, or raise 429."""
        now = time.monotonic()
        with self._lock:
            tokens, stamp = self._buckets.get(user_id, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - stamp) * self.rate)
            if tokens < cost:
                self._buckets[user_id] = (tokens, now)
                raise TooManyRequests(
                    "too many requests; slow down", retry_after=(cost - tokens) / self.rate
                )
            self._buckets[user_id] = (tokens - cost, now)


class BodyLimitMiddleware:
    """Refuse bodies over ``max_bytes`` with 413: at once from Content-Length, and for
    chunked bodies as soon as the running total passes the limit, without reading the rest."""

    def __init__(self, app: Any, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_bytes
            except ValueError:
                await _reply(send, 400, "invalid_request", "Content-Length is not a number")
                return
            if too_big:
                await _reply(send, 413, "request_too_large", self._message())
                return
        seen = 0
        started = False

        async def limited_receive() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge()
            return message

        async def tracking_send(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _reply(send, 413, "request_too_large", self._message())

    def _message(self) -> str:
        return f"the request body is larger than {self.max_bytes:,} bytes"


class _BodyTooLarge(StarletteHTTPException):
    """Raised from ``receive`` inside a route; an HTTPException so FastAPI's body
    parsing passes it through instead of turning it into a generic 400."""

    def __init__(self) -> None:
        super().__init__(413, "request_too_large")


async def _reply(send: Any, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"connection", b"close"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
