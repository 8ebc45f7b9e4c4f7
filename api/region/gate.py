"""The region gate: may this request use this feature, judged by address and declared residence.

``RegionGate.decide`` runs, in order:

1. locate the client address: none, private without a local region, reserved,
   a stale database, no record or a failing lookup → ``unknown_location`` /
   ``stale_geo_database`` (fail closed);
2. anonymizer signals (the operator's list, or the database's own traits) →
   ``anonymizer``, for features that block them;
3. the address's place against the policy → ``region_denied``; an address whose
   subdivision the resolver cannot see passes subdivision rules on to step 4
   and the decision says ``subdivision_verified: false``;
4. the declared residence, since biometric laws protect residents wherever
   their address points: missing, or a bare country where the policy has rules
   for its subdivisions → ``residence_required``; not allowed → ``region_denied``.

The most restrictive outcome wins: one reason denies. A feature whose rules
name no place (the gallery: erasure must always be possible) is decided
without looking anything up. Every decision goes to the audit hook.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from api.errors import InvalidRegion, RegionConfigError, RegionUnavailable
from api.region.address import IPAddress, truncated
from api.region.anonymizers import AnonymizerList
from api.region.audit import log_decision
from api.region.policy import FeatureRules, RegionPolicy, load_policy
from api.region.regions import EVERYWHERE, chain, country_of, parse_region, subdivision_of
from api.region.resolvers import GeoConfig, GeoResolver, Location, get_resolver

logger = logging.getLogger(__name__)

REASON_CODES = (
    "unknown_location",
    "stale_geo_database",
    "anonymizer",
    "region_denied",
    "residence_required",
)
LOCAL_REGION = "local_region"  # the resolver named in decisions on private addresses


@dataclass(frozen=True)
class Reason:
    code: str  # one of REASON_CODES
    message: str


@dataclass(frozen=True)
class Decision:
    feature: str
    allowed: bool
    reasons: tuple[Reason, ...]  # why not, most fundamental first; empty when allowed
    country: str | None  # of the client address, when it was located
    subdivision: str | None  # of the client address, when the data gives one
    subdivision_verified: bool  # False: subdivision rules were left to the declared residence
    residence: str | None  # the declared residence judged, canonical ISO code
    residence_checked: bool  # False when the address alone was judged (operators' CLI)
    network: str | None  # the client address truncated to /24 or /48: never the full address
    policy_version: str
    resolver: str  # "iptocc", "mmdb", or "local_region" for a private address
    database: str | None  # the data that answered, e.g. "iptocc 3.3.170", "GeoLite2-City"
    database_build_date: datetime | None

    @property
    def decision(self) -> str:
        return "allow" if self.allowed else "deny"

    @property
    def reason(self) -> str | None:
        return self.reasons[0].code if self.reasons else None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of DESIGN.md (decision, reason, country, subdivision) and the rest."""
        return {
            "decision": self.decision,
            "reason": self.reason,
            "country": self.country,
            "subdivision": self.subdivision,
            "subdivision_verified": self.subdivision_verified,
            "residence": self.residence,
            "residence_checked": self.residence_checked,
            "feature": self.feature,
            "reasons": [{"code": r.code, "message": r.message} for r in self.reasons],
            "network": self.network,
            "policy_version": self.policy_version,
            "resolver": self.resolver,
            "database": self.database,
            "database_build_date": (
                self.database_build_date.isoformat() if self.database_build_date else None
            ),
        }


@dataclass(frozen=True)
class RegionConfig:
    """What ``build_gate`` needs; filled from the service settings."""

    policy_file: Path | None = None  # None: the shipped default policy
    policy_overrides: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (feature, rules) pairs
    geo: GeoConfig = field(default_factory=GeoConfig)
    max_database_age_days: int = 45
    local_region: str | None = None  # region of loopback/private clients; None denies them
    anonymizer_file: Path | None = None


def build_gate(config: RegionConfig, **kwargs: Any) -> RegionGate:
    """The gate ``config`` describes; RegionConfigError when any part cannot be used."""
    policy = load_policy(config.policy_file, dict(config.policy_overrides))
    anonymizers = (
        AnonymizerList.from_file(config.anonymizer_file) if config.anonymizer_file else None
    )
    try:
        local_region = parse_region(config.local_region) if config.local_region else None
    except InvalidRegion as exc:
        raise RegionConfigError(f"local region: {exc}") from None
    return RegionGate(
        policy,
        get_resolver(config.geo),
        max_database_age=timedelta(days=config.max_database_age_days),
        local_region=local_region,
        anonymizers=anonymizers,
        **kwargs,
    )


@dataclass
class _Place:
    location: Location | None
    reasons: list[Reason]
    resolver: str
    database: str | None


class RegionGate:
    def __init__(
        self,
        policy: RegionPolicy,
        resolver: GeoResolver,
        *,
        max_database_age: timedelta = timedelta(days=45),
        local_region: str | None = None,
        anonymizers: AnonymizerList | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        audit: Callable[[Decision], None] = log_decision,
    ):
        self.policy = policy
        self.resolver = resolver
        self.max_database_age = max_database_age
        self.local_region = local_region
        self.anonymizers = anonymizers or AnonymizerList()
        self.clock = clock
        self.audit = audit

    def decide(
        self,
        feature: str,
        address: IPAddress | None,
        residence: str | None = None,
        *,
        address_only: bool = False,
    ) -> Decision:
        """Allow or deny ``feature`` to a client at ``address`` declaring ``residence``.

        ``residence`` is an ISO 3166-1/-2 code (InvalidRegion otherwise);
        ``address_only`` skips the residence check, for operators asking about
        an address (never for serving a user).
        """
        rules = self.policy.rules(feature)
        residence = parse_region(residence) if residence else None
        if address is not None and address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        place = self._locate(address, rules)
        if rules.location_independent:
            reasons = [] if rules.allows((EVERYWHERE,)) else [_nowhere(feature)]
        else:
            reasons = place.reasons
            if address is not None and rules.block_anonymizers:
                reasons += self._anonymizer(address, place.location)
            if place.location is not None:
                reasons += _judge_address(feature, rules, place.location)
            if not address_only:
                reasons += _judge_residence(feature, rules, residence)
        location = place.location
        decision = Decision(
            feature=feature,
            allowed=not reasons,
            reasons=tuple(reasons),
            country=location.country if location else None,
            subdivision=location.subdivision if location else None,
            subdivision_verified=bool(location and location.subdivision),
            residence=residence,
            residence_checked=not address_only,
            network=truncated(address) if address is not None else None,
            policy_version=self.policy.version,
            resolver=place.resolver,
            database=place.database,
            database_build_date=self.resolver.build_date if place.database else None,
        )
        self.audit(decision)
        return decision

    def require(
        self, feature: str, address: IPAddress | None, residence: str | None = None
    ) -> Decision:
        """``decide``, raising RegionUnavailable (HTTP 451) with the first reason on deny."""
        decision = self.decide(feature, address, residence)
        if not decision.allowed:
            first = decision.reasons[0]
            raise RegionUnavailable(first.message, reason=first.code)
        return decision

    def _locate(self, address: IPAddress | None, rules: FeatureRules) -> _Place:
        name, database = self.resolver.name, self.resolver.database
        if rules.location_independent:
            return _Place(None, [], name, None)  # the verdict is the same everywhere
        if address is None:
            return _Place(None, [_unknown("the client address is unknown")], name, None)
        if address.is_private or address.is_loopback:
            if self.local_region is None:
                why = f"{truncated(address)} is private or loopback and no local region is set"
                return _Place(None, [_unknown(why)], name, None)
            local = Location(country_of(self.local_region), subdivision_of(self.local_region))
            return _Place(local, [], LOCAL_REGION, None)
        if not address.is_global or address.is_multicast:
            why = f"{truncated(address)} is reserved, shared or multicast: it has no place"
            return _Place(None, [_unknown(why)], name, None)
        built = self.resolver.build_date
        if built is not None and self.clock() - built > self.max_database_age:
            age = (self.clock() - built).days
            why = (
                f"the geo database {database} was built {age} days ago "
                f"(limit {self.max_database_age.days}); update it"
            )
            return _Place(None, [Reason("stale_geo_database", why)], name, database)
        try:
            location = self.resolver.locate(address)
        except Exception as exc:  # any lookup failure denies; the operator sees it in the log
            # The exception's text may hold the full address: only its type at WARNING.
            logger.warning("geo lookup with %s failed: %s", name, type(exc).__name__)
            logger.debug("geo lookup failure", exc_info=True)
            return _Place(None, [_unknown(f"the {name} lookup failed")], name, database)
        if location is None:
            why = f"{database} has no record of {truncated(address)}"
            return _Place(None, [_unknown(why)], name, database)
        if not _is_country(location.country):
            why = f"{database} answered {location.country!r}, not an ISO 3166-1 country"
            return _Place(None, [_unknown(why)], name, database)
        return _Place(location, [], name, database)

    def _anonymizer(self, address: IPAddress, location: Location | None) -> list[Reason]:
        if address in self.anonymizers:
            return [Reason("anonymizer", f"{truncated(address)} is on the anonymizer list")]
        if location is not None and location.anonymous:
            return [Reason("anonymizer", "the geo database marks this network as anonymizing")]
        return []


def _judge_address(feature: str, rules: FeatureRules, location: Location) -> list[Reason]:
    if location.subdivision:
        allowed, where = rules.allows(chain(location.subdivision)), location.subdivision
    else:
        allowed, where = rules.may_allow_somewhere_in(location.country), location.country
    if allowed:
        return []
    return [Reason("region_denied", f"{feature} is not offered in {where} (client address)")]


def _judge_residence(feature: str, rules: FeatureRules, residence: str | None) -> list[Reason]:
    if residence is None:
        why = f"{feature} needs the user's declared country of residence"
        return [Reason("residence_required", why)]
    country = country_of(residence)
    if subdivision_of(residence) is None and rules.has_subdivision_rules(country):
        why = (
            f"{feature} needs the user's subdivision of residence in {country} "
            "(an ISO 3166-2 code), because the policy has rules for some of them"
        )
        return [Reason("residence_required", why)]
    if not rules.allows(chain(residence)):
        return [Reason("region_denied", f"{feature} is not offered to residents of {residence}")]
    return []


def _is_country(code: str) -> bool:
    try:
        return "-" not in code and parse_region(code) == code
    except InvalidRegion:
        return False


def _unknown(message: str) -> Reason:
    return Reason("unknown_location", message)


def _nowhere(feature: str) -> Reason:
    return Reason("region_denied", f"{feature} is not offered anywhere")
