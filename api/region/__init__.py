"""Region gating: who may enroll, generate and reach their gallery, from where.

The service asks ``RegionGate.decide(feature, client_address(...), residence)``
on every request; ``imagine gate IP`` asks the same question for operators.
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
