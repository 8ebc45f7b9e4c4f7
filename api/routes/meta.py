"""Health, readiness, metrics and the consent text."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse

from api.deps import ServicesDep
from api.metrics import render_metrics
from api.schemas import ConsentPublic, ReadyStatus

router = APIRouter()


@router.get("/healthz", tags=["meta"])
def read_health() -> dict[str, str]:
    """The process answers; says nothing about its dependencies (see /readyz)."""
    return {"status": "ok"}


@router.get(
    "/readyz", response_model=ReadyStatus, tags=["meta"], responses={503: {"model": ReadyStatus}}
)
def read_readiness(services: ServicesDep) -> JSONResponse:
    """200 when the database answers and the worker has loaded its models, else 503."""
    database = services.db.ping()
    worker_ready, worker = services.executor.status()
    body = ReadyStatus(
        ready=database and worker_ready,
        database=database,
        worker=worker,
        profile=services.settings.profile,
        details={
            "profile_is_noise": services.profile.is_noise,
            "executor": services.executor.name,
            "c2pa_signing": services.c2pa_signing,
            "output_checks": services.output_checks,
        },
    )
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)


@router.get("/metrics", response_class=PlainTextResponse, tags=["meta"])
def read_metrics(services: ServicesDep) -> PlainTextResponse:
    """Prometheus text format."""
    text, content_type = render_metrics(services)
    return PlainTextResponse(text, media_type=content_type)


@router.get("/v1/consent", response_model=ConsentPublic, tags=["identities"])
def read_consent(services: ServicesDep) -> ConsentPublic:
    """The consent text a client must show before enrollment, and its version."""
    c = services.consent
    return ConsentPublic(
        version=c.version,
        text=c.text,
        sha256=c.sha256,
        purpose=c.purpose,
        retention_days=c.retention_days,
    )
