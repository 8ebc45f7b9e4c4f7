"""A user's images: bytes, metadata, deletion, and the gallery."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import io
import json
import threading
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from fastapi.responses import RedirectResponse
from PIL import Image
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from api.deps import Auth, AuthFirstRoute, ClientAddress, ServicesDep, owned
from api.errors import ApiError
from api.limits import TooManyRequests
from api.routes.generations import image_public
from api.schemas import GalleryPage, ImageMetadata, error_responses
from api.services import Services
from api.storage import MissingObject, variant_key
from api.tables import ImageRow
from imagine.provenance import Edit, ProvenanceConfig, mark

router = APIRouter(tags=["images"], route_class=AuthFirstRoute)
ERRORS = error_responses(400, 401, 404, 422, 429, 451)
IMAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, max-age=3600",
    "Content-Security-Policy": "default-src 'none'",
}
# IMAGINE_S3_PRESIGNED_REDIRECT: how long the URL a 307 points at works. Short: it is a
# bearer capability for the object, handed out after the ownership check.
PRESIGNED_URL_S = 60


def labelled_download(data: bytes, image_id: str, config: ProvenanceConfig) -> bytes:
    """The stored image with the visible label drawn on, then marked again with its own id:
    the label can cover much of a small image, so the watermark is embedded over it once
    more (the same payload, so the two layers agree). Its C2PA manifest is an edit of the
    stored image, which it names as its ingredient (issue 21)."""
    with Image.open(io.BytesIO(data)) as stored:
        pixels, fmt = stored.convert("RGB"), stored.format or "PNG"
    edit = Edit(data, fmt, f"drew the visible label {config.label_text!r}")
    return mark(pixels, image_id, dataclasses.replace(config, label=True), edit=edit).data


# Drawing the label and marking the copy again costs about 2 s of CPU at 2048² (against
# about a millisecond for a request): it is done once per image, the copy kept beside
# it in storage, and costs its maker this many requests of the rate limit. One copy is
# rendered at a time per process, so downloads cannot take every core from the others.
LABEL_RENDER_COST = 5.0
_RENDERING = threading.Lock()
RENDER_WAIT_S = 60.0


def labelled_copy(services: Services, user_id: str, row: ImageRow) -> bytes:
    """The labelled download of ``row``: the kept copy, or rendered now and kept."""
    key = variant_key(row.storage_key, "labelled")
    try:
        return services.storage.get(key)
    except MissingObject:
        pass
    if not _RENDERING.acquire(timeout=RENDER_WAIT_S):
        raise TooManyRequests("downloads are busy; try again", retry_after=5)
    try:
        try:  # another request may have rendered it while this one waited
            return services.storage.get(key)
        except MissingObject:
            pass
        services.limiter.take(user_id, LABEL_RENDER_COST)
        data = labelled_download(services.storage.get(row.storage_key), row.id, services.marks)
        services.storage.put(key, data)
        return data
    finally:
        _RENDERING.release()


def owned_image(session: Session, user_id: str, image_id: str) -> ImageRow:
    return owned(session, ImageRow, user_id, image_id, "image")


@router.get(
    "/v1/images/{image_id}",
    response_class=Response,
    responses={
        **ERRORS,
        200: {"content": {"image/png": {}}, "description": "the PNG"},
        307: {"description": "IMAGINE_S3_PRESIGNED_REDIRECT: a presigned URL of the PNG"},
    },
)
def read_image(
    image_id: str,
    auth: Auth,
    services: ServicesDep,
    address: ClientAddress,
    download: Annotated[bool, Query(description="as an attachment (a file to save)")] = False,
) -> Response:
    with services.db.session() as session:
        caller = auth.caller(session)
        services.gate.require("gallery", address)
        row = owned_image(session, caller.user.id, image_id)
    filename = f"imagine-{row.id}.png" if download else None
    # The web gallery (a session cookie) is always answered here: its CSP allows images
    # from this origin only.
    redirect = services.settings.s3_presigned_redirect and caller.session_token is None
    key = row.storage_key
    if download and services.settings.download_label:  # a file that leaves the gallery says so
        key = variant_key(row.storage_key, "labelled")
        if not (redirect and services.storage.exists(key)):  # the first one is rendered here
            return image_response(labelled_copy(services, caller.user.id, row), filename)
    url = services.storage.presigned_url(key, PRESIGNED_URL_S, filename) if redirect else None
    if url:
        return RedirectResponse(
            url, status.HTTP_307_TEMPORARY_REDIRECT, {"Cache-Control": "no-store"}
        )
    return image_response(services.storage.get(key), filename)  # gone since the row was read: 404


def image_response(data: bytes, filename: str | None) -> Response:
    headers = dict(IMAGE_HEADERS)
    if filename:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return Response(data, media_type="image/png", headers=headers)


@router.get("/v1/images/{image_id}/metadata", response_model=ImageMetadata, responses=ERRORS)
def read_image_metadata(
    image_id: str,
    auth: Auth,
    services: ServicesDep,
    address: ClientAddress,
) -> ImageMetadata:
    with services.db.session() as session:
        user = auth.user(session)
        services.gate.require("gallery", address)
        row = owned_image(session, user.id, image_id)
        return ImageMetadata(id=row.id, generation_id=row.generation_id, metadata=row.meta)


@router.delete("/v1/images/{image_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
def delete_image(image_id: str, auth: Auth, services: ServicesDep) -> Response:
    with services.db.session() as session:
        row = owned_image(session, auth.user(session).id, image_id)
        key = row.storage_key
        session.delete(row)
    services.storage.delete(key)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def encode_cursor(row: ImageRow) -> str:
    raw = json.dumps([row.created_at.isoformat(), row.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        stamp, image_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(stamp), str(image_id)
    except (ValueError, TypeError, binascii.Error):
        raise ApiError(
            "the cursor is not one this server gave out", code="invalid_cursor"
        ) from None


@router.get("/v1/gallery", response_model=GalleryPage, responses=ERRORS)
def list_gallery(
    auth: Auth,
    services: ServicesDep,
    address: ClientAddress,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 24,
    identity_id: Annotated[str | None, Query(max_length=64)] = None,
) -> GalleryPage:
    """Your images, newest first; pass ``next_cursor`` back to get the next page;
    ``identity_id``: only those made from that face."""
    with services.db.session() as session:
        query = select(ImageRow).where(ImageRow.user_id == auth.user(session).id)
        services.gate.require("gallery", address)
        if identity_id:
            query = query.where(ImageRow.identity_id == identity_id)
        if cursor:
            stamp, image_id = decode_cursor(cursor)
            query = query.where(
                or_(
                    ImageRow.created_at < stamp,
                    and_(ImageRow.created_at == stamp, ImageRow.id < image_id),
                )
            )
        rows = list(
            session.scalars(
                query.order_by(ImageRow.created_at.desc(), ImageRow.id.desc()).limit(limit + 1)
            )
        )
    more = len(rows) > limit
    rows = rows[:limit]
    return GalleryPage(
        items=[image_public(r) for r in rows], next_cursor=encode_cursor(rows[-1]) if more else None
    )
