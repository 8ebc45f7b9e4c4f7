"""Request limits: body size (before it is read), per-user request rate."""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from typing import Any, Protocol

from starlette.exceptions import HTTPException as StarletteHTTPException

from api.errors import ApiError


class TooManyRequests(ApiError):
    code = "rate_limited"
    status = 429

    def __init__(self, message: str, *, retry_after: float, code: str | None = None):
        super().__init__(message, code=code)
        self.retry_after = max(1, math.ceil(retry_after))


log = logging.getLogger("imagine.api")


class Limiter(Protocol):
    def take(self, user_id: str, cost: float = 1.0) -> None:
        """Spend ``cost`` requests' worth of the user's bucket, or raise 429."""
        ...


class RateLimiter:
    """A token bucket per user: ``per_minute`` requests, refilled continuously.

    In this process: with several API processes each has its own buckets, so a user gets
    the limit once per process. ``RedisRateLimiter`` shares them.
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


# The same bucket as RateLimiter's, kept in one Redis hash per user and updated by one
# script (atomic on the server), on the server's clock so that API hosts agree.
TAKE_SCRIPT = """
local rate, capacity, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local saved = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens = tonumber(saved[1]) or capacity
local stamp = tonumber(saved[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - stamp) * rate)
local allowed = tokens >= cost
if allowed then tokens = tokens - cost end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 1)
if allowed then return '' end
return tostring((cost - tokens) / rate)
"""
REDIS_PREFIX = "imagine:rate:"
REDIS_TIMEOUT_S = 0.5


class RedisRateLimiter:
    """``RateLimiter``'s buckets in Redis (``IMAGINE_REDIS_URL``), shared by every API
    process. Unreachable at start: a ``SettingsError``. Unreachable later: requests go
    through (a limiter outage must not take the service down) and a warning is logged,
    at most once a minute."""

    def __init__(self, url: str, per_minute: int, prefix: str = REDIS_PREFIX):
        import redis

        from imagine.settings import SettingsError

        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self.prefix = prefix
        self.errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)
        self.client = redis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
        )
        try:
            self.client.ping()
        except (*self.errors, ValueError) as err:
            raise SettingsError(f"IMAGINE_REDIS_URL {url}: {err}") from None
        self.script = self.client.register_script(TAKE_SCRIPT)
        self._warned_at = -math.inf

    def take(self, user_id: str, cost: float = 1.0) -> None:
        try:
            wait = self.script(keys=[self.prefix + user_id], args=[self.rate, self.capacity, cost])
        except self.errors as err:
            if time.monotonic() - self._warned_at > 60:
                self._warned_at = time.monotonic()
                log.warning("rate limits not applied: Redis does not answer (%s)", err)
            return
        if wait:
            raise TooManyRequests("too many requests; slow down", retry_after=float(wait))


def build_limiter(redis_url: str | None, per_minute: int) -> Limiter:
    return RedisRateLimiter(redis_url, per_minute) if redis_url else RateLimiter(per_minute)


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
