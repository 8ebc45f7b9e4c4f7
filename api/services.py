"""Everything a request needs, built once from settings and handed to routes as a dependency."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from api.consent import ConsentText, consent_text
from api.crypto import EmbeddingCipher, load_key
from api.db import Database, migrate
from api.erasure import seal_legacy_embeddings
from api.limits import Limiter, build_limiter
from api.region import RegionGate, build_gate
from api.region.address import IPNetwork
from api.settings import ServiceSettings
from api.storage import Storage, open_storage
from api.worker import EXECUTORS, Executor, WorkerContext
from identity.analyzer import ANALYZERS, FaceAnalyzer
from imagine.models.config import DEFAULTS, ProfileDefaults
from imagine.provenance import ProvenanceConfig, signing_status, signing_warnings
from imagine.runtime import load_checker
from imagine.settings import SettingsError
from llm_prompting import PromptingConfig
from llm_prompting.contract import TokenCounter
from llm_prompting.readiness import Check, check_expander, check_moderator

PROBE_EVERY_S = 10.0


@dataclass
class Services:
    settings: ServiceSettings
    db: Database
    storage: Storage
    cipher: EmbeddingCipher
    gate: RegionGate
    consent: ConsentText
    limiter: Limiter
    trusted: tuple[IPNetwork, ...]
    executor: Executor
    count_tokens: TokenCounter  # the prompt budget's counter: the profile's CLIP tokenizers
    _analyzer: FaceAnalyzer | None = None
    enroll_lock: threading.Lock = field(default_factory=threading.Lock)
    # Set when the server begins to stop: event streams end, so that connections close.
    stopping: threading.Event = field(default_factory=threading.Event)
    prompting: PromptingConfig = field(default_factory=PromptingConfig)
    # Built once at start: the watermark key and the C2PA chain (made on first start).
    provenance: ProvenanceConfig | None = None
    c2pa_signing: str = "off"  # "on", or "off: <why>" (readiness output)
    output_checks: str = "off"  # the output safety checker in use, or why there is none
    _probed: tuple[float, tuple[Check, Check]] | None = None
    _probe_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def marks(self) -> ProvenanceConfig:
        """The provenance config built at start."""
        assert self.provenance is not None
        return self.provenance

    def notes(self) -> tuple[str, ...]:
        """What an operator should hear at start (C2PA signing, output checks)."""
        return signing_warnings(self.marks)

    @property
    def profile(self) -> ProfileDefaults:
        return DEFAULTS[self.settings.profile]

    def analyzer(self) -> FaceAnalyzer:
        """The face analyzer for enrollment; its own instance, apart from the worker's,
        because dlib's networks are not safe to share between threads."""
        if self._analyzer is None:
            self._analyzer = ANALYZERS[self.settings.face_backend](self.settings.face())
        return self._analyzer

    def prompting_checks(self) -> tuple[Check, Check]:
        """The expander's and moderator's servers (``/readyz``): probed at most every
        ``PROBE_EVERY_S`` seconds, so frequent probes cost one request per server now and then."""
        with self._probe_lock:
            now = time.monotonic()
            if self._probed is None or now - self._probed[0] > PROBE_EVERY_S:
                checks = (check_expander(self.prompting), check_moderator(self.prompting))
                self._probed = (now, checks)
            return self._probed[1]

    def close(self) -> None:
        self.executor.stop()
        self.db.engine.dispose()


def build_services(settings: ServiceSettings, executor: str | None = None) -> Services:
    """Open the database (migrated), storage, key and gate; create the executor (not started)."""
    refuse_face_crop_adapters(settings)
    settings.home.mkdir(parents=True, exist_ok=True)
    storage = build_storage(settings)  # first: a missing bucket stops the start at once
    db = Database(settings.database, settings.sqlite_synchronous)
    migrate(db.engine)
    cipher = EmbeddingCipher(load_key(settings.embedding_key, settings.key_file, settings.home))
    seal_legacy_embeddings(db, cipher)
    # Refuse to start rather than store images unchecked or unsigned by mistake: a C2PA key
    # that cannot sign, or (in production) no output checker, is an operator error.
    provenance = settings.provenance()
    c2pa_signing = signing_status(provenance)
    checker, notes = load_checker(settings)
    # The tokenizers alone (no weights), now: a model folder without them stops the start.
    count_tokens = settings.token_counter()
    ctx = worker_context(settings, db, storage, cipher)
    name = executor or settings.executor
    if name not in EXECUTORS:
        raise SettingsError(f"IMAGINE_EXECUTOR={name!r}: choose one of {sorted(EXECUTORS)}")
    return Services(
        settings=settings,
        db=db,
        storage=storage,
        cipher=cipher,
        gate=build_gate(settings.region()),
        consent=consent_text(settings.retention_days),
        limiter=build_limiter(settings.redis_url, settings.rate_limit_per_minute),
        trusted=settings.trusted_networks(),
        executor=EXECUTORS[name](ctx, settings),
        count_tokens=count_tokens,
        prompting=settings.prompting(),
        provenance=provenance,
        c2pa_signing=c2pa_signing,
        output_checks="; ".join(notes) if notes else checker.name,
    )


def worker_context(
    settings: ServiceSettings, db: Database, storage: Storage, cipher: EmbeddingCipher
) -> WorkerContext:
    return WorkerContext(
        db=db,
        storage=storage,
        cipher=cipher,
        lease_s=settings.lease_seconds,
        max_attempts=settings.max_attempts,
        batch_window_s=settings.batch_window_ms / 1000,
        job_timeout_s=settings.job_timeout_s,
    )


def open_worker_context(settings: ServiceSettings) -> WorkerContext:
    """What a worker in a process of its own needs (a Ray replica): the database the API
    migrated, the same image store and the same master key."""
    db = Database(settings.database, settings.sqlite_synchronous)
    cipher = EmbeddingCipher(load_key(settings.embedding_key, settings.key_file, settings.home))
    return worker_context(settings, db, build_storage(settings), cipher)


def build_storage(settings: ServiceSettings) -> Storage:
    return open_storage(settings.storage_location, s3_endpoint_url=settings.s3_endpoint_url)


def refuse_face_crop_adapters(settings: ServiceSettings) -> None:
    """The service keeps no face crops (only the encrypted embedding: biometric data
    minimisation), so it cannot feed FaceID Plus v2, which needs them on every call.
    InstantID's five keypoints are kept, sealed like the embedding, so it runs here."""
    if settings.faceid_variant == "plusv2":
        raise SettingsError(
            f"IMAGINE_FACEID_VARIANT={settings.faceid_variant!r}: the service runs FaceID "
            "and InstantID; it stores no face crops (only the encrypted embedding and "
            "keypoints), and FaceID Plus v2 needs them. Use IMAGINE_FACEID_VARIANT=faceid or "
            "instantid for `imagine serve`; plusv2 works with `imagine generate` and "
            "`imagine batch`"
        )
