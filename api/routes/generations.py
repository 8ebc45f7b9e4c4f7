"""Generation jobs: submit, follow (polling or server-sent events), cancel."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Annotated, cast

from fastapi import APIRouter, Header, Request, status
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from api.deps import (
    Auth,
    AuthFirstRoute,
    Credentials,
    ServicesDep,
    address_of,
    mine,
    owned,
    services_of,
)
from api.errors import Conflict, NotFound
from api.jobs import TERMINAL, replay, request_cancel, submission_checks, submit
from api.schemas import (
    ErrorBody,
    ExpandedPublic,
    GenerationAccepted,
    GenerationCreate,
    GenerationPublic,
    ImagePublic,
    Status,
    error_responses,
)
from api.services import Services
from api.tables import Generation, ImageRow
from imagine.models.config import DEFAULTS
from imagine.request import GenerationSpec, InvalidArgument
from llm_prompting import expand

router = APIRouter(prefix="/v1/generations", tags=["generations"], route_class=AuthFirstRoute)
ERRORS = error_responses(400, 401, 404, 409, 422, 429, 451)


def image_public(row: ImageRow) -> ImagePublic:
    profile = DEFAULTS.get(row.meta.get("profile", ""))
    return ImagePublic(
        id=row.id,
        url=f"/v1/images/{row.id}",
        generation_id=row.generation_id,
        identity_id=row.identity_id,
        prompt=row.meta.get("prompt", ""),
        index=row.index,
        seed=row.seed,
        width=row.width,
        height=row.height,
        identity_similarity=row.identity_similarity,
        profile_is_noise=profile is not None and profile.is_noise,
        created_at=row.created_at,
    )


def to_public(job: Generation, images: list[ImageRow], services: Services) -> GenerationPublic:
    return GenerationPublic(
        id=job.id,
        status=cast(Status, job.status),
        identity_id=job.identity_id,
        prompt=job.request["prompt"],
        n=job.request["n"],
        width=job.request["width"],
        height=job.request["height"],
        progress=round(job.progress, 4),
        step=job.step,
        total_steps=job.total_steps,
        expanded=ExpandedPublic.model_validate(job.expanded) if job.expanded else None,
        images=[image_public(row) for row in images],
        error=ErrorBody(code=job.error_code, message=job.error_message or "")
        if job.error_code
        else None,
        warnings=(job.warnings or {}).get("items", []),
        withheld=(job.warnings or {}).get("withheld", []),
        profile_is_noise=services.profile.is_noise,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


def owned_job(session: Session, user_id: str, job_id: str) -> Generation:
    return owned(session, Generation, user_id, job_id, "generation")


# Polling is the busiest route: the job and its images in one query, built once.
JOB_WITH_IMAGES = (
    select(Generation, ImageRow)
    .outerjoin(ImageRow, ImageRow.generation_id == Generation.id)
    .where(Generation.id == bindparam("job_id"))
    .order_by(ImageRow.index)
)


def job_public(session: Session, user_id: str, job_id: str, services: Services) -> GenerationPublic:
    """The user's job and, once it has succeeded, its images."""
    rows = session.execute(JOB_WITH_IMAGES, {"job_id": job_id}).all()
    job = mine(rows[0][0] if rows else None, user_id, "generation")
    # Images are visible once their job has succeeded (they commit together).
    images = [image for _, image in rows if image is not None] if job.status == "succeeded" else []
    return to_public(job, images, services)


@router.post(
    "", status_code=status.HTTP_202_ACCEPTED, response_model=GenerationAccepted, responses=ERRORS
)
async def create_generation(
    body: GenerationCreate,
    auth: Auth,
    request: Request,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    """Queue a generation. The same Idempotency-Key with the same body returns the same job."""
    services = services_of(request)  # not dependencies: each costs more than its work
    digest = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
    accepted = await run_in_threadpool(
        _submit, services, auth, body, digest, address_of(request), idempotency_key
    )
    return JSONResponse(
        accepted.model_dump(),
        status_code=status.HTTP_202_ACCEPTED,
        background=BackgroundTask(_wake, services),
    )


async def _wake(services: Services) -> None:
    """Tell the executor about the new job once the response is out, so that it does not
    compete with sending it. ``async``: Starlette would run a plain function in a thread."""
    services.executor.notify()


def _submit(
    services: Services,
    auth: Credentials,
    body: GenerationCreate,
    digest: str,
    address: object,
    idempotency_key: str | None,
) -> GenerationAccepted:
    """Replay, owner, request checks, face backend, region, moderation, queue cap: errors
    are decided in that order (tests pin it); ``api.jobs`` holds the SQL."""
    settings, request = services.settings, body.model_dump()
    with services.db.connection() as db:
        user_id = auth.user(db).id
        if (previous := replay(db, user_id, idempotency_key, digest)) is not None:
            return GenerationAccepted(id=previous.id, status=cast(Status, previous.status))
        identity = mine(submission_checks(db, user_id, body.identity_id), user_id, "identity")
        # Stored with the profile's steps and size filled in, and the prompt as it is
        # expanded and shown: normalised, or refused (nothing stored).
        spec = GenerationSpec.from_dict(request).resolved(services.profile)
        spec = spec.checked(settings.generation_limits())
        request |= {f: getattr(spec, f) for f in ("prompt", "steps", "width", "height")}
        if identity.embedding_dim != services.analyzer().embedding_dim:
            raise Conflict(
                f"this identity was enrolled with {identity.backend}; the service now uses "
                f"{settings.face_backend}: enroll again",
                code="identity_incompatible",
            )
        if settings.faceid_variant == "instantid" and not identity.has_keypoints:
            raise InvalidArgument(
                "this identity has no face keypoints, which InstantID needs: it was enrolled "
                f"with {identity.backend} or before keypoints were stored; enroll again "
                "(the service uses insightface)",
                code="missing_face_keypoints",
            )
        services.gate.require("generate", address, identity.residence)  # type: ignore[arg-type]
        # Budgeted like the CLI and batch: the profile's CLIP tokenizers. Moderation: 422.
        text = expand(spec.prompt, spec.style, services.prompting, services.count_tokens)
        job_id = submit(
            db,
            user_id,
            identity,
            request,
            text.to_dict(),
            digest,
            idempotency_key,
            cap=settings.max_queued_jobs,
        )
        return GenerationAccepted(id=job_id, status="queued")


@router.get("/{generation_id}", response_model=GenerationPublic, responses=ERRORS)
def read_generation(generation_id: str, auth: Auth, services: ServicesDep) -> GenerationPublic:
    with services.db.session() as session:
        return job_public(session, auth.user(session).id, generation_id, services)


@router.post(
    "/{generation_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=GenerationPublic,
    responses=ERRORS,
)
def cancel_generation(generation_id: str, auth: Auth, services: ServicesDep) -> GenerationPublic:
    """Cancel a queued job at once, a running one at its next denoising step."""
    with services.db.session() as session:
        job = owned_job(session, auth.user(session).id, generation_id)
        if job.status in TERMINAL:
            raise Conflict(f"the generation has already {job.status}", code="not_cancellable")
        request_cancel(session, job)
        session.flush()
        return to_public(job, [], services)  # not succeeded, so no images to show


@router.get(
    "/{generation_id}/events",
    responses={
        **ERRORS,
        200: {
            "content": {"text/event-stream": {}},
            "description": "`progress` events ({status, progress, step, total_steps}) while "
            "the job runs, then one `done` event with the whole generation.",
        },
    },
)
async def stream_generation_events(
    generation_id: str, auth: Auth, services: ServicesDep, request: Request
) -> StreamingResponse:
    """Server-sent events: progress as it changes, then the final state."""
    user_id = (await auth.identify(services.db)).user.id

    def snapshot() -> GenerationPublic:
        with services.db.session() as session:
            return job_public(session, user_id, generation_id, services)

    first = await run_in_threadpool(snapshot)  # 404 before the stream starts

    async def events() -> AsyncIterator[str]:
        state, last, idle = first, None, 0.0
        while True:
            current = (state.status, state.step, state.total_steps)
            if current != last:
                payload = {
                    "status": state.status,
                    "progress": state.progress,
                    "step": state.step,
                    "total_steps": state.total_steps,
                }
                yield f"event: progress\ndata: {json.dumps(payload)}\n\n"
                last, idle = current, 0.0
            if state.status in TERMINAL:
                yield f"event: done\ndata: {state.model_dump_json()}\n\n"
                return
            if services.stopping.is_set():  # end the stream: clients reconnect (SSE)
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(0.25)
            idle += 0.25
            if idle >= 15:  # a comment line keeps proxies from closing an idle stream
                yield ": keep-alive\n\n"
                idle = 0.0
            try:
                state = await run_in_threadpool(snapshot)
            except NotFound:  # erased while we watched
                yield 'event: error\ndata: {"code": "not_found"}\n\n'
                return

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
