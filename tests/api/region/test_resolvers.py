"""The geo resolvers: iptocc on well-known public addresses, mmdb on files written here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from ipaddress import ip_address

import pytest

from api.errors import RegionConfigError
from api.region.resolvers import (
    RESOLVERS,
    GeoConfig,
    IptoccResolver,
    Location,
    MmdbResolver,
    get_resolver,
)
from tests.api.region.geodb import NOW, city, write_mmdb


@pytest.fixture(scope="module")
def iptocc() -> IptoccResolver:
    return IptoccResolver()


@pytest.mark.parametrize(
    ("address", "country"),
    [
        ("8.8.8.8", "US"),  # Google Public DNS (ARIN)
        ("2001:4860:4860::8888", "US"),
        ("1.0.16.1", "JP"),  # APNIC, the iptocc documentation's example
        ("133.11.0.1", "JP"),  # University of Tokyo
        ("212.27.48.10", "FR"),  # Free (RIPE)
        ("2a01:e0a::1", "FR"),
        ("81.2.69.142", "GB"),  # MaxMind's documented test address
    ],
)
def test_iptocc_countries(iptocc, address, country):
    assert iptocc.locate(ip_address(address)) == Location(country=country)


def test_iptocc_describes_its_data(iptocc):
    assert iptocc.database.startswith("iptocc ")
    assert iptocc.build_date is None  # the wheel does not say when its data was built


def test_mmdb_city_gives_countries_and_subdivisions(tmp_path):
    path = write_mmdb(
        tmp_path / "city.mmdb",
        {
            "23.1.0.0/16": city("US", "IL"),
            "23.2.0.0/16": city("US"),  # a US record without a subdivision
            "2a01:e0a::/32": city("FR", "IDF", "75C"),
            "5.5.5.0/24": city("NL", is_anonymous_vpn=True),
        },
    )
    geo = MmdbResolver([path])
    assert geo.locate(ip_address("23.1.2.3")) == Location("US", "US-IL")
    assert geo.locate(ip_address("23.2.2.3")) == Location("US", None)
    assert geo.locate(ip_address("2a01:e0a::1")) == Location("FR", "FR-75C")
    assert geo.locate(ip_address("5.5.5.5")) == Location("NL", None, anonymous=True)
    assert geo.locate(ip_address("9.9.9.9")) is None  # missing record
    assert geo.database == "GeoLite2-City"
    assert abs(geo.build_date - NOW) < timedelta(seconds=2)


def test_mmdb_country_kind_and_ip_location_db_format(tmp_path):
    maxmind = write_mmdb(
        tmp_path / "country.mmdb",
        {"81.2.69.0/24": city("GB")},
        database_type="GeoLite2-Country",
    )
    ipv4_only = write_mmdb(
        tmp_path / "dbip-country-ipv4.mmdb",
        {"133.11.0.0/16": {"country_code": "JP"}, "1.1.1.0/24": {"continent": "OC"}},
        database_type="dbip-country",
        ip_version=4,
    )
    geo = MmdbResolver([ipv4_only, maxmind])
    assert geo.locate(ip_address("133.11.0.1")) == Location("JP")
    assert geo.locate(ip_address("81.2.69.142")) == Location("GB")
    assert geo.locate(ip_address("1.1.1.1")) is None  # a record without a country
    assert geo.locate(ip_address("2a01:e0a::1")) is None  # skips the IPv4-only file
    assert geo.database == "dbip-country, GeoLite2-Country"


def test_mmdb_build_date_is_the_oldest_file(tmp_path):
    old = NOW - timedelta(days=90)
    a = write_mmdb(tmp_path / "a.mmdb", {"8.8.8.0/24": city("US")}, built=old)
    b = write_mmdb(tmp_path / "b.mmdb", {"9.9.9.0/24": city("US")})
    built = MmdbResolver([b, a]).build_date
    assert built == datetime.fromtimestamp(int(old.timestamp()), UTC)


def test_mmdb_that_cannot_be_opened_is_a_config_error(tmp_path):
    (tmp_path / "junk.mmdb").write_bytes(b"not a database")
    for paths in ([tmp_path / "junk.mmdb"], [tmp_path / "missing.mmdb"], []):
        with pytest.raises(RegionConfigError):
            MmdbResolver(paths)


def test_registry_picks_by_name(tmp_path):
    path = write_mmdb(tmp_path / "c.mmdb", {"8.8.8.0/24": city("US", "CA")})
    assert get_resolver(GeoConfig()).name == "iptocc"
    assert get_resolver(GeoConfig("mmdb", (path,))).name == "mmdb"
    assert set(RESOLVERS) == {"iptocc", "mmdb"}
    with pytest.raises(RegionConfigError, match="unknown geo resolver"):
        get_resolver(GeoConfig("ipinfo"))
