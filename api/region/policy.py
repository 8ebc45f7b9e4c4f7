"""The region policy: per feature, which countries and subdivisions are allowed.

Loaded from the shipped ``default_policy.toml`` or an operator's TOML file of
the same shape, then optionally overridden per feature from settings
(``US,!US-IL,!US-TX``: a leading ``!`` denies). Matching walks a region's
chain (``US-IL`` → ``US`` → ``*``): the most specific rule wins, deny beats
allow at the same level, and a region no rule matches is denied.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from api.errors import InvalidRegion, RegionConfigError
from api.region.regions import EVERYWHERE, chain, parse_region

FEATURES = ("enroll", "generate", "gallery")
_KEYS = {"allow", "deny", "block_anonymizers"}


@dataclass(frozen=True)
class FeatureRules:
    allow: frozenset[str] = frozenset()
    deny: frozenset[str] = frozenset()
    block_anonymizers: bool = True  # deny addresses on the anonymizer list

    def allows(self, region_chain: Sequence[str]) -> bool:
        """The verdict for a region given as its chain, most specific first (see ``chain``)."""
        for code in region_chain:
            if code in self.deny:
                return False
            if code in self.allow:
                return True
        return False  # fail closed: no rule names this place

    @property
    def location_independent(self) -> bool:
        """No rule names a place, so the verdict is the same everywhere (and for unknown places)."""
        return (self.allow | self.deny) <= {EVERYWHERE}

    def has_subdivision_rules(self, country: str) -> bool:
        return any(code.startswith(country + "-") for code in self.allow | self.deny)

    def may_allow_somewhere_in(self, country: str) -> bool:
        """Whether an address in ``country`` whose subdivision is unknown could be allowed.

        Subdivision rules cannot be applied to such an address; the declared
        residence enforces them instead.
        """
        if self.allows(chain(country)):
            return True
        return any(code.startswith(country + "-") for code in self.allow)


@dataclass(frozen=True)
class RegionPolicy:
    version: str  # recorded with every decision
    features: Mapping[str, FeatureRules]

    def rules(self, feature: str) -> FeatureRules:
        if feature not in self.features:
            raise ValueError(f"feature must be one of {list(FEATURES)}, got {feature!r}")
        return self.features[feature]

    def needs_subdivision(self, country: str) -> bool:
        """Whether residents of ``country`` must declare their subdivision (enrollment asks)."""
        return any(rules.has_subdivision_rules(country) for rules in self.features.values())


def load_policy(
    path: Path | None = None, overrides: Mapping[str, Sequence[str]] | None = None
) -> RegionPolicy:
    """The policy in ``path`` (or the shipped default), with per-feature rule overrides.

    ``overrides`` maps a feature to rules such as ``["US", "!US-IL"]``; an empty
    sequence keeps the file's rules. Overridden policies get a version suffix
    derived from the effective rules, so decisions never claim a version they
    did not apply.
    """
    if path is None:
        source = "default_policy.toml"
        text = resources.files("api.region").joinpath(source).read_text()
    else:
        source = str(path)
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise RegionConfigError(f"region policy {source}: {exc.strerror}") from None
    policy = parse_policy(text, source)
    changed = {f: rules for f, rules in (overrides or {}).items() if rules}
    if not changed:
        return policy
    features = dict(policy.features)
    for feature, rules in changed.items():
        if feature not in FEATURES:
            raise RegionConfigError(f"no feature {feature!r}; features are {list(FEATURES)}")
        allow, deny = _split_rules(rules, f"{feature}_regions setting")
        features[feature] = replace(features[feature], allow=allow, deny=deny)
    effective = {f: [sorted(r.allow), sorted(r.deny)] for f, r in sorted(features.items())}
    digest = hashlib.sha256(json.dumps(effective).encode()).hexdigest()[:8]
    return RegionPolicy(version=f"{policy.version}+env.{digest}", features=features)


def parse_policy(text: str, source: str = "<policy>") -> RegionPolicy:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RegionConfigError(f"region policy {source}: {exc}") from None
    version = data.pop("version", None)
    if not isinstance(version, str) or not version.strip():
        raise RegionConfigError(f"region policy {source}: needs a non-empty `version` string")
    if set(data) != set(FEATURES):
        raise RegionConfigError(
            f"region policy {source}: needs exactly the tables {list(FEATURES)}, "
            f"found {sorted(data)}"
        )
    features = {}
    for feature in FEATURES:
        table = data[feature]
        where = f"region policy {source}, [{feature}]"
        if not isinstance(table, dict) or not set(table) <= _KEYS:
            raise RegionConfigError(f"{where}: only the keys {sorted(_KEYS)} are allowed")
        block = table.get("block_anonymizers", True)
        if not isinstance(block, bool):
            raise RegionConfigError(f"{where}: block_anonymizers must be true or false")
        features[feature] = FeatureRules(
            allow=_codes(table.get("allow", []), f"{where} allow"),
            deny=_codes(table.get("deny", []), f"{where} deny"),
            block_anonymizers=block,
        )
    return RegionPolicy(version=version.strip(), features=features)


def _split_rules(rules: Iterable[str], where: str) -> tuple[frozenset[str], frozenset[str]]:
    """``["US", "!US-IL"]`` → ({"US"}, {"US-IL"})."""
    rules = list(rules)
    allow = [r for r in rules if not r.startswith("!")]
    deny = [r[1:] for r in rules if r.startswith("!")]
    return _codes(allow, f"{where} (allow)"), _codes(deny, f"{where} (deny)")


def _codes(values: object, where: str) -> frozenset[str]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise RegionConfigError(f"{where}: expected a list of region codes")
    try:
        return frozenset(v.strip() if v.strip() == EVERYWHERE else parse_region(v) for v in values)
    except InvalidRegion as exc:
        raise RegionConfigError(f"{where}: {exc}") from None
