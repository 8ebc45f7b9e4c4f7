"""Browser sign-in and sign-out: an API key exchanged for a session cookie (api/sessions.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse

from api import sessions
from api.auth import Unauthorized, user_for_key
from api.deps import Auth, AuthFirstRoute, ServicesDep
from api.schemas import SessionCreate, SessionPublic, error_responses

router = APIRouter(prefix="/v1/session", tags=["session"], route_class=AuthFirstRoute)
ERRORS = error_responses(400, 401, 403, 422, 429)


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=SessionPublic, responses=ERRORS
)
def create_session(body: SessionCreate, request: Request, services: ServicesDep) -> JSONResponse:
    """Sign in: sets the ``imagine_session`` cookie (HttpOnly, SameSite=Strict, Secure over
    HTTPS) and returns the CSRF token to send with state-changing requests."""
    peer = request.client.host if request.client else None
    services.limiter.take(f"sign-in {peer}")
    settings = services.settings
    with services.db.session() as session:
        user = user_for_key(session, f"Bearer {body.api_key}")
        previous = request.cookies.get(sessions.COOKIE)
        if previous:  # a fresh token on every sign-in: no session fixation
            sessions.end_session(session, previous)
        token, row = sessions.start_session(session, user, settings.session_hours)
        public = SessionPublic(
            user=user.name, csrf_token=sessions.csrf_token(token), expires_at=row.expires_at
        )
    response = JSONResponse(public.model_dump(mode="json"), status_code=status.HTTP_201_CREATED)
    response.set_cookie(
        sessions.COOKIE,
        token,
        max_age=int(settings.session_hours * 3600),
        path="/",
        httponly=True,
        samesite="strict",
        secure=sessions.came_over_https(
            request.url.scheme,
            peer,
            request.headers.get("x-forwarded-proto"),
            services.trusted,
        ),
    )
    return response


@router.get("", response_model=SessionPublic, responses=ERRORS)
def read_session(auth: Auth, services: ServicesDep) -> SessionPublic:
    """Who is signed in with this browser, and the session's CSRF token."""
    with services.db.session() as session:
        caller = auth.caller(session)
    if caller.session_token is None or caller.session_expires_at is None:
        raise Unauthorized("no browser session: sign in with POST /v1/session")
    return SessionPublic(
        user=caller.user.name,
        csrf_token=sessions.csrf_token(caller.session_token),
        expires_at=caller.session_expires_at,
    )


@router.delete("", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
def delete_session(auth: Auth, services: ServicesDep) -> Response:
    """Sign out: the session ends on the server and the cookie is cleared."""
    with services.db.session() as session:
        caller = auth.caller(session)
        if caller.session_token is not None:
            sessions.end_session(session, caller.session_token)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(sessions.COOKIE, path="/", httponly=True, samesite="strict")
    return response
