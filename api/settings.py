"""The service's settings: the library's ``Settings`` plus what only the service uses.

Still one settings object, read from ``IMAGINE_*`` variables by the entry
points (``api.cli`` builds this class); every field is documented in the
README's "Configuration" section (a test checks that).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from api.db import SQLITE_SYNCHRONOUS
from api.region import FEATURES, GeoConfig, RegionConfig, parse_networks
from api.region.address import FORWARDING_HEADERS, IPNetwork
from api.storage import STORAGES, file_path, storage_scheme
from identity.capture import MAX_CHALLENGE_STEPS
from imagine.settings import Settings, SettingsError


@dataclass(frozen=True)
class ServiceSettings(Settings):
    local_region: str | None = None  # ISO code given to loopback/private clients; unset: denied
    trusted_proxies: tuple[str, ...] = ()  # CIDR ranges whose forwarding header is believed
    forwarded_header: str = "x-forwarded-for"  # "x-forwarded-for" | "forwarded" (RFC 7239)
    geo_resolver: str = "iptocc"  # "iptocc" | "mmdb"
    geo_mmdb: tuple[str, ...] = ()  # .mmdb files for the mmdb resolver, tried in order
    geo_max_age_days: int = 45  # an older geo database is stale: requests are denied
    anonymizer_file: Path | None = None  # CIDR list of VPN / hosting / Tor exit networks
    region_policy_file: Path | None = None  # TOML policy replacing the shipped default
    enroll_regions: tuple[str, ...] = ()  # rule override, e.g. "US,!US-IL,!US-TX"
    generate_regions: tuple[str, ...] = ()
    gallery_regions: tuple[str, ...] = ()
    host: str = "127.0.0.1"  # imagine serve
    port: int = 8000
    database_url: str | None = None  # default: SQLite at IMAGINE_HOME/imagine.db
    sqlite_synchronous: str = "normal"  # "normal" | "full": "full" also survives power loss
    # Image bytes: a path, file:///path or s3://bucket/prefix; default IMAGINE_HOME/images
    storage_url: str | None = None
    storage_dir: Path | None = None  # the older name of storage_url, for a folder only
    s3_presigned_redirect: bool = False  # API-key reads of s3 images: 307 to a presigned URL
    embedding_key: str | None = None  # base64 AES-256 master key; else key_file
    # The master key's file (base64), kept outside IMAGINE_HOME in production: a copy of the
    # home (backup, disk image) must not carry the key beside the ciphertext. Unset:
    # IMAGINE_HOME/embedding.key, created on first start.
    key_file: Path | None = None
    retention_days: int = 1095  # identities unused this long are erased (BIPA: 3 years)
    max_request_bytes: int = 52 * 1024 * 1024  # whole request body, chunked or not
    rate_limit_per_minute: int = 120  # requests per user
    # Where the rate limits' buckets live, e.g. redis://cache:6379/0, shared by every API
    # process; unset: in each process (a user then gets the limit once per process)
    redis_url: str | None = None
    max_queued_jobs: int = 4  # queued or running generations per user
    lease_seconds: float = 30.0  # a running job's lease, renewed by heartbeat
    max_attempts: int = 3  # a job whose worker died this often fails with worker_lost
    job_timeout_s: float = 900.0  # a run past this fails with job_timeout; 0: no limit
    download_label: bool = True  # gallery downloads carry the visible "Imagined with AI" label
    batch_window_ms: int = 20  # a lone job waits this long for same-size jobs to share its batch
    # "inprocess" (a worker thread owns the pipeline in this process) | "none" (jobs run in
    # `imagine worker` processes) | "ray" (a Ray Serve deployment) | "null" (load tests:
    # jobs complete without images)
    executor: str = "inprocess"
    ray_min_replicas: int = 1  # Serve's autoscaler keeps the replicas between these two
    ray_max_replicas: int = 1
    session_hours: float = 12.0  # a browser sign-in (session cookie) lasts this long
    # Personal accounts enroll from a camera capture only (POST /v1/identities/live); off, so
    # that API and batch clients, which upload photos, keep working. Operators may upload.
    require_live_capture: bool = False
    capture_challenge_steps: int = 2  # head turns a camera capture asks for, 1-3
    capture_challenge_seconds: float = 120.0  # a challenge not answered by then has expired

    def __post_init__(self) -> None:
        object.__setattr__(self, "forwarded_header", self.forwarded_header.lower())
        object.__setattr__(self, "sqlite_synchronous", self.sqlite_synchronous.lower())
        if self.sqlite_synchronous not in SQLITE_SYNCHRONOUS:
            raise SettingsError(
                f"IMAGINE_SQLITE_SYNCHRONOUS={self.sqlite_synchronous!r}: "
                f"expected one of {list(SQLITE_SYNCHRONOUS)}"
            )
        if self.forwarded_header not in FORWARDING_HEADERS:
            raise SettingsError(
                f"IMAGINE_FORWARDED_HEADER={self.forwarded_header!r}: "
                f"expected one of {list(FORWARDING_HEADERS)}"
            )
        if not 1 <= self.capture_challenge_steps <= MAX_CHALLENGE_STEPS:
            raise SettingsError(
                f"IMAGINE_CAPTURE_CHALLENGE_STEPS={self.capture_challenge_steps}: "
                f"expected 1-{MAX_CHALLENGE_STEPS}"
            )
        if self.storage_url and self.storage_dir:
            raise SettingsError(
                "IMAGINE_STORAGE_URL and IMAGINE_STORAGE_DIR (its older name) are both set: "
                "keep IMAGINE_STORAGE_URL only"
            )
        scheme = storage_scheme(self.storage_location)
        if scheme not in STORAGES:
            raise SettingsError(
                f"IMAGINE_STORAGE_URL={self.storage_location!r}: expected a path, "
                "file:///path or s3://bucket/prefix"
            )
        if not 0 <= self.ray_min_replicas <= self.ray_max_replicas or self.ray_max_replicas < 1:
            raise SettingsError(
                f"IMAGINE_RAY_MIN_REPLICAS={self.ray_min_replicas}, IMAGINE_RAY_MAX_REPLICAS="
                f"{self.ray_max_replicas}: expected 0 <= min <= max and max >= 1"
            )
        if self.s3_presigned_redirect and scheme != "s3":
            raise SettingsError(
                "IMAGINE_S3_PRESIGNED_REDIRECT=true needs an s3:// IMAGINE_STORAGE_URL"
            )

    def region(self) -> RegionConfig:
        overrides = {f: getattr(self, f"{f}_regions") for f in FEATURES}
        return RegionConfig(
            policy_file=self.region_policy_file,
            policy_overrides=tuple((f, rules) for f, rules in overrides.items() if rules),
            geo=GeoConfig(self.geo_resolver, tuple(Path(p) for p in self.geo_mmdb)),
            max_database_age_days=self.geo_max_age_days,
            local_region=self.local_region,
            anonymizer_file=self.anonymizer_file,
        )

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'imagine.db').resolve()}"

    def require_shared_database(self, what: str) -> None:
        """Refuse to split the service into processes over SQLite: its writes take turns on
        a lock inside one process (api/db.py), and workers elsewhere could not reach it."""
        if self.database.startswith("sqlite"):
            raise SettingsError(
                f"{what} needs PostgreSQL (IMAGINE_DATABASE_URL=postgresql+psycopg://…): "
                "SQLite serves one process"
            )

    @property
    def storage_location(self) -> str:
        """Where image bytes live: a folder, or a URL (``api.storage.open_storage``)."""
        return self.storage_url or str(self.storage_dir or self.home / "images")

    @property
    def images_dir(self) -> Path:
        """The folder of a file store (not an s3:// one)."""
        return file_path(self.storage_location)

    def trusted_networks(self) -> tuple[IPNetwork, ...]:
        return parse_networks(self.trusted_proxies)
