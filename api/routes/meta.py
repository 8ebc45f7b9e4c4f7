"""Health, readiness, metrics, and what clients show or check: consent, styles, limits, regions."""

from __future__ import annotations

import pycountry
from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse

from api.deps import ServicesDep
from api.metrics import render_metrics
from api.region import RegionPolicy
from api.region.regions import chain
from api.schemas import (
    ConsentPublic,
    CountryPublic,
    GenerationBounds,
    LimitsPublic,
    ReadyStatus,
    RegionPublic,
    RegionsPublic,
    SizeDefaults,
    StylePublic,
    StylesPublic,
)
from llm_prompting import STYLES

router = APIRouter()
# What a declared residence must allow for the service to be offered to its residents.
RESIDENT_FEATURES = ("enroll", "generate")


@router.get("/healthz", tags=["meta"])
def read_health() -> dict[str, str]:
    """The process answers; says nothing about its dependencies (see /readyz)."""
    return {"status": "ok"}


@router.get(
    "/readyz", response_model=ReadyStatus, tags=["meta"], responses={503: {"model": ReadyStatus}}
)
def read_readiness(services: ServicesDep) -> JSONResponse:
    """200 when the database answers, the worker has loaded its models (with executor
    ``none``, whose jobs run in ``imagine worker`` processes: when the database answers)
    and a Llama Guard moderator's server answers, else 503. An ``openai`` expander that
    does not answer is reported in ``details.expander`` but leaves the service ready:
    expansions fall back to the template expander."""
    database = services.db.ping()
    worker_ready, worker = services.executor.status()
    expander, moderator = services.prompting_checks()
    body = ReadyStatus(
        ready=database and worker_ready and (moderator.ok or not moderator.required),
        database=database,
        worker=worker,
        profile=services.settings.profile,
        details={
            "profile_is_noise": services.profile.is_noise,
            "executor": services.executor.name,
            "c2pa_signing": services.c2pa_signing,
            "output_checks": services.output_checks,
            "expander": expander.public(),
            "moderator": moderator.public(),
            # face adapter and LoRAs the worker's pipeline runs with; None until loaded
            "adapters": services.executor.models(),
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


@router.get("/v1/styles", response_model=StylesPublic, tags=["generations"])
def read_styles(services: ServicesDep) -> StylesPublic:
    """The style presets a generation may name, and the one used when it names none."""
    return StylesPublic(
        default=services.settings.prompt_style,
        styles=[StylePublic(name=s.name, description=s.description) for s in STYLES.values()],
    )


@router.get("/v1/limits", response_model=LimitsPublic, tags=["generations"])
def read_limits(services: ServicesDep) -> LimitsPublic:
    """What this service accepts and the defaults it fills in: for clients that check a
    request before sending it (``imagine batch --server`` does)."""
    settings, profile = services.settings, services.profile
    bounds = settings.generation_limits()
    return LimitsPublic(
        profile=settings.profile,
        profile_is_noise=profile.is_noise,
        defaults=SizeDefaults(width=profile.width, height=profile.height, steps=profile.steps),
        generation=GenerationBounds(
            **{name: getattr(bounds, name) for name in GenerationBounds.model_fields}
        ),
        max_prompt_chars=bounds.max_prompt_chars,
        max_enroll_photos=settings.max_enroll_photos,
        max_queued_jobs=settings.max_queued_jobs,
        rate_limit_per_minute=settings.rate_limit_per_minute,
        require_live_capture=settings.require_live_capture,
    )


@router.get("/v1/regions", response_model=RegionsPublic, tags=["identities"])
def read_regions(services: ServicesDep) -> RegionsPublic:
    """ISO 3166 countries for the declared residence at enrollment; where the region policy
    has rules for parts of a country, its subdivisions, one of which must be declared. Each
    says whether the policy serves its residents (``served``: enrolling and creating)."""
    return regions(services.gate.policy)


def regions(policy: RegionPolicy) -> RegionsPublic:
    def served(code: str) -> bool:  # a resident of ``code`` may both enroll and create
        return all(policy.rules(f).allows(chain(code)) for f in RESIDENT_FEATURES)

    countries = []
    for country in pycountry.countries:
        code = country.alpha_2
        needs = policy.needs_subdivision(code)
        parts = pycountry.subdivisions.get(country_code=code) if needs else []
        subdivisions = sorted(
            (RegionPublic(code=p.code, name=p.name, served=served(p.code)) for p in parts or []),
            key=lambda r: r.name,
        )
        countries.append(
            CountryPublic(
                code=code,
                name=getattr(country, "common_name", None) or country.name,
                served=any(s.served for s in subdivisions) if needs else served(code),
                needs_subdivision=needs,
                subdivisions=subdivisions,
            )
        )
    countries.sort(key=lambda c: c.name)
    return RegionsPublic(policy_version=policy.version, countries=countries)
