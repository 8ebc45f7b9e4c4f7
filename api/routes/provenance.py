"""Provenance verification of an uploaded image."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, UploadFile

from api.deps import CurrentUser
from api.errors import ApiError
from api.schemas import ErrorResponse

router = APIRouter(tags=["provenance"])


class NotImplementedYet(ApiError):
    code = "not_implemented"
    status = 501


@router.post("/v1/provenance/verify", responses={501: {"model": ErrorResponse}})
async def verify_provenance(
    user: CurrentUser, image: Annotated[UploadFile, File(description="the image to check")]
) -> dict:
    raise NotImplementedYet("provenance verification is not available yet")
