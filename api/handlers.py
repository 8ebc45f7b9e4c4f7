"""The one place where every error becomes ``{"error": {"code", "message"}}`` with a status."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from api import web
from api.errors import STATUS_BY_CODE, ApiError
from api.limits import TooManyRequests
from imagine.errors import CODED_ERRORS

log = logging.getLogger("api")

HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "request_too_large",
    415: "unsupported_media_type",
}


# Fields some errors add to their body, for clients that explain them: which photo of
# an enrollment failed (0-based; a frame of a camera capture), why the region gate said no,
# which moderation category, which step of a camera capture failed.
DETAIL_FIELDS = ("photo", "reason", "category", "step")


def error_response(
    status: int, code: str, message: str, headers: dict | None = None, exc: Exception | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    for name in DETAIL_FIELDS:
        if getattr(exc, name, None) is not None:
            body[name] = getattr(exc, name)
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        headers = (
            {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyRequests) else None
        )
        return error_response(exc.status, exc.code, exc.message, headers, exc)

    for cls in CODED_ERRORS:
        app.add_exception_handler(cls, _library_error)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_request", describe_validation(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        if exc.status_code == 404 and web.wants_page(request):
            return web.not_found_page()  # a browser's mistyped link: the gallery says so
        if exc.status_code == 413:
            return error_response(413, "request_too_large", "the request body is too large")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:  # Starlette names the first matching route's methods only
            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(app, request))}
        return error_response(exc.status_code, code, message, headers)

    @app.exception_handler(Exception)
    async def crash(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "something went wrong on our side")


async def _library_error(_: Request, exc: Any) -> JSONResponse:
    return error_response(STATUS_BY_CODE.get(exc.code, 422), exc.code, exc.message, exc=exc)


def allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """Every method some route answers on the request's path (RFC 9110: a 405's Allow)."""

    def methods(routes: Any) -> set[str]:
        found: set[str] = set()
        for route in routes:
            included = getattr(route, "original_router", None)  # FastAPI's included routers
            if included is not None:
                found |= methods(included.routes)
            elif route.matches(request.scope)[0] != Match.NONE:
                found |= set(getattr(route, "methods", None) or ())
        return found

    return sorted(methods(app.router.routes))


def describe_validation(errors: Any) -> str:
    parts = []
    for err in list(errors)[:3]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{where or 'request'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)
