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


class SessionCreate(Strict):
    api_key: str = Field(min_length=1, max_length=200)


class SessionPublic(BaseModel):
    user: str  # the user's name
    csrf_token: str  # send as X-CSRF-Token on state-changing requests
    expires_at: datetime


class ConsentPublic(BaseModel):
    version: str
    text: str
    sha256: str
    purpose: str
    retention_days: int


class StylePublic(BaseModel):
    name: str
    description: str


class StylesPublic(BaseModel):
    default: str  # used when a generation names no style
    styles: list[StylePublic]


class RegionPublic(BaseModel):
    code: str  # ISO 3166-1 alpha-2, or ISO 3166-2 for a subdivision
    name: str
    # Residents may enroll and create here; a country needing a subdivision: in some of them.
    served: bool


class CountryPublic(RegionPublic):
    needs_subdivision: bool  # residents declare their subdivision too (e.g. US-CA)
    subdivisions: list[RegionPublic]  # listed only where it is needed


class RegionsPublic(BaseModel):
    policy_version: str
    countries: list[CountryPublic]


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
    name: str | None  # given by the user; None for identities enrolled without one
    created_at: datetime
    last_used_at: datetime
    backend: str
    model_id: str
    embedding_dim: int
    residence: str
    consent_version: str
    photos: list[PhotoQuality]  # a camera capture: the frames its face was embedded from
    capture: Literal["upload", "live"]  # uploaded photos, or the web gallery's camera capture
    retention_until: datetime
    # at enrollment only: e.g. a face found only on a padded copy of a photo
    warnings: list[str] = []


class IdentityUpdate(Strict):
    name: str = Field(min_length=1, max_length=80)


class CaptureChallengePublic(BaseModel):
    nonce: str  # send with the frames: good for one capture
    steps: list[str]  # head turns, "left" | "right", in order, as the person sees them
    instruction: str  # e.g. "Turn your head left, then right"
    expires_at: datetime
    min_frames: int  # frames a capture sends, in the order taken
    max_frames: int


class GenerationCreate(Strict):
    identity_id: str = Field(max_length=64)
    # Length and characters are check_prompt's (prompt_too_long, invalid_prompt): one code
    # per rule. The body limit (IMAGINE_MAX_REQUEST_BYTES) bounds what is read at all.
    prompt: str = Field(min_length=1)
    n: int = Field(default=1, ge=1)
    # Bounded by GenerationSpec.checked (invalid_seed), with n: image k uses seed + k.
    seed: int | None = None
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
    identity_id: str  # the face it was made from
    prompt: str  # the user's words
    index: int
    seed: int
    width: int
    height: int
    identity_similarity: float | None
    profile_is_noise: bool  # made on the smoke profile: the image is noise
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
    width: int  # of each image, as resolved from the request and the profile's defaults
    height: int
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


class SizeDefaults(BaseModel):
    width: int
    height: int
    steps: int


class GenerationBounds(BaseModel):
    max_images: int  # n per generation
    max_steps: int
    min_side: int
    max_side: int
    side_multiple: int  # width and height are multiples of it


class LimitsPublic(BaseModel):
    profile: str  # the model profile the service runs
    profile_is_noise: bool  # True on the smoke profile: the images are noise
    defaults: SizeDefaults  # what a generation that leaves width, height or steps out gets
    generation: GenerationBounds
    # Beside ``generation``, not in it: clients before it build their bounds from exactly
    # the fields of ``generation`` and would refuse one more.
    max_prompt_chars: int  # characters after trimming and Unicode NFC; more: prompt_too_long
    max_enroll_photos: int
    max_queued_jobs: int  # queued or running generations per user; more is 429 too_many_jobs
    rate_limit_per_minute: int  # requests per user; more is 429 with Retry-After
    # Personal accounts enroll from a camera capture only: uploads are 403 live_capture_required
    require_live_capture: bool


class ReadyStatus(BaseModel):
    ready: bool
    database: bool
    worker: str
    profile: str
    details: dict[str, Any]
