"""FastAPI dependencies: routes list exactly what they need through these ``Annotated`` aliases.

A request's database work runs in one thread-pool call. FastAPI runs every plain
``def`` dependency and route in its thread pool, and each hop there costs more than
the queries it wraps (``benchmarks/api.py``). So these dependencies never block: they
are ``async def`` and do no I/O. The caller is looked up inside the route's own unit of
work (``auth.caller(session)``), in the same thread-pool call as everything it reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy import Connection
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from api import sessions
from api.auth import Account, bearer_key, user_for_key
from api.db import Database
from api.errors import NotFound
from api.limits import Limiter
from api.region import client_address
from api.services import Services


async def get_services(request: Request) -> Services:
    return services_of(request)


def services_of(request: Request) -> Services:
    """The dependencies below read the services here rather than through ``ServicesDep``:
    FastAPI resolves each sub-dependency anew for every request, which costs tens of
    microseconds."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]

Row = TypeVar("Row")


def owned(session: Session, model: type[Row], user_id: str, object_id: str, noun: str) -> Row:
    """The user's row of ``model`` with this id (see ``mine``)."""
    return mine(session.get(model, object_id), user_id, noun)


def mine(row: Row | None, user_id: str, noun: str) -> Row:
    """``row`` if it belongs to the user. Another user's answers exactly like a missing
    one (404 ``not_found``), so ids reveal nothing."""
    if row is None or getattr(row, "user_id", None) != user_id:
        raise NotFound(f"no such {noun}")
    return row


@dataclass(frozen=True)
class Caller:
    user: Account
    session_token: str | None = None  # the browser session's cookie token; None: an API key
    session_expires_at: datetime | None = None


# What a request costs in the per-user rate limit, by route (endpoint) name; others cost 1.
# A gallery page shows 24 thumbnails and a batch downloads each image with its metadata:
# reading a stored image is cheap, and counting each in full would starve the pages.
RATE_COSTS = {"read_image": 0.1, "read_image_metadata": 0.1}


@dataclass(frozen=True)
class Credentials:
    """What a request offers to say who is calling, read from its headers: a bearer API
    key when it sends one, else the browser session cookie, whose state-changing
    requests must also carry the session's CSRF token."""

    authorization: str | None
    cookie: str | None
    csrf_token: str | None
    method: str
    cost: float  # what the request costs in the caller's rate limit
    limiter: Limiter

    def caller(self, db: Session | Connection) -> Caller:
        """The one place that decides who is calling, looked up in the unit of work ``db``:
        401 for an unknown key or an ended session, 403 without the CSRF token, 429 over
        the rate."""
        if self.authorization or not self.cookie:
            caller = Caller(user_for_key(db, self.authorization))
        else:
            user, expires_at = sessions.session_for_token(db, self.cookie)
            caller = Caller(user, self.cookie, expires_at)
        if caller.session_token and self.method not in sessions.SAFE_METHODS:
            sessions.check_csrf(caller.session_token, self.csrf_token)
        self.limiter.take(caller.user.id, self.cost)
        return caller

    def user(self, db: Session | Connection) -> Account:
        return self.caller(db).user

    async def identify(self, db: Database) -> Caller:
        """``caller`` in a unit of work of its own: for routes that must know who calls
        before slow work outside the database (reading uploads, face analysis)."""

        def look_up() -> Caller:
            with db.session() as session:
                return self.caller(session)

        return await run_in_threadpool(look_up)


async def get_credentials(request: Request) -> Credentials:
    authorization = request.headers.get("authorization")
    cookie = request.cookies.get(sessions.COOKIE)
    if authorization or not cookie:
        bearer_key(authorization)  # no key at all, or not a bearer one: 401 at once
    route = str(getattr(request.scope.get("route"), "name", ""))
    return Credentials(
        authorization=authorization,
        cookie=cookie,
        csrf_token=request.headers.get(sessions.CSRF_HEADER),
        method=request.method,
        cost=RATE_COSTS.get(route, 1.0),
        limiter=services_of(request).limiter,
    )


Auth = Annotated[Credentials, Depends(get_credentials)]


async def get_client_address(request: Request) -> IPv4Address | IPv6Address | None:
    return address_of(request)


def address_of(request: Request) -> IPv4Address | IPv6Address | None:
    """The client's address, as far as the trusted proxies vouch for it (region gate)."""
    services = services_of(request)
    peer = request.client.host if request.client else None
    return client_address(
        peer, request.headers, services.trusted, services.settings.forwarded_header
    )


ClientAddress = Annotated[IPv4Address | IPv6Address | None, Depends(get_client_address)]


def _needs_caller(dependant: Dependant) -> bool:
    return any(d.call is get_credentials or _needs_caller(d) for d in dependant.dependencies)


class AuthFirstRoute(APIRoute):
    """A route whose request is refused for who sends it (401, 403, 429) before it is
    refused for what it sends (422, or 400 for a body that cannot be parsed).

    FastAPI parses and validates the body before the route's dependencies run, so a
    malformed body sent without a key would answer 422. The caller is looked up only when
    the request failed that way: a valid request still does its one lookup in the route's
    own unit of work."""

    def get_route_handler(self) -> Any:
        handler = super().get_route_handler()
        if not _needs_caller(self.dependant):
            return handler

        async def authenticate_first(request: Request) -> Any:
            try:
                return await handler(request)
            except (RequestValidationError, HTTPException) as exc:
                if isinstance(exc, HTTPException) and exc.status_code != 400:
                    raise
                credentials = await get_credentials(request)  # no key: 401
                await credentials.identify(services_of(request).db)  # unknown key: 401
                raise

        return authenticate_first
