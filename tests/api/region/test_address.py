"""Which address a request comes from: trusted proxies, spoofed and garbage headers, IPv6."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from api.errors import InvalidAddress, RegionConfigError
from api.region.address import client_address, parse_ip, parse_networks, truncated

PROXIES = parse_networks(["10.0.0.0/8", "2001:db8:ffff::/48", "192.0.2.7"])
CLIENT = "203.0.113.50"  # stands for any public client; its class does not matter here


def ip(text: str):
    return ip_address(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8.8.8.8", "8.8.8.8"),
        (" 8.8.8.8:443 ", "8.8.8.8"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]:8443", "2001:db8::1"),
        ('"[2001:db8::1]"', "2001:db8::1"),
        ("::ffff:8.8.4.4", "8.8.4.4"),  # IPv4-mapped IPv6 is judged as IPv4
    ],
)
def test_parse_ip(text, expected):
    assert parse_ip(text) == ip(expected)


@pytest.mark.parametrize(
    "text", ["", "unknown", "_hidden", "8.8.8", "1.2.3.4.5", "::g", "x" * 5000]
)
def test_parse_ip_refuses_non_addresses(text):
    with pytest.raises(InvalidAddress) as err:
        parse_ip(text)
    assert len(str(err.value)) < 200  # garbage is not echoed back in full


def test_untrusted_peer_cannot_spoof_its_address():
    spoof = {"X-Forwarded-For": "8.8.8.8", "Forwarded": "for=8.8.8.8"}
    assert client_address("81.2.69.142", spoof, PROXIES) == ip("81.2.69.142")
    assert client_address("81.2.69.142", spoof, ()) == ip("81.2.69.142")
    assert client_address("81.2.69.142", spoof, PROXIES, "forwarded") == ip("81.2.69.142")


def test_no_trusted_proxies_means_headers_are_never_read():
    assert client_address("10.1.1.1", {"X-Forwarded-For": CLIENT}, ()) == ip("10.1.1.1")


def test_chain_through_several_trusted_proxies_is_walked_from_the_right():
    # The client forged "8.8.8.8"; the edge proxy 192.0.2.7 appended the real client,
    # the internal proxy 10.0.0.5 appended the edge proxy; the peer is 10.0.0.9.
    headers = {"x-forwarded-for": f"8.8.8.8, {CLIENT}, 192.0.2.7, 10.0.0.5"}
    assert client_address("10.0.0.9", headers, PROXIES) == ip(CLIENT)


def test_leftmost_entry_is_never_believed_even_when_it_looks_trusted():
    headers = {"X-Forwarded-For": f"10.0.0.1, {CLIENT}"}
    assert client_address("10.0.0.9", headers, PROXIES) == ip(CLIENT)


def test_repeated_header_lines_are_one_list():
    class Headers(dict):  # like Starlette's Headers: getlist gives every line
        def getlist(self, name):
            return [f"8.8.8.8, {CLIENT}", "192.0.2.7"] if name == "x-forwarded-for" else []

    assert client_address("10.0.0.9", Headers(), PROXIES) == ip(CLIENT)


def test_ipv6_clients_and_proxies():
    headers = {"X-Forwarded-For": "2a01:e0a::1, 2001:db8:ffff::2"}
    assert client_address("2001:db8:ffff::9", headers, PROXIES) == ip("2a01:e0a::1")
    headers = {"Forwarded": 'for="[2a01:e0a::1]:4711";proto=https, for="[2001:db8:ffff::2]"'}
    assert client_address("10.0.0.9", headers, PROXIES, "forwarded") == ip("2a01:e0a::1")
    assert client_address("::ffff:10.0.0.9", {"X-Forwarded-For": CLIENT}, PROXIES) == ip(CLIENT)


def test_forwarded_header_rfc7239():
    headers = {
        "Forwarded": f'for=8.8.8.8, For="{CLIENT}:1234";by=10.0.0.5;proto=http, for=10.0.0.5'
    }
    assert client_address("10.0.0.9", headers, PROXIES, "forwarded") == ip(CLIENT)


def test_only_the_configured_header_is_read():
    # The proxies write X-Forwarded-For and pass a client's own Forwarded header through.
    headers = {"Forwarded": "for=8.8.8.8", "X-Forwarded-For": CLIENT}
    assert client_address("10.0.0.9", headers, PROXIES) == ip(CLIENT)
    with pytest.raises(ValueError, match="header must be one of"):
        client_address("10.0.0.9", headers, PROXIES, "x-real-ip")


@pytest.mark.parametrize(
    "value",
    [
        f"garbage, {CLIENT}",
        f";;;,, ,{CLIENT}",
        f"\x00\xff, {CLIENT}",
        f"{'9' * 10000}, {CLIENT}",
        f"unknown, {CLIENT}, 10.0.0.5",
    ],
)
def test_garbage_left_of_the_client_is_ignored(value):
    assert client_address("10.0.0.9", {"X-Forwarded-For": value}, PROXIES) == ip(CLIENT)


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("x-forwarded-for", f"{CLIENT}, unknown"),
        ("x-forwarded-for", f"{CLIENT}, "),
        ("x-forwarded-for", "garbage"),
        ("forwarded", "for=_hidden"),
        ("forwarded", f"for={CLIENT}, proto=https"),
        ("forwarded", 'for="unterminated'),
    ],
)
def test_unreadable_hop_from_a_trusted_proxy_gives_no_address(header, value):
    assert client_address("10.0.0.9", {header: value}, PROXIES, header) is None


def test_trusted_peer_without_header_and_all_trusted_chains():
    assert client_address("10.0.0.9", {}, PROXIES) == ip("10.0.0.9")
    headers = {"X-Forwarded-For": "10.3.3.3, 10.0.0.5"}
    assert client_address("10.0.0.9", headers, PROXIES) == ip("10.3.3.3")


@pytest.mark.parametrize("peer", [None, "", "testclient", "not an ip"])
def test_missing_or_unparsable_peer_gives_no_address(peer):
    assert client_address(peer, {"X-Forwarded-For": CLIENT}, PROXIES) is None


def test_truncation_for_logs():
    assert truncated(ip("81.2.69.142")) == "81.2.69.0/24"
    assert truncated(ip("2a01:e0a:1:2:3::9")) == "2a01:e0a:1::/48"


def test_bad_trusted_proxy_setting():
    with pytest.raises(RegionConfigError, match="trusted proxy"):
        parse_networks(["10.0.0.0/8", "corp-net"])
