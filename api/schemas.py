"""Request and response bodies. Requests reject unknown fields; responses carry no
embeddings, file paths or other users' data."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for routes: each status answers with the error body."""
    return {status: {"model": ErrorResponse} for status in statuses}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


class ConsentPublic(BaseModel):
    version: str
    text: str
    sha256: str
    purpose: str
    retention_days: int


class PhotoQuality(BaseModel):
    face_px: int
    detection_score: float
    faces_detected: int
    sharpness: float
    yaw: float
    brightness: float
    visible: float
    similarity_to_profile: float


class IdentityPublic(BaseModel):
    id: str
    created_at: datetime
    last_used_at: datetime
    backend: str
    model_id: str
    embedding_dim: int
    residence: str
    consent_version: str
    photos: list[PhotoQuality]
    retention_until: datetime


class GenerationCreate(Strict):
    identity_id: str = Field(max_length=64)
    prompt: str = Field(min_length=1, max_length=1000)
    n: int = Field(default=1, ge=1)
    seed: int | None = Field(default=None, ge=0, lt=2**32)
    style: str | None = Field(default=None, max_length=64)
    width: int | None = None
    height: int | None = None
    steps: int | None = None


Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class GenerationAccepted(BaseModel):
    id: str
    status: Status


class ExpandedPublic(BaseModel):
    prompt: str  # what the image model sees
    negative_prompt: str
    style: str
    added: list[str]  # phrases the expander added to the user's words
    backend: str  # the expander that wrote it ("template" after a fallback)
    model: str
    warnings: list[str]


class ImagePublic(BaseModel):
    id: str
    url: str
    generation_id: str
    index: int
    seed: int
    width: int
    height: int
    identity_similarity: float | None
    created_at: datetime


class WithheldImage(BaseModel):
    """An image the output safety check refused: never stored, never shown."""

    index: int
    seed: int
    code: str  # "unsafe_output"


class GenerationPublic(BaseModel):
    id: str
    status: Status
    identity_id: str
    prompt: str
    n: int
    progress: float
    step: int
    total_steps: int
    expanded: ExpandedPublic | None
    images: list[ImagePublic]
    error: ErrorBody | None
    warnings: list[str]
    withheld: list[WithheldImage]
    profile_is_noise: bool  # True on the smoke profile: the images are noise
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class GalleryPage(BaseModel):
    items: list[ImagePublic]
    next_cursor: str | None


class ImageMetadata(BaseModel):
    id: str
    generation_id: str
    metadata: dict[str, Any]


class ReadyStatus(BaseModel):
    ready: bool
    database: bool
    worker: str
    profile: str
    details: dict[str, Any]
