"""Provenance verification of an uploaded image."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, UploadFile
from starlette.concurrency import run_in_threadpool

from api.deps import Auth, AuthFirstRoute, ServicesDep
from api.schemas import error_responses
from imagine.provenance import verify

router = APIRouter(tags=["provenance"], route_class=AuthFirstRoute)


@router.post("/v1/provenance/verify", responses=error_responses(400, 401, 413, 415, 422, 429))
async def verify_provenance(
    auth: Auth,
    services: ServicesDep,
    image: Annotated[UploadFile, File(description="the image to check: PNG, JPEG or WebP")],
) -> dict[str, Any]:
    """What marks the image carries: the invisible watermark and its payload, the IPTC
    digital source type in XMP, and the C2PA manifest's validity and claims. Works on any
    image; says "no marks found" on images this service did not make."""
    await auth.identify(services.db)
    data = await image.read()
    findings = await run_in_threadpool(verify, data, services.marks)
    return findings.to_dict()
