"""Adding photos to an identity, or replacing its photos (issue 20): the photos are checked
as enrollment checks them, then ``api.identity_photos`` matches and stores them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, UploadFile
from starlette.concurrency import run_in_threadpool

from api.deps import Auth, AuthFirstRoute, ClientAddress, ServicesDep
from api.identity_photos import ADD, REPLACE, change_photos, check_room
from api.region.address import IPAddress
from api.routes.identities import (
    ERRORS,
    enroll_photos,
    owned_identity,
    read_photos,
    refuse_uploads,
    to_public,
)
from api.schemas import IdentityPublic
from api.services import Services

router = APIRouter(prefix="/v1/identities", tags=["identities"], route_class=AuthFirstRoute)
PhotosForm = Annotated[
    list[UploadFile],
    File(description="photos of the identity's person: JPEG, PNG or WebP (1-5 per identity)"),
]


@router.post("/{identity_id}/photos", response_model=IdentityPublic, responses=ERRORS)
async def add_identity_photos(
    identity_id: str, services: ServicesDep, auth: Auth, address: ClientAddress, photos: PhotosForm
) -> IdentityPublic:
    """Add photos to your identity: its face becomes the profile of all its photos together.

    Each photo is checked as at enrollment and must show the identity's own face (422
    ``not_same_face``, with ``photo``), and a personal account's face (``not_account_face``);
    the identity holds at most ``max_enroll_photos`` in all (``too_many_photos``). A refused
    photo leaves the identity as it was. Its ``capture`` becomes ``upload``."""
    return await _change(services, auth, address, identity_id, photos, ADD)


@router.put("/{identity_id}/photos", response_model=IdentityPublic, responses=ERRORS)
async def replace_identity_photos(
    identity_id: str, services: ServicesDep, auth: Auth, address: ClientAddress, photos: PhotosForm
) -> IdentityPublic:
    """Replace your identity's photos: its face is made afresh from these, of the same
    person (the same checks as adding); its id, name, consent and images stay."""
    return await _change(services, auth, address, identity_id, photos, REPLACE)


async def _change(
    services: Services,
    auth: Auth,
    address: IPAddress | None,
    identity_id: str,
    photos: list[UploadFile],
    action: str,
) -> IdentityPublic:
    user = (await auth.identify(services.db)).user
    await run_in_threadpool(_before, services, user.id, identity_id, address, len(photos), action)
    data = await read_photos(photos, services.settings.max_enroll_photos)
    added = await run_in_threadpool(enroll_photos, services, data)
    changed = await run_in_threadpool(change_photos, services, user.id, identity_id, added, action)
    days = services.settings.retention_days
    return to_public(changed.identity, changed.consent_version, days, added.warnings)


def _before(
    services: Services,
    user_id: str,
    identity_id: str,
    address: IPAddress | None,
    sent: int,
    action: str,
) -> None:
    """The refusals that need no face analysis, first, so that none is spent on them: another
    user's identity (404), uploads where live capture is required (403), the region gate
    for the identity's residence (451), more photos than an identity holds."""
    with services.db.session() as session:
        identity = owned_identity(session, user_id, identity_id)
        held, residence = len(identity.photos["items"]), identity.residence
    if services.settings.require_live_capture:
        refuse_uploads(services, user_id)
    services.gate.require("enroll", address, residence)
    check_room(held if action == ADD else 0, sent, services.settings.max_enroll_photos)
