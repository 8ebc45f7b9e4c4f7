"""Prometheus metrics: request counts and latency by route, and jobs by status."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from sqlalchemy import func, select

from api.tables import Generation

if TYPE_CHECKING:
    from api.services import Services

REGISTRY = CollectorRegistry()
REQUESTS = Counter(
    "imagine_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=REGISTRY
)
LATENCY = Histogram(
    "imagine_http_request_seconds", "HTTP request latency", ["method", "route"], registry=REGISTRY
)
JOBS = Gauge("imagine_jobs", "Generation jobs by status", ["status"], registry=REGISTRY)


class MetricsMiddleware:
    """Counts requests by route template (never the raw path: ids would explode the labels)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def tracking_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", "unmatched")
            REQUESTS.labels(scope["method"], name, str(status["code"])).inc()
            LATENCY.labels(scope["method"], name).observe(time.perf_counter() - start)


def render_metrics(services: Services) -> tuple[bytes, str]:
    with services.db.session() as s:
        counts = dict(
            s.execute(select(Generation.status, func.count()).group_by(Generation.status)).all()
        )
    for status in ("queued", "running", "succeeded", "failed", "cancelled"):
        JOBS.labels(status).set(counts.get(status, 0))
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
