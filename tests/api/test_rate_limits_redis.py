"""Rate limits shared by API processes through Redis (``IMAGINE_REDIS_URL``), against the
Redis server of the environment; each test starts from an empty database and empties it."""

from __future__ import annotations

import logging
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.auth import create_user
from api.limits import RedisRateLimiter, TooManyRequests
from api.main import create_app
from imagine.settings import SettingsError
from tests.api.conftest import auth

pytestmark = pytest.mark.redis
REDIS_URL = "redis://127.0.0.1:6379/9"  # a database of its own, emptied around each test


@pytest.fixture
def redis_url() -> Iterator[str]:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield REDIS_URL
    client.flushdb()


def test_two_api_processes_share_one_users_limit(make_services, redis_url):
    # Two services on one database and one Redis: what two API processes behind a load
    # balancer are. A user gets 5 requests a minute in all, not 5 from each.
    first = make_services(executor="null", rate_limit_per_minute=5, redis_url=redis_url)
    second = make_services(executor="null", rate_limit_per_minute=5, redis_url=redis_url)
    with first.db.session() as s:
        key = create_user(s, "bob")[1]
    clients = [
        TestClient(create_app(services), client=("127.0.0.1", 50000))
        for services in (first, second)
    ]
    with clients[0] as a, clients[1] as b:
        codes = [
            (a if i % 2 else b).get("/v1/gallery", headers=auth(key)).status_code for i in range(6)
        ]
        assert codes == [200] * 5 + [429]
        limited = a.get("/v1/gallery", headers=auth(key))
        assert limited.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(limited.headers["Retry-After"]) <= 13  # one request refills in 12 s


def test_every_process_draws_on_one_bucket_per_user(redis_url):
    one = RedisRateLimiter(redis_url, per_minute=6)  # one request refills in 10 s
    for _ in range(4):
        one.take("alice")
    other = RedisRateLimiter(redis_url, per_minute=6)  # another process sees the same bucket
    other.take("alice", cost=2)
    with pytest.raises(TooManyRequests) as err:
        one.take("alice")
    assert 9 <= err.value.retry_after <= 10
    other.take("bob")  # another user's bucket is full


def test_redis_down_at_start_is_a_clear_error_and_later_lets_requests_through(caplog):
    with socket.socket() as probe:  # a port nobody listens on yet
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"redis://127.0.0.1:{port}/0"
    with pytest.raises(SettingsError, match=f"IMAGINE_REDIS_URL {url}"):
        RedisRateLimiter(url, per_minute=1)

    # A Redis of this test's own, then stopped under the limiter's feet.
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                limiter = RedisRateLimiter(url, per_minute=1)
                break
            except SettingsError:
                assert time.monotonic() < deadline, "redis-server did not start in 30 s"
                time.sleep(0.1)
        limiter.take("alice")
        with pytest.raises(TooManyRequests):
            limiter.take("alice")
    finally:
        server.kill()
        server.wait(timeout=30)
    with caplog.at_level(logging.WARNING, logger="imagine.api"):
        for _ in range(3):
            limiter.take("alice")  # over the limit, but an outage must not stop the service
    warnings = [r for r in caplog.records if "rate limits not applied" in r.getMessage()]
    assert len(warnings) == 1
