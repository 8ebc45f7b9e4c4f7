"""The web gallery: one HTML shell and its ES modules, served by the API's own app.

No build step and no third-party request: ``static/`` holds plain HTML, CSS
and JavaScript modules, and a small client-side router in ``static/app.js``
draws each page. Every page path answers with the same shell; the modules
then talk to the JSON API with the session cookie (README, "Web gallery").
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from api.web import docs

STATIC = Path(__file__).with_name("static")
PAGES = ("/", "/signin", "/onboarding", "/create", "/gallery", "/images/{image_id}")


def content_security_policy(script: Iterable[str] = (), style: Iterable[str] = ()) -> str:
    """No inline script or style, nothing from another origin, no framing; ``script`` and
    ``style`` add sources (``/docs`` adds the hash of its one inline script)."""
    return "; ".join(
        (
            "default-src 'self'",
            " ".join(("script-src 'self'", *script)),
            " ".join(("style-src 'self'", *style)),
            "img-src 'self' data: blob:",
            "connect-src 'self'",
            "font-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


CONTENT_SECURITY_POLICY = content_security_policy()

router = APIRouter(include_in_schema=False)


def _shell() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


for _path in PAGES:
    router.add_api_route(_path, _shell, methods=["GET"])

# Paths where a 404 stays the API's JSON error, whatever the client accepts.
NOT_PAGES = ("/v1/", "/static/", "/docs", "/openapi.json", "/healthz", "/readyz", "/metrics")


def wants_page(request: Request) -> bool:
    """A browser asking for a page that does not exist: it gets the shell, whose router
    draws "Page not found", instead of a JSON body."""
    return (
        request.method in ("GET", "HEAD")
        and not request.url.path.startswith(NOT_PAGES)
        and "text/html" in request.headers.get("accept", "")
    )


def not_found_page() -> FileResponse:
    return FileResponse(
        STATIC / "index.html", status_code=404, headers={"Cache-Control": "no-cache"}
    )


def install(app: FastAPI) -> None:
    """Serve the pages, ``/static``, and the API docs with their assets (``/static/docs``
    first: ``/static`` would answer for it)."""
    docs.install(app, content_security_policy)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")


class SecurityHeadersMiddleware:
    """``X-Content-Type-Options: nosniff`` and ``Referrer-Policy`` on every response, and the
    gallery's Content-Security-Policy on every one that sets none of its own (images and
    ``/docs`` do)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                extra = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                    (b"cross-origin-resource-policy", b"same-origin"),
                    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
                ]
                headers += [(k, v) for k, v in extra if k not in names]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
