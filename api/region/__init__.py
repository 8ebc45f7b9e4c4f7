"""Region gating: who may enroll, generate and reach their gallery, from where.

For the service, once at startup::

    gate = build_gate(settings.region())          # RegionConfigError if unusable
    trusted = settings.trusted_networks()

and per request::

    address = client_address(request.client.host, request.headers, trusted,
                             settings.forwarded_header)
    gate.require("generate", address, user.residence)  # RegionUnavailable (451) on deny

``gate.decide`` returns the ``Decision`` instead of raising. At enrollment,
``parse_region`` validates the declared residence (InvalidRegion, 422) and
``gate.policy.needs_subdivision(country)`` says whether to ask for the
subdivision too. ``imagine gate IP`` asks the same questions for operators.
"""

from api.region.address import client_address, parse_ip, parse_networks, truncated
from api.region.gate import (
    REASON_CODES,
    Decision,
    Reason,
    RegionConfig,
    RegionGate,
    build_gate,
)
from api.region.policy import FEATURES, FeatureRules, RegionPolicy, load_policy
from api.region.regions import parse_region
from api.region.resolvers import RESOLVERS, GeoConfig, GeoResolver, Location, get_resolver

__all__ = [
    "FEATURES",
    "REASON_CODES",
    "RESOLVERS",
    "Decision",
    "FeatureRules",
    "GeoConfig",
    "GeoResolver",
    "Location",
    "Reason",
    "RegionConfig",
    "RegionGate",
    "RegionPolicy",
    "build_gate",
    "client_address",
    "get_resolver",
    "load_policy",
    "parse_ip",
    "parse_networks",
    "parse_region",
    "truncated",
]
