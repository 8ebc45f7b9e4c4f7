"""Enrollment from the web gallery's camera: a head-turn challenge, then the frames taken
while the person followed it (issue 19). The checks are ``identity.capture``'s."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile, status
from starlette.concurrency import run_in_threadpool

from api.capture import issue_challenge, take_challenge
from api.deps import Auth, AuthFirstRoute, ClientAddress, ServicesDep
from api.routes.identities import (
    ConsentForm,
    ConsentVersionForm,
    NameForm,
    ResidenceForm,
    check_consent,
    checked_name,
    store_identity,
)
from api.schemas import CaptureChallengePublic, IdentityPublic, error_responses
from api.services import Services
from identity.capture import CaptureConfig, check_capture, describe
from identity.enrollment import IdentityProfile

router = APIRouter(prefix="/v1/identities/live", tags=["identities"], route_class=AuthFirstRoute)
CAPTURE = CaptureConfig()


@router.post(
    "/challenge",
    status_code=status.HTTP_201_CREATED,
    response_model=CaptureChallengePublic,
    responses=error_responses(401, 403, 429),
)
def create_capture_challenge(auth: Auth, services: ServicesDep) -> CaptureChallengePublic:
    """A head-turn challenge chosen at random, for one capture within ``expires_at``; it
    ends your earlier ones."""
    settings = services.settings
    with services.db.session() as session:
        nonce, turns, expires_at = issue_challenge(
            session,
            auth.user(session).id,
            settings.capture_challenge_steps,
            settings.capture_challenge_seconds,
        )
    return CaptureChallengePublic(
        nonce=nonce,
        steps=list(turns),
        instruction=describe(turns).capitalize(),
        expires_at=expires_at,
        min_frames=max(CAPTURE.min_frames, CAPTURE.lead_frames + len(turns)),
        max_frames=CAPTURE.max_frames,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=IdentityPublic,
    responses=error_responses(400, 401, 404, 409, 413, 415, 422, 429, 451),
)
async def create_live_identity(
    services: ServicesDep,
    auth: Auth,
    address: ClientAddress,
    frames: Annotated[
        list[UploadFile], File(description="the camera's frames, in the order taken (JPEG)")
    ],
    nonce: Annotated[str, Form(description="the challenge's nonce")],
    consent: ConsentForm,
    consent_version: ConsentVersionForm,
    residence: ResidenceForm,
    name: NameForm = None,
) -> IdentityPublic:
    """Enroll your face from a camera capture that followed the challenge; it is used up
    whatever the outcome. Refused with 409 ``capture_expired`` (start again) or 422
    ``capture_failed`` whose ``step`` names the check that failed (``frames``, ``face``,
    ``same_person``, ``challenge``, ``quality``) and ``photo`` the frame, when one did.
    The frames are analysed and discarded."""
    user = (await auth.identify(services.db)).user
    name = checked_name(name) if name is not None and name.strip() else None
    region, decision = check_consent(services, address, consent, consent_version, residence)
    turns = await run_in_threadpool(_take, services, user.id, nonce)
    data = [await frame.read() for frame in frames[: CAPTURE.max_frames + 1]]
    profile = await run_in_threadpool(_check, services, data, turns)
    return await run_in_threadpool(
        store_identity, services, user.id, profile, region, decision.to_dict(), "live", name
    )


def _take(services: Services, user_id: str, nonce: str) -> tuple[str, ...]:
    with services.db.session() as session:
        return take_challenge(session, user_id, nonce)


def _check(services: Services, frames: list[bytes], turns: tuple[str, ...]) -> IdentityProfile:
    with services.enroll_lock:  # as enrollment: dlib is CPU-bound and not thread-safe
        return check_capture(
            frames, turns, services.analyzer(), services.settings.enrollment(), CAPTURE
        )
