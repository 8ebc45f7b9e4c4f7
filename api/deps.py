"""FastAPI dependencies: routes list exactly what they need through these ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from api import sessions
from api.auth import user_for_key
from api.errors import NotFound
from api.region import client_address
from api.services import Services
from api.tables import User


async def get_services(request: Request) -> Services:
    """Dependencies that never block are ``async def``: FastAPI runs a plain ``def``
    dependency in its thread pool, and each such hop costs more than they do."""
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_session(services: ServicesDep) -> Iterator[Session]:
    with services.db.session() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]

Row = TypeVar("Row")


def owned(session: Session, model: type[Row], user_id: str, object_id: str, noun: str) -> Row:
    """The user's row of ``model`` with this id; another user's answers exactly like a
    missing one (404 ``not_found``), so ids reveal nothing."""
    row = session.get(model, object_id)
    if row is None or getattr(row, "user_id", None) != user_id:
        raise NotFound(f"no such {noun}")
    return row


@dataclass(frozen=True)
class Caller:
    user: User
    session_token: str | None = None  # the browser session's cookie token; None: an API key
    session_expires_at: datetime | None = None


# What a request costs in the per-user rate limit, by route (endpoint) name; others cost 1.
# A gallery page shows 24 thumbnails and a batch downloads each image with its metadata:
# reading a stored image is cheap, and counting each in full would starve the pages.
RATE_COSTS = {"read_image": 0.1, "read_image_metadata": 0.1}


def _route_name(request: Request) -> str:
    return str(getattr(request.scope.get("route"), "name", ""))


def get_caller(request: Request, services: ServicesDep, session: SessionDep) -> Caller:
    """The one place that decides who is calling: a bearer API key when the request
    sends one, else the session cookie, whose state-changing requests need the CSRF
    token. Shares the request's database session (one transaction)."""
    authorization = request.headers.get("authorization")
    token = request.cookies.get(sessions.COOKIE)
    if authorization or not token:
        caller = Caller(user_for_key(session, authorization))
    else:
        user, row = sessions.session_for_token(session, token)
        caller = Caller(user, token, row.expires_at)
    if caller.session_token and request.method not in sessions.SAFE_METHODS:
        sessions.check_csrf(caller.session_token, request.headers.get(sessions.CSRF_HEADER))
    services.limiter.take(caller.user.id, RATE_COSTS.get(_route_name(request), 1.0))
    return caller


CurrentCaller = Annotated[Caller, Depends(get_caller)]


async def get_current_user(caller: CurrentCaller) -> User:
    return caller.user


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_client_address(
    request: Request, services: ServicesDep
) -> IPv4Address | IPv6Address | None:
    peer = request.client.host if request.client else None
    return client_address(
        peer, request.headers, services.trusted, services.settings.forwarded_header
    )


ClientAddress = Annotated[IPv4Address | IPv6Address | None, Depends(get_client_address)]
