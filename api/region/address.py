"""Which address a request comes from, and how it is shortened for logs.

The socket peer is the client unless it is one of the operator's trusted
proxies. Only then is the forwarding header read, from the right: each trusted
proxy appends the address it received from, so the rightmost entry that is
not a trusted proxy is the client. Entries left of it were written by the
client and are never believed. Only the one header the proxies are
configured to write is read (``X-Forwarded-For`` or RFC 7239 ``Forwarded``):
a proxy that sets one passes the other through from the client untouched.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

from api.errors import InvalidAddress, RegionConfigError

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network
FORWARDING_HEADERS = ("x-forwarded-for", "forwarded")

# One RFC 7239 element's for= value: a token or a quoted string.
_FOR = re.compile(r'(?:^|;)\s*for\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*)', re.IGNORECASE)
_ELEMENTS = re.compile(r'(?:[^,"]|"(?:[^"\\]|\\.)*")+')  # split on commas outside quotes


def parse_ip(text: str) -> IPAddress:
    """``1.2.3.4``, ``1.2.3.4:80``, ``2001:db8::1``, ``[2001:db8::1]:443``; IPv4-mapped → IPv4."""
    value = text.strip().strip('"')
    if value.startswith("["):  # [v6] or [v6]:port
        value = value[1:].split("]", 1)[0]
    elif value.count(":") == 1:  # v4:port
        value = value.split(":", 1)[0]
    try:
        address = ip_address(value)
    except ValueError:
        raise InvalidAddress(f"{text[:100]!r} is not an IPv4 or IPv6 address") from None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDR ranges (``10.0.0.0/8``, ``2001:db8::/32``) or single addresses, for trusted proxies."""
    try:
        return tuple(ip_network(v.strip(), strict=False) for v in values if v.strip())
    except ValueError as exc:
        raise RegionConfigError(f"trusted proxy networks: {exc}") from None


def client_address(
    peer: str | None,
    headers: Mapping[str, str],
    trusted: Sequence[IPNetwork] = (),
    header: str = "x-forwarded-for",
) -> IPAddress | None:
    """The client's address, or None when it cannot be known (the gate then denies).

    ``peer`` is the socket peer's host. ``headers`` is the request's headers
    (names in any case; a mapping with ``getlist``, like Starlette's, gives
    repeated headers too). ``header`` is the one forwarding header the trusted
    proxies write.
    """
    if header not in FORWARDING_HEADERS:
        raise ValueError(f"header must be one of {FORWARDING_HEADERS}, got {header!r}")
    try:
        address = parse_ip(peer) if peer else None
    except InvalidAddress:
        return None
    if address is None or not _is_trusted(address, trusted):
        return address
    hops = _hops(_header_values(headers, header), forwarded=header == "forwarded")
    for hop in reversed(hops):
        if hop is None:
            return None  # a hop we cannot read: whatever lies left of it is unknowable
        address = hop
        if not _is_trusted(hop, trusted):
            return hop
    return address  # every hop is a trusted proxy: the request began inside those networks


def truncated(address: IPAddress) -> str:
    """The /24 (IPv4) or /48 (IPv6) network around ``address``: what logs may keep."""
    prefix = 24 if address.version == 4 else 48
    host_bits = address.max_prefixlen - prefix
    return f"{type(address)(int(address) >> host_bits << host_bits)}/{prefix}"


def _is_trusted(address: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in trusted)


def _header_values(headers: Mapping[str, str], name: str) -> list[str]:
    getlist = getattr(headers, "getlist", None)
    if callable(getlist):
        return [str(v) for v in getlist(name)]
    return [str(v) for k, v in headers.items() if k.lower() == name]


def _hops(values: list[str], forwarded: bool) -> list[IPAddress | None]:
    """Each hop of the header(s), left to right; None for an entry that is not an address."""
    hops: list[IPAddress | None] = []
    for value in values:
        entries = _ELEMENTS.findall(value) if forwarded else value.split(",")
        for entry in entries:
            if forwarded:
                match = _FOR.search(entry.strip())
                entry = match.group(1) if match else ""
            try:
                hops.append(parse_ip(entry))
            except InvalidAddress:
                hops.append(None)  # "unknown", an obfuscated "_id", garbage, or empty
    return hops
