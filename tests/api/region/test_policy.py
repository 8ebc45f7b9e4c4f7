"""The region policy: shipped default, matching rules, TOML files and settings overrides."""

from __future__ import annotations

import pytest

from api.errors import InvalidRegion, RegionConfigError
from api.region.policy import FEATURES, load_policy, parse_policy
from api.region.regions import chain, parse_region

DEFAULT = load_policy()


@pytest.mark.parametrize(
    ("region", "enroll", "gallery"),
    [
        ("US", True, True),
        ("US-CA", True, True),
        ("US-NY", True, True),
        ("US-IL", False, True),
        ("US-TX", False, True),
        ("FR", False, True),
        ("FR-75C", False, True),
        ("JP", False, True),
        ("DE", False, True),
    ],
)
def test_shipped_default(region, enroll, gallery):
    for feature in ("enroll", "generate"):
        assert DEFAULT.rules(feature).allows(chain(region)) is enroll
    assert DEFAULT.rules("gallery").allows(chain(region)) is gallery
    assert DEFAULT.rules("gallery").location_independent
    assert not DEFAULT.rules("enroll").location_independent


def test_default_asks_us_residents_for_their_state_and_nobody_else():
    assert DEFAULT.needs_subdivision("US")
    assert not DEFAULT.needs_subdivision("FR")
    assert not DEFAULT.needs_subdivision("JP")


def test_default_blocks_anonymizers_except_for_the_gallery():
    assert DEFAULT.rules("enroll").block_anonymizers
    assert DEFAULT.rules("generate").block_anonymizers
    assert not DEFAULT.rules("gallery").block_anonymizers


def test_region_codes_are_checked_against_iso_3166():
    assert parse_region(" us-ca ") == "US-CA"
    assert parse_region("jp") == "JP"
    for bad in ("XX", "USA", "US-XX", "U", "", "US-", "12"):
        with pytest.raises(InvalidRegion):
            parse_region(bad)


def test_chain_walks_parent_subdivisions_then_country():
    assert chain("FR-75C") == ("FR-75C", "FR-IDF", "FR", "*")
    assert chain("GB-LND") == ("GB-LND", "GB-ENG", "GB", "*")
    assert chain("US-IL") == ("US-IL", "US", "*")
    assert chain("JP") == ("JP", "*")


def policy(enroll: str) -> str:
    rest = '[generate]\nallow = ["US"]\n[gallery]\nallow = ["*"]\n'
    return f'version = "t1"\n[enroll]\n{enroll}\n{rest}'


def test_most_specific_rule_wins_and_deny_beats_allow_at_one_level():
    rules = parse_policy(
        policy('allow = ["FR-75C", "DE", "GB"]\ndeny = ["FR", "DE", "GB-ENG"]')
    ).rules("enroll")
    assert rules.allows(chain("FR-75C"))  # the subdivision's allow beats the country's deny
    assert not rules.allows(chain("FR-69"))
    assert not rules.allows(chain("DE"))  # same level: deny wins
    assert not rules.allows(chain("GB-LND"))  # parent subdivision GB-ENG denies
    assert rules.allows(chain("GB-SCT"))
    assert not rules.allows(chain("JP"))  # nothing matches: fail closed


def test_unknown_subdivision_defers_to_subdivision_rules():
    rules = parse_policy(policy('allow = ["US-CA"]')).rules("enroll")
    assert rules.may_allow_somewhere_in("US")  # the residence must say which state
    assert not rules.may_allow_somewhere_in("FR")
    assert rules.has_subdivision_rules("US") and not rules.has_subdivision_rules("FR")


def test_policy_file_replaces_the_default(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text(policy('allow = ["JP"]\nblock_anonymizers = false'))
    loaded = load_policy(path)
    assert loaded.version == "t1"
    assert loaded.rules("enroll").allows(chain("JP"))
    assert not loaded.rules("enroll").allows(chain("US"))
    assert not loaded.rules("enroll").block_anonymizers


def test_settings_overrides_replace_one_feature_and_mark_the_version():
    loaded = load_policy(None, {"enroll": ["US", "!US-IL", "!US-TX", "!US-WA"], "gallery": []})
    assert not loaded.rules("enroll").allows(chain("US-WA"))
    assert loaded.rules("enroll").allows(chain("US-CA"))
    assert loaded.rules("generate") == DEFAULT.rules("generate")
    assert loaded.version.startswith(DEFAULT.version + "+env.")
    again = load_policy(None, {"enroll": ["!US-WA", "!US-TX", "US", "!US-IL"]})
    assert again.version == loaded.version  # same effective rules, same version
    assert load_policy(None, {"enroll": ["US"]}).version != loaded.version


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("not toml [", "region policy"),
        (policy('allow = ["US"]').replace('version = "t1"', ""), "version"),
        ('version = "x"\n[enroll]\nallow = ["US"]\n', "tables"),
        (policy('allow = ["US-ZZ"]'), "US-ZZ"),
        (policy('allow = "US"'), "list of region codes"),
        (policy('allow = ["US"]\nblocked = true'), "keys"),
        (policy('allow = ["US"]\nblock_anonymizers = "yes"'), "true or false"),
    ],
)
def test_bad_policies_say_what_is_wrong(text, words):
    with pytest.raises(RegionConfigError) as err:
        parse_policy(text, "p.toml")
    assert words in str(err.value)


def test_bad_override_or_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(RegionConfigError, match="enroll_regions"):
        load_policy(None, {"enroll": ["US", "!Illinois"]})
    with pytest.raises(RegionConfigError, match="no feature"):
        load_policy(None, {"upload": ["US"]})
    with pytest.raises(RegionConfigError, match=r"missing\.toml"):
        load_policy(tmp_path / "missing.toml")


def test_rules_for_an_unknown_feature_name_the_argument():
    with pytest.raises(ValueError, match="feature must be one of"):
        DEFAULT.rules("upload")
    assert set(DEFAULT.features) == set(FEATURES)
