"""The batch executors' targets: what a manifest is checked against, then the checks a run
needs before any work and the executor itself (registered in ``executor.EXECUTORS``)."""

from __future__ import annotations

from typing import Any

import httpx

from imagine.batch.client import ServiceClient, ServiceConfig, ServiceError
from imagine.batch.executor import BatchOptions, Executor
from imagine.batch.manifest import ItemDefaults, Manifest
from imagine.settings import Settings


class LocalTarget:
    """This process makes the images with the settings' models; a bad profile stops here."""

    server: str | None = None

    def __init__(self, settings: Settings):
        from imagine.models.config import DEFAULTS, check_config

        check_config(settings.models(embedding_dim=0))
        profile = DEFAULTS[settings.profile]
        self.settings = settings
        self.defaults = ItemDefaults(profile.width, profile.height, profile.steps)
        self.limits = settings.generation_limits()
        self.max_photos = settings.max_enroll_photos
        self.is_noise = profile.is_noise

    def executor(self, manifest: Manifest) -> tuple[Executor, dict[str, Any]]:
        from imagine.batch.local import LocalExecutor
        from imagine.batch.runner import image_context

        executor = LocalExecutor(self.settings)  # missing weights fail here
        return executor, image_context(self.settings, executor.name)


class RayTarget(LocalTarget):
    """Ray actors make the images with the settings' models: the same images as local mode
    (so a run may be resumed by either), on as many GPUs as ``--replicas`` asks for."""

    def __init__(self, settings: Settings, options: BatchOptions):
        super().__init__(settings)
        self.options = options

    def executor(self, manifest: Manifest) -> tuple[Executor, dict[str, Any]]:
        from imagine.batch.ray_data import RayDataExecutor
        from imagine.batch.runner import image_context

        executor = RayDataExecutor(self.settings, self.options.replicas, self.options.ray_address)
        return executor, image_context(self.settings, "local")  # the pixels are local mode's


class ServiceTarget:
    """The service at ``settings.batch_server`` makes the images: its defaults and bounds
    come from ``GET /v1/limits`` (unreachable, or not an Imagine Me service: an error)."""

    def __init__(
        self,
        settings: Settings,
        options: BatchOptions,
        transport: httpx.BaseTransport | None = None,
    ):
        if not settings.batch_server:
            raise ValueError("the service executor needs settings.batch_server")
        self.server: str | None = settings.batch_server
        self.config = ServiceConfig(
            url=settings.batch_server.rstrip("/"),
            api_key=settings.batch_api_key,
            concurrency=options.concurrency,
            consent_version=options.consent_version,
            residence=options.residence,
        )
        self.transport = transport
        self.client = ServiceClient(self.config, transport=transport)
        self.info = self.client.info()
        self.defaults, self.limits = self.info.defaults, self.info.limits
        self.max_photos = self.info.max_enroll_photos
        self.is_noise = self.info.profile_is_noise

    def executor(self, manifest: Manifest) -> tuple[Executor, dict[str, Any]]:
        """Checks the API key and, when photos are to be enrolled, the declared consent."""
        from imagine.batch.service import ServiceExecutor

        if not self.config.api_key:
            raise ServiceError(
                "service mode needs an API key: set IMAGINE_BATCH_API_KEY (or pass --api-key)",
                code="api_key_required",
            )
        self.client.identities()  # a bad key: 401 unauthorized
        enrolling = [item.line for item in manifest.items if not item.identity_id]
        if enrolling:
            self._check_consent(enrolling)
        context = {"executor": "service", "server": self.config.url, "profile": self.info.profile}
        return ServiceExecutor(self.config, self.info, self.transport), context

    def _check_consent(self, lines: list[int]) -> None:
        where = f"line(s) {', '.join(map(str, lines[:10]))}{' ...' if len(lines) > 10 else ''}"
        current = self.client.consent_version()
        if not (self.config.consent_version and self.config.residence):
            raise ServiceError(
                f"{where} enroll photos on the service: pass --consent-version {current} (the "
                "version of the text at GET /v1/consent that every person in them accepted) and "
                "--residence (where they live, e.g. US-CA)",
                code="consent_required",
            )
        if self.config.consent_version != current:
            raise ServiceError(
                f"--consent-version {self.config.consent_version!r} is not the service's current "
                f"consent text ({current}); show people the text at GET /v1/consent",
                code="consent_outdated",
            )
