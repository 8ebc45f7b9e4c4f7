"""``imagine gate IP [--feature F] [--residence CODE] [--json]``: what the region gate decides.

For operators: the same decision the service makes, with its reasons. Without
``--residence`` the address alone is judged. Exit 0 for allow and deny alike;
an address or region code that does not parse is a user error (exit 2).
"""

from __future__ import annotations

import argparse

from api.region import FEATURES, RESOLVERS, Decision, build_gate, parse_ip, parse_region
from api.settings import ServiceSettings
from imagine.cli.output import emit_json

NAME = "gate"
HELP = "Judge a client address (and a declared residence) against the region policy."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ip", metavar="IP", help="the client's IPv4 or IPv6 address")
    parser.add_argument("--feature", choices=FEATURES, default="enroll", help="default: enroll")
    parser.add_argument(
        "--residence",
        metavar="CODE",
        help="declared residence, ISO 3166-1 or 3166-2 (US, US-CA); without it, the address alone",
    )
    parser.add_argument("--resolver", choices=sorted(RESOLVERS), help="geo resolver to use")
    parser.add_argument("--json", action="store_true", help="print JSON on stdout")


def run(args: argparse.Namespace, settings: ServiceSettings) -> int:
    address = parse_ip(args.ip)
    residence = parse_region(args.residence) if args.residence else None
    if args.resolver:
        settings = settings.replace(geo_resolver=args.resolver)
    gate = build_gate(settings.region())
    decision = gate.decide(args.feature, address, residence, address_only=residence is None)
    if args.json:
        emit_json(decision.to_dict())
    else:
        print(describe(decision))
    return 0


def describe(d: Decision) -> str:
    place = d.subdivision or d.country or "unknown"
    if d.country and not d.subdivision_verified:
        place += f" (subdivision not verified by {d.resolver})"
    if d.residence_checked:
        residence = d.residence or "none declared"
    else:
        residence = "not judged (pass --residence CODE)"
    built = d.database_build_date.date().isoformat() if d.database_build_date else "unknown"
    source = f"{d.resolver}, {d.database}, built {built}" if d.database else d.resolver
    lines = [
        f"{d.decision} {d.feature}" + (f": {d.reason}" if d.reason else ""),
        f"  address    {d.network or 'none'} in {place}",
        f"  residence  {residence}",
        *(f"  reason     {r.code}: {r.message}" for r in d.reasons),
        f"  policy     {d.policy_version}; resolver {source}",
    ]
    return "\n".join(lines)
