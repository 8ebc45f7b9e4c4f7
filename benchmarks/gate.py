"""Region gate throughput: decisions per second for a mixed batch of addresses, per resolver.

    python benchmarks/gate.py [--n 20000] [--mmdb FILE ...]

The batch mixes public IPv4 and IPv6 addresses (most with a record, some
without), private and loopback clients (a local region is set), anonymizer-list
hits and a spread of declared residences, as the service sees them. Without
``--mmdb`` a synthetic GeoLite2-City-shaped file of 5,000 networks is written
to a temporary folder (needs the dev extra's ``mmdb-writer``). Audit logging is
on (one JSON line per decision into memory) unless ``--no-audit``.
"""

from __future__ import annotations

import argparse
import io
import logging
import random
import sys
import tempfile
import time
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.region import GeoConfig, RegionConfig, build_gate, client_address, parse_networks

PLACES = [("US", "CA"), ("US", "NY"), ("US", "IL"), ("US", "TX"), ("FR", "IDF"), ("JP", "13")]
RESIDENCES = ["US-CA", "US-NY", "US-IL", "FR", "US", None]
WELL_KNOWN = ["8.8.8.8", "1.0.16.1", "133.11.0.1", "212.27.48.10", "81.2.69.142", "2a01:e0a::1"]


def synthetic_networks(rng: random.Random, n: int) -> list[tuple[str, tuple[str, str]]]:
    """``n`` distinct public /16 (IPv4) and /32 (IPv6) networks with a place each."""
    nets: dict[str, tuple[str, str]] = {}
    while len(nets) < n:
        if rng.random() < 0.8:
            a = IPv4Address(rng.choice([3, 4, 8, 23, 24, 50, 52, 63, 64, 66, 68, 70, 72]) << 24)
            net = f"{IPv4Address(int(a) | rng.randrange(256) << 16)}/16"
        else:
            net = f"2600:{rng.randrange(1, 0xFFFF):x}::/32"
        nets[net] = rng.choice(PLACES)
    return list(nets.items())


def write_city_mmdb(path: Path, networks: list[tuple[str, tuple[str, str]]]) -> Path:
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-City")
    for net, (country, sub) in networks:
        record = {"country": {"iso_code": country}, "subdivisions": [{"iso_code": sub}]}
        writer.insert_network(IPSet([net]), record)
    writer.to_db_file(str(path))
    return path


def batch(rng: random.Random, networks: list[tuple[str, tuple[str, str]]], n: int) -> list:
    """(address, residence) pairs: 70% in known networks, 10% unknown, 10% private, ..."""
    out = []
    for _ in range(n):
        roll = rng.random()
        if roll < 0.70:
            net = rng.choice(networks)[0]
            base = net.split("/")[0]
            if ":" in base:
                address = IPv6Address(int(IPv6Address(base)) + rng.randrange(1 << 64))
            else:
                address = IPv4Address(int(IPv4Address(base)) + rng.randrange(1 << 16))
            text = str(address)
        elif roll < 0.80:
            text = f"{rng.randrange(90, 200)}.{rng.randrange(256)}.{rng.randrange(256)}.7"
        elif roll < 0.90:
            text = rng.choice(["127.0.0.1", "10.1.2.3", "192.168.0.10", "::1", "fd00::5"])
        elif roll < 0.95:
            text = f"185.220.101.{rng.randrange(256)}"  # on the anonymizer list below
        else:
            text = rng.choice(WELL_KNOWN)
        out.append((text, rng.choice(RESIDENCES)))
    return out


def measure(gate, items, feature_cycle) -> float:
    from api.region import parse_ip

    parsed = [(parse_ip(a), r) for a, r in items]
    start = time.perf_counter()
    for i, (address, residence) in enumerate(parsed):
        gate.decide(feature_cycle[i % len(feature_cycle)], address, residence)
    return len(parsed) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="decisions per resolver")
    parser.add_argument("--mmdb", nargs="+", type=Path, help="use these .mmdb files")
    parser.add_argument("--no-audit", action="store_true", help="leave audit logging off")
    args = parser.parse_args()

    rng = random.Random(0)
    networks = synthetic_networks(rng, 5_000)
    items = batch(rng, networks, args.n)
    features = ["enroll", "generate", "generate", "gallery"]
    if not args.no_audit:
        audit = logging.getLogger("api.region.audit")
        audit.setLevel(logging.INFO)
        audit.addHandler(logging.StreamHandler(io.StringIO()))
        audit.propagate = False

    with tempfile.TemporaryDirectory() as tmp:
        anonymizers = Path(tmp) / "anonymizers.txt"
        anonymizers.write_text("185.220.101.0/24\n2001:67c:e60::/48\n")
        mmdb = args.mmdb or [write_city_mmdb(Path(tmp) / "city.mmdb", networks)]
        common = {"local_region": "US-CA", "anonymizer_file": anonymizers}
        print(f"{args.n} decisions per resolver; features {features}; audit {not args.no_audit}")
        for geo in (GeoConfig("iptocc"), GeoConfig("mmdb", tuple(mmdb))):
            gate = build_gate(RegionConfig(geo=geo, **common))
            measure(gate, items[:500], features)  # warm caches
            rate = measure(gate, items, features)
            print(f"  {geo.resolver:7s} {rate:10,.0f} decisions/s   ({gate.resolver.database})")

    trusted = parse_networks(["10.0.0.0/8"])
    headers = {"x-forwarded-for": "8.8.8.8, 81.2.69.142, 10.0.0.7, 10.0.0.5"}
    start = time.perf_counter()
    for _ in range(args.n):
        client_address("10.0.0.9", headers, trusted)
    rate = args.n / (time.perf_counter() - start)
    print(f"  client_address with a 4-entry X-Forwarded-For: {rate:10,.0f} /s")


if __name__ == "__main__":
    main()
