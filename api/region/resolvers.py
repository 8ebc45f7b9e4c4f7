"""Where an address is: the ``GeoResolver`` protocol, its two backends and their registry.

- ``iptocc`` (default): offline country lookup from the Regional Internet
  Registries' allocation data, embedded in the iptocc wheel. Countries only;
  the data carries no build date.
- ``mmdb``: one or more MaxMind DB files read with ``maxminddb``: GeoIP2 /
  GeoLite2 Country or City (City records carry ISO 3166-2 subdivisions), or
  any compatible file with a ``country_code`` field such as ip-location-db's.
  Their ``build_epoch`` is the build date the gate checks for staleness.
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any, Protocol

from api.errors import RegionConfigError

IPAddress = IPv4Address | IPv6Address

# MaxMind traits that mark a network as hiding its users (Anonymous IP and
# Insights data; GeoLite2 only has the deprecated is_anonymous_proxy).
ANONYMOUS_TRAITS = (
    "is_anonymous",
    "is_anonymous_proxy",
    "is_anonymous_vpn",
    "is_hosting_provider",
    "is_public_proxy",
    "is_residential_proxy",
    "is_tor_exit_node",
)
_SUBDIVISION = re.compile(r"[A-Z0-9]{1,3}")


@dataclass(frozen=True)
class Location:
    country: str  # what the data says; ISO 3166-1 alpha-2 when the data is sound
    subdivision: str | None = None  # most specific ISO 3166-2 code, e.g. "US-IL"; None: unknown
    anonymous: bool = False  # the database itself flags the network as a proxy, VPN or Tor exit


class GeoResolver(Protocol):
    name: str  # registry name: "iptocc", "mmdb"
    database: str  # what answers, for the audit: "iptocc 3.3.170", "GeoLite2-City"
    build_date: datetime | None  # when that data was built (UTC); None when it does not say

    def locate(self, address: IPAddress) -> Location | None:
        """Where the public ``address`` is, or None when the data has no record of it."""
        ...


@dataclass(frozen=True)
class GeoConfig:
    resolver: str = "iptocc"
    mmdb: tuple[Path, ...] = ()  # for "mmdb": files tried in order (e.g. an IPv4 and an IPv6 one)


class IptoccResolver:
    name = "iptocc"
    build_date: datetime | None = None

    def __init__(self) -> None:
        import iptocc

        self._country_code = iptocc.country_code
        self.database = f"iptocc {importlib.metadata.version('iptocc')}"

    def locate(self, address: IPAddress) -> Location | None:
        # iptocc answers None for private, reserved and invalid input alike; the
        # gate only asks about global addresses it has already parsed.
        code = self._country_code(str(address))
        return Location(country=code) if code else None


class MmdbResolver:
    name = "mmdb"

    def __init__(self, paths: Sequence[Path]):
        import maxminddb

        if not paths:
            raise RegionConfigError("the mmdb resolver needs .mmdb files: set IMAGINE_GEO_MMDB")
        self._readers: list[tuple[Any, int]] = []  # (reader, ip_version of its search tree)
        kinds, built = [], []
        for path in paths:
            try:
                reader = maxminddb.open_database(str(path))
            except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
                raise RegionConfigError(f"cannot open geo database {path}: {exc}") from None
            meta = reader.metadata()
            self._readers.append((reader, meta.ip_version))
            kinds.append(meta.database_type)
            built.append(datetime.fromtimestamp(meta.build_epoch, UTC))
        self.database = ", ".join(kinds)
        self.build_date: datetime | None = min(built)  # the oldest file decides staleness

    def locate(self, address: IPAddress) -> Location | None:
        for reader, ip_version in self._readers:
            if address.version == 6 and ip_version == 4:
                continue  # an IPv4-only file cannot answer for IPv6
            location = location_of(reader.get(address))
            if location is not None:
                return location
        return None


def location_of(record: object) -> Location | None:
    """A MaxMind (``country.iso_code``) or ip-location-db (``country_code``) record's location."""
    if not isinstance(record, dict):
        return None
    country = record.get("country")
    code = country.get("iso_code") if isinstance(country, dict) else record.get("country_code")
    if not isinstance(code, str) or not code:
        return None  # e.g. only a registered_country or a continent: not good enough to gate on
    code = code.upper()
    subdivision = None
    subdivisions = record.get("subdivisions")
    if isinstance(subdivisions, list) and subdivisions:
        iso = subdivisions[-1].get("iso_code") if isinstance(subdivisions[-1], dict) else None
        if isinstance(iso, str) and _SUBDIVISION.fullmatch(iso.upper()):
            subdivision = f"{code}-{iso.upper()}"
    traits = record.get("traits")
    anonymous = isinstance(traits, dict) and any(traits.get(t) is True for t in ANONYMOUS_TRAITS)
    return Location(country=code, subdivision=subdivision, anonymous=anonymous)


RESOLVERS: dict[str, Callable[[GeoConfig], GeoResolver]] = {
    "iptocc": lambda config: IptoccResolver(),
    "mmdb": lambda config: MmdbResolver(config.mmdb),
}


def get_resolver(config: GeoConfig) -> GeoResolver:
    if config.resolver not in RESOLVERS:
        raise RegionConfigError(
            f"unknown geo resolver {config.resolver!r}; choose one of {sorted(RESOLVERS)}"
        )
    return RESOLVERS[config.resolver](config)
