"""The region gate's decisions: the default policy by address and residence, every reason code."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from ipaddress import ip_address
from pathlib import Path

import pytest

from api.errors import InvalidRegion, RegionConfigError, RegionUnavailable
from api.region import RESOLVERS, GeoConfig, RegionConfig, RegionGate, build_gate
from api.region.gate import REASON_CODES, Decision
from api.region.resolvers import Location
from tests.api.region.geodb import NOW, city, write_mmdb

# One public network per place in the test database, IPv4 and IPv6.
PLACES = {
    "US-CA": ("8.8.8.8", "2600:1::1"),
    "US-IL": ("23.1.2.3", "2600:2::1"),
    "US-TX": ("24.1.2.3", "2600:3::1"),
    "FR": ("212.27.48.10", "2a01:e0a::1"),
    "JP": ("133.11.0.1", "2400:1::1"),
}
RECORDS = {
    "8.8.8.0/24": city("US", "CA"),
    "2600:1::/32": city("US", "CA"),
    "23.1.0.0/16": city("US", "IL"),
    "2600:2::/32": city("US", "IL"),
    "24.1.0.0/16": city("US", "TX"),
    "2600:3::/32": city("US", "TX"),
    "212.27.48.0/24": city("FR", "IDF", "75C"),
    "2a01:e0a::/32": city("FR", "IDF", "75C"),
    "133.11.0.0/16": city("JP", "13"),
    "2400:1::/32": city("JP", "13"),
    "4.4.4.0/24": city("US", "NY", is_anonymous_proxy=True),
    "5.5.5.0/24": {"country_code": "EU"},  # not an ISO 3166-1 country
    "6.6.6.0/24": {"country_code": "US-CA"},
}


@pytest.fixture(scope="module")
def city_db(tmp_path_factory) -> Path:
    return write_mmdb(tmp_path_factory.mktemp("geo") / "city.mmdb", RECORDS)


@pytest.fixture
def audit() -> list[Decision]:
    return []


@pytest.fixture
def gate(city_db, audit) -> RegionGate:
    return build_gate(RegionConfig(geo=GeoConfig("mmdb", (city_db,))), audit=audit.append)


@pytest.fixture
def iptocc_gate(audit) -> RegionGate:
    return build_gate(RegionConfig(), audit=audit.append)


def ip(text: str):
    return ip_address(text)


@pytest.mark.parametrize("feature", ["enroll", "generate"])
@pytest.mark.parametrize("version", [0, 1], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize(
    ("place", "allowed"),
    [("US-CA", True), ("US-IL", False), ("US-TX", False), ("FR", False), ("JP", False)],
)
def test_default_policy_by_address(gate, feature, version, place, allowed):
    d = gate.decide(feature, ip(PLACES[place][version]), address_only=True)
    assert d.allowed is allowed
    assert d.reason == (None if allowed else "region_denied")
    assert d.country == place[:2] and d.subdivision.startswith(place)
    assert d.subdivision_verified is True


@pytest.mark.parametrize("feature", ["enroll", "generate"])
@pytest.mark.parametrize(
    ("residence", "allowed", "reason"),
    [
        ("US-CA", True, None),
        ("us-ny", True, None),
        ("US-IL", False, "region_denied"),
        ("US-TX", False, "region_denied"),
        ("FR", False, "region_denied"),
        ("FR-75C", False, "region_denied"),
        ("JP", False, "region_denied"),
        ("US", False, "residence_required"),  # the policy has rules for US states
        (None, False, "residence_required"),
    ],
)
def test_default_policy_by_declared_residence(gate, feature, residence, allowed, reason):
    d = gate.decide(feature, ip(PLACES["US-CA"][0]), residence)
    assert (d.allowed, d.reason) == (allowed, reason)


def test_most_restrictive_of_address_and_residence_applies(gate):
    d = gate.decide("enroll", ip(PLACES["US-IL"][0]), "US-CA")
    assert not d.allowed and d.reason == "region_denied" and "US-IL" in d.reasons[0].message
    d = gate.decide("enroll", ip(PLACES["FR"][1]), "US-CA")
    assert not d.allowed and d.country == "FR" and d.subdivision == "FR-75C"
    d = gate.decide("enroll", ip(PLACES["JP"][0]), "US-TX")
    assert [r.code for r in d.reasons] == ["region_denied", "region_denied"]


@pytest.mark.parametrize(
    ("address", "country", "allowed"),
    [("8.8.8.8", "US", True), ("212.27.48.10", "FR", False), ("133.11.0.1", "JP", False)],
)
def test_iptocc_judges_countries_and_leaves_states_to_the_residence(
    iptocc_gate, address, country, allowed
):
    d = iptocc_gate.decide("enroll", ip(address), address_only=True)
    assert (d.country, d.subdivision, d.subdivision_verified) == (country, None, False)
    assert d.allowed is allowed
    for state, ok in (("US-CA", True), ("US-IL", False), ("US-TX", False), ("US", False)):
        d = iptocc_gate.decide("generate", ip(address), state)
        assert d.allowed is (allowed and ok)
        assert d.subdivision_verified is False


def test_gallery_is_allowed_everywhere_even_when_nothing_else_is(tmp_path, city_db):
    stale = write_mmdb(tmp_path / "old.mmdb", RECORDS, built=NOW - timedelta(days=400))
    anonymizers = tmp_path / "vpn.txt"
    anonymizers.write_text("212.27.48.0/24\n")
    config = RegionConfig(geo=GeoConfig("mmdb", (stale,)), anonymizer_file=anonymizers)
    gate = build_gate(config, audit=lambda d: None)
    for address in (None, ip("10.0.0.1"), ip("212.27.48.10"), ip("23.1.2.3"), ip("9.9.9.9")):
        d = gate.decide("gallery", address)
        assert d.allowed and d.reasons == (), address


def test_every_reason_code_is_reachable(gate, tmp_path):
    seen = set()
    for address, residence in [
        (None, "US-CA"),
        ("4.4.4.4", "US-CA"),
        ("23.1.2.3", "US-CA"),
        ("8.8.8.8", None),
    ]:
        seen |= {r.code for r in gate.decide("enroll", address and ip(address), residence).reasons}
    stale = write_mmdb(tmp_path / "old.mmdb", RECORDS, built=NOW - timedelta(days=46))
    old = build_gate(RegionConfig(geo=GeoConfig("mmdb", (stale,))), audit=lambda d: None)
    seen |= {r.code for r in old.decide("enroll", ip("8.8.8.8"), "US-CA").reasons}
    assert seen == set(REASON_CODES)


@pytest.mark.parametrize(
    ("address", "words"),
    [
        (None, "unknown"),
        ("10.1.2.3", "private"),
        ("127.0.0.1", "private or loopback"),
        ("::1", "loopback"),
        ("fd00::7", "private"),
        ("100.64.1.1", "reserved"),  # carrier-grade NAT: no place
        ("224.0.0.1", "reserved"),
        ("9.9.9.9", "no record"),
        ("5.5.5.5", "not an ISO 3166-1 country"),
        ("6.6.6.6", "not an ISO 3166-1 country"),
    ],
)
def test_unknown_location_fails_closed(gate, address, words):
    d = gate.decide("enroll", address and ip(address), "US-CA")
    assert not d.allowed and d.reason == "unknown_location"
    assert words in d.reasons[0].message
    assert d.country is None


class BrokenResolver:
    name = "broken"
    database = "broken 1.0"
    build_date = None

    def locate(self, address):
        raise RuntimeError(f"database corrupt near {address}")


class EverywhereIsFrance:
    name = "france"
    database = "france 1.0"
    build_date = NOW

    def locate(self, address):
        return Location("FR", "FR-75C")


def test_lookup_exception_denies(monkeypatch, caplog):
    monkeypatch.setitem(RESOLVERS, "broken", lambda config: BrokenResolver())
    gate = build_gate(RegionConfig(geo=GeoConfig("broken")), audit=lambda d: None)
    with caplog.at_level(logging.WARNING):
        d = gate.decide("generate", ip("8.8.8.8"), "US-CA")
    assert (d.allowed, d.reason, d.resolver) == (False, "unknown_location", "broken")
    assert "lookup failed" in d.reasons[0].message
    assert "8.8.8.8" not in caplog.text  # the exception text holds the address


def test_stale_database_denies_and_says_how_old(monkeypatch):
    monkeypatch.setitem(RESOLVERS, "france", lambda config: EverywhereIsFrance())
    fresh = build_gate(RegionConfig(geo=GeoConfig("france")), audit=lambda d: None)
    assert fresh.decide("enroll", ip("8.8.8.8"), "US-CA").reason == "region_denied"
    later = build_gate(
        RegionConfig(geo=GeoConfig("france"), max_database_age_days=30),
        audit=lambda d: None,
        clock=lambda: NOW + timedelta(days=31),
    )
    d = later.decide("enroll", ip("8.8.8.8"), "US-CA")
    assert d.reason == "stale_geo_database" and "31 days" in d.reasons[0].message
    assert d.database_build_date == NOW


def test_anonymizer_list_and_database_traits(tmp_path, city_db):
    listed = tmp_path / "anonymizers.txt"
    listed.write_text("# Tor exits\n8.8.8.0/29\n2600:1::/48  # a VPN\n\n")
    config = RegionConfig(geo=GeoConfig("mmdb", (city_db,)), anonymizer_file=listed)
    gate = build_gate(config, audit=lambda d: None)
    for address in ("8.8.8.3", "2600:1:0:5::1", "4.4.4.4"):
        d = gate.decide("enroll", ip(address), "US-CA")
        assert (d.allowed, d.reason) == (False, "anonymizer"), address
    assert gate.decide("enroll", ip("8.8.8.9"), "US-CA").allowed  # outside the /29
    assert gate.decide("enroll", ip("2600:1:1::1"), "US-CA").allowed  # outside the /48


def test_anonymizers_are_not_blocked_where_the_policy_says_so(tmp_path, city_db):
    policy = tmp_path / "policy.toml"
    policy.write_text(
        'version = "open"\n[enroll]\nallow = ["US"]\nblock_anonymizers = false\n'
        '[generate]\nallow = ["US"]\n[gallery]\nallow = ["*"]\n'
    )
    config = RegionConfig(policy_file=policy, geo=GeoConfig("mmdb", (city_db,)))
    gate = build_gate(config, audit=lambda d: None)
    assert gate.decide("enroll", ip("4.4.4.4"), "US-NY").allowed
    assert gate.decide("generate", ip("4.4.4.4"), "US-NY").reason == "anonymizer"
    assert gate.decide("enroll", ip("23.1.2.3"), "US-IL").allowed  # no state rules here
    assert gate.policy.version == "open"


def test_local_region_for_loopback_and_private_clients(city_db):
    config = RegionConfig(geo=GeoConfig("mmdb", (city_db,)), local_region="us-ca")
    gate = build_gate(config, audit=lambda d: None)
    for address in ("127.0.0.1", "192.168.1.20", "::1", "fd12::3"):
        d = gate.decide("enroll", ip(address), "US-CA")
        assert d.allowed and (d.subdivision, d.resolver) == ("US-CA", "local_region")
    assert gate.decide("enroll", ip("100.64.0.1"), "US-CA").reason == "unknown_location"
    illinois = build_gate(RegionConfig(local_region="US-IL"), audit=lambda d: None)
    assert illinois.decide("enroll", ip("127.0.0.1"), "US-CA").reason == "region_denied"
    with pytest.raises(RegionConfigError, match="local region"):
        build_gate(RegionConfig(local_region="Chicago"))


def test_ipv4_mapped_addresses_are_judged_as_ipv4(gate):
    d = gate.decide("enroll", ip("::ffff:23.1.2.3"), "US-CA")
    assert (d.subdivision, d.network, d.reason) == ("US-IL", "23.1.2.0/24", "region_denied")


def test_audit_event_per_decision_without_the_full_address(city_db, caplog):
    gate = build_gate(RegionConfig(geo=GeoConfig("mmdb", (city_db,))))
    with caplog.at_level(logging.INFO, logger="api.region.audit"):
        gate.decide("enroll", ip("23.1.2.3"), "US-CA")
        gate.decide("generate", ip("2600:1::1"), "US-CA")
        gate.decide("enroll", ip("9.9.9.9"), "US-CA")
    events = [json.loads(r.getMessage()) for r in caplog.records]
    assert [e["event"] for e in events] == ["region_decision"] * 3
    first = events[0]
    assert first["feature"] == "enroll" and first["decision"] == "deny"
    assert (first["reason"], first["country"], first["subdivision"]) == (
        "region_denied",
        "US",
        "US-IL",
    )
    assert first["policy_version"] == "default-2026-11"
    assert (first["resolver"], first["database"]) == ("mmdb", "GeoLite2-City")
    assert first["database_build_date"].startswith(NOW.date().isoformat())
    assert [e["network"] for e in events] == ["23.1.2.0/24", "2600:1::/48", "9.9.9.0/24"]
    for full in ("23.1.2.3", "2600:1::1", "9.9.9.9"):
        assert full not in caplog.text
    assert caplog.records[0].event == events[0]  # structured handlers get the dict


def test_require_raises_451_with_the_reason(gate):
    assert gate.require("enroll", ip("8.8.8.8"), "US-CA").allowed
    with pytest.raises(RegionUnavailable) as err:
        gate.require("enroll", ip("8.8.8.8"), "US-TX")
    assert (err.value.code, err.value.status, err.value.reason) == (
        "region_unavailable",
        451,
        "region_denied",
    )


def test_invalid_residence_is_refused(gate):
    with pytest.raises(InvalidRegion):
        gate.decide("enroll", ip("8.8.8.8"), "Illinois")
    with pytest.raises(ValueError, match="feature"):
        gate.decide("upload", ip("8.8.8.8"), "US-CA")
