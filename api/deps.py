"""FastAPI dependencies: routes list exactly what they need through these ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from api.auth import user_for_key
from api.region import client_address
from api.services import Services
from api.tables import User


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_session(services: ServicesDep) -> Iterator[Session]:
    with services.db.session() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_current_user(request: Request, services: ServicesDep, session: SessionDep) -> User:
    """The caller, from the bearer key; shares the request's session (one transaction)."""
    user = user_for_key(session, request.headers.get("authorization"))
    services.limiter.take(user.id)
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def get_client_address(request: Request, services: ServicesDep) -> IPv4Address | IPv6Address | None:
    peer = request.client.host if request.client else None
    return client_address(
        peer, request.headers, services.trusted, services.settings.forwarded_header
    )


ClientAddress = Annotated[IPv4Address | IPv6Address | None, Depends(get_client_address)]
