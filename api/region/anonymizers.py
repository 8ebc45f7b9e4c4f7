"""The operator's list of anonymizing networks: VPN providers, hosting ranges, Tor exits.

A text file with one CIDR range or address per line; ``#`` starts a comment.
Lookups cost one set probe per distinct prefix length in the list, so a list
of tens of thousands of ranges stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv6Address, ip_network
from pathlib import Path

from api.errors import RegionConfigError

IPAddress = IPv4Address | IPv6Address


class AnonymizerList:
    def __init__(self, networks: Iterable[str] = (), source: str = "<list>"):
        # {(ip version, prefix length): {network address as int}}
        self._by_prefix: dict[tuple[int, int], set[int]] = {}
        self.size = 0
        for number, line in enumerate(networks, start=1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            try:
                net = ip_network(text, strict=False)
            except ValueError:
                raise RegionConfigError(
                    f"anonymizer list {source}, line {number}: {text[:80]!r} is not a CIDR range"
                ) from None
            self._by_prefix.setdefault((net.version, net.prefixlen), set()).add(
                int(net.network_address)
            )
            self.size += 1

    @classmethod
    def from_file(cls, path: Path) -> AnonymizerList:
        try:
            lines = Path(path).read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise RegionConfigError(f"cannot read anonymizer list {path}: {exc}") from None
        return cls(lines, source=str(path))

    def __contains__(self, address: IPAddress) -> bool:
        bits = address.max_prefixlen
        value = int(address)
        for (version, prefix), starts in self._by_prefix.items():
            if version == address.version:
                mask = ((1 << prefix) - 1) << (bits - prefix)
                if (value & mask) in starts:
                    return True
        return False
