"""Small MaxMind DB files for tests, written with mmdb-writer."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mmdb_writer import MMDBWriter
from netaddr import IPSet

NOW = datetime.now(UTC)


class _Writer(MMDBWriter):
    """mmdb-writer stamps the current time; tests need old build dates too."""

    def __init__(self, built: datetime, **kwargs: Any):
        super().__init__(**kwargs)
        self.built = built

    def _build_meta(self) -> dict[str, Any]:
        return {**super()._build_meta(), "build_epoch": int(self.built.timestamp())}


def city(country: str, *subdivisions: str, **traits: bool) -> dict[str, Any]:
    """A GeoIP2 City record: ``city("US", "IL")``; subdivisions largest first."""
    record: dict[str, Any] = {"country": {"iso_code": country, "names": {"en": country}}}
    if subdivisions:
        record["subdivisions"] = [{"iso_code": s} for s in subdivisions]
    if traits:
        record["traits"] = traits
    return record


def write_mmdb(
    path: Path,
    records: dict[str, Any],
    *,
    built: datetime = NOW,
    database_type: str = "GeoLite2-City",
    ip_version: int = 6,
) -> Path:
    """``records`` maps CIDR ranges (IPv4 and IPv6 alike in an IPv6 file) to records."""
    writer = _Writer(
        built,
        ip_version=ip_version,
        ipv4_compatible=ip_version == 6,
        database_type=database_type,
        languages=["en"],
        description="Imagine Me test data",
    )
    for cidr, record in records.items():
        writer.insert_network(IPSet([cidr]), record)
    writer.to_db_file(str(path))
    return path
