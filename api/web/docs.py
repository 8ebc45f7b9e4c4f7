"""``/docs`` (Swagger UI) without the internet (issue 20, point 8).

FastAPI's own page loads Swagger UI from a CDN. The ``fastapi-offline`` package ships the
same files (``swagger-ui-bundle.js``, ``swagger-ui.css``); they are served from where pip
put it, under ``/static/docs/``. FastAPI's HTML for the page starts the bundle with one
inline ``<script>``: the page's Content-Security-Policy is the gallery's plus the SHA-256 of
exactly that script.

``/redoc`` redirects to ``/docs``: the ReDoc 2.5.3 that the package ships always asks
``cdn.redoc.ly`` for its logo, starts its search worker from a ``blob:`` URL and injects
CSS the policy would have to allow by a hash taken from that build.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import re
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/static/docs"
FAVICON_URL = "/static/icon.svg"  # the gallery's

Policy = Callable[..., str]  # api.web.content_security_policy(script=..., style=...)


def assets_folder() -> Path:
    """The ``static`` folder of the installed ``fastapi-offline`` (found, not imported)."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("fastapi-offline is not installed: pip install fastapi-offline")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def inline_hashes(html: str, tag: str) -> list[str]:
    """CSP sources (``'sha256-…'``) for each inline ``<tag>`` block without attributes."""
    blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.DOTALL)
    digests = (base64.b64encode(hashlib.sha256(b.encode()).digest()).decode() for b in blocks)
    return [f"'sha256-{d}'" for d in digests]


def install(app: FastAPI, policy: Policy) -> None:
    """Serve the assets, ``/docs`` and ``/redoc``; the app is made with ``docs_url=None,
    redoc_url=None`` so FastAPI adds neither of its own."""
    assert app.openapi_url, "the docs page reads the OpenAPI document"
    app.mount(ASSETS_URL, StaticFiles(directory=assets_folder()), name="docs-assets")
    html = bytes(
        get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=FAVICON_URL,
            # no badge image from the public validator.swagger.io
            swagger_ui_parameters={"validatorUrl": None},
        ).body
    ).decode()
    headers = {
        "Content-Security-Policy": policy(script=inline_hashes(html, "script")),
        "Cache-Control": "no-cache",
    }

    def show_docs() -> HTMLResponse:
        return HTMLResponse(html, headers=headers)

    def redirect_redoc() -> RedirectResponse:
        return RedirectResponse("/docs")

    app.add_api_route("/docs", show_docs, methods=["GET"], include_in_schema=False)
    app.add_api_route("/redoc", redirect_redoc, methods=["GET"], include_in_schema=False)
