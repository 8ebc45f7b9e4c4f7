"""The FastAPI application: assembly only."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from api import handlers, web
from api.erasure import erase_identity, expired_identities, finish_erasure, sweep_orphans
from api.limits import BodyLimitMiddleware
from api.metrics import MetricsMiddleware
from api.routes import (
    capture,
    generations,
    identities,
    identity_photos,
    images,
    meta,
    provenance,
    session,
)
from api.services import Services
from api.sessions import delete_expired_sessions
from imagine import __version__

log = logging.getLogger("api")


def create_app(services: Services, *, start_worker: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        sweeper = threading.Thread(
            target=_sweep_forever, args=(services, stop), daemon=True, name="imagine-sweeper"
        )
        sweeper.start()
        if start_worker:
            services.executor.start()
        try:
            yield
        finally:
            stop.set()
            if start_worker:
                services.executor.stop()

    app = FastAPI(
        title="Imagine Me",
        version=__version__,
        summary="Likeness images of you from a few photos and a prompt.",
        lifespan=lifespan,
        # served by api.web.docs from a package, not from FastAPI's CDN (issue 20)
        docs_url=None,
        redoc_url=None,
    )
    app.state.services = services
    handlers.install(app)
    # The busiest routes first: each request is matched against the routers in this order.
    routers = (generations, images, identities, identity_photos, capture, session, meta, provenance)
    for module in routers:
        app.include_router(module.router)
    web.install(app)
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=services.settings.max_request_bytes)
    app.add_middleware(web.SecurityHeadersMiddleware)  # outermost: on every response
    return app


def sweep_once(services: Services) -> dict[str, int]:
    """Erase identities past retention, delete orphan files and end expired browser sessions;
    audit records hold no biometrics."""
    with services.db.session() as session:
        keys: list[str] = []
        expired = expired_identities(session, services.settings.retention_days)
        for identity in expired:
            keys += erase_identity(session, identity, "retention_expired")
    if expired:
        finish_erasure(services.db, services.storage, keys)
    with services.db.session() as session:
        orphans = sweep_orphans(session, services.storage)
        ended = delete_expired_sessions(session)
    return {"expired_identities": len(expired), "orphan_files": orphans, "expired_sessions": ended}


def _sweep_forever(services: Services, stop: threading.Event, every_s: float = 3600.0) -> None:
    while True:
        try:
            result: Any = sweep_once(services)
            if any(result.values()):
                log.info("retention sweep: %s", result)
        except Exception:
            log.exception("retention sweep failed")
        if stop.wait(every_s):
            return
