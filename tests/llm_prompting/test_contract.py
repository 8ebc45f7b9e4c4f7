"""The one validator: what an expansion may and may not add to the user's words."""

from __future__ import annotations

import pytest

from llm_prompting import Contract, estimate_tokens

USER = "me as an astronaut on Mars"


@pytest.fixture
def contract() -> Contract:
    return Contract("a person")


def rules(contract: Contract, prompt: str, user: str = USER, negative=()) -> list[str]:
    return [v.rule for v in contract.check(user, prompt, negative)]


def test_a_rich_faithful_expansion_complies(contract):
    prompt = (
        "cinematic film still of a person as an astronaut standing on the red dunes of Mars, "
        "white spacesuit, Earth small in the dusty sky, long shadows at sunset"
    )
    assert contract.check(USER, prompt) == []


@pytest.mark.parametrize(
    ("prompt", "rule"),
    [
        ("photo of an astronaut on Mars", "subject"),
        ("photo of a person and a person on Mars", "subject"),
        ("photo of a person as an astronaut on Mars with a crowd watching", "extra_people"),
        (
            "photo of a person as an astronaut on Mars beside another astronaut, a woman",
            "extra_people",
        ),
        ("photo of a person as an astronaut on Mars, her friends waving", "extra_people"),
        ("photo of a person as an astronaut on Mars, blonde hair", "facial_attribute"),
        ("photo of a person as an astronaut on Mars, piercing blue eyes", "facial_attribute"),
        ("photo of a young person as an astronaut on Mars", "facial_attribute"),
        ("photo of a person as a female astronaut on Mars", "facial_attribute"),
        ("photo of a person as an astronaut on Mars, East Asian features", "facial_attribute"),
        ("photo of a person as a bearded astronaut on Mars", "facial_attribute"),
        ("photo of a person as an astronaut on Mars, in the style of Greg Rutkowski", "real_name"),
        ("photo of a person as an astronaut on Mars, shot by Annie Leibovitz", "real_name"),
        ("photo of a person as an astronaut on Mars next to Elon Musk", "real_name"),
        ("photo of a person as an astronaut on Mars, sexy pose", "unsafe_addition"),
        ("photo of a person as an astronaut on Mars, bloody wounds", "unsafe_addition"),
        ("photo of a person as an astronaut on Mars, corpses in the sand", "unsafe_addition"),
        ("photo of a person as a naked astronaut on Mars", "unsafe_addition"),
    ],
)
def test_each_rule_catches_its_addition(contract, prompt, rule):
    assert rule in rules(contract, prompt)


@pytest.mark.parametrize(
    ("user", "prompt"),
    [
        ("me with blonde hair on a beach", "photo of a person with blonde hair on a sunny beach"),
        ("moi avec ma femme à Paris", "photo of a person with their wife in Paris at dusk"),
        ("yo con mis amigos en la playa", "photo of a person with their friends on the beach"),
        ("ich mit meiner Familie im Park", "photo of a person with their family in a park"),
        ("me as an elderly wizard", "photo of a person as an elderly wizard, wrinkles, long robe"),
        ("me as Harry Potter at Hogwarts", "photo of a person as Harry Potter at Hogwarts"),
        ("me in an Asian night market", "photo of a person in an Asian night market, lanterns"),
    ],
)
def test_what_the_user_asked_for_is_not_an_addition(contract, user, prompt):
    assert contract.check(user, prompt) == []


def test_old_alone_does_not_mean_age(contract):
    assert rules(contract, "photo of a person exploring an old castle on Mars") == []


def test_negative_terms_may_not_ask_to_remove_clothes_or_censorship(contract):
    ok = "photo of a person as an astronaut on Mars"
    assert rules(contract, ok, negative=["helmet covering the face", "blurry"]) == []
    assert rules(contract, ok, negative=["clothes"]) == ["negative_prompt"]
    assert rules(contract, ok, negative=["censored", "modest outfit"]) == 2 * ["negative_prompt"]


def test_the_budget_uses_the_given_tokenizer():
    def byte_level(text: str) -> int:  # like the smoke profile's tokenizer: one token per byte
        return len(text.encode()) + 2

    short = "photo of a person as an astronaut on Mars"
    assert Contract("a person", budget=77, count_tokens=byte_level).check(USER, short) == []
    tight = Contract("a person", budget=30, count_tokens=byte_level)
    assert [v.rule for v in tight.check(USER, short)] == ["token_budget"]
    assert "43 tokens, budget 30" in str(tight.check(USER, short)[0])


def test_the_word_estimate_is_conservative_for_common_text():
    # 2 (start, end) + photo 2 + of 1 + a 1 + person 2 + "," 1 + natural 2 + light 2
    assert estimate_tokens("photo of a person, natural light") == 13
    assert estimate_tokens("") == 2
    assert estimate_tokens("astronaute") == 2 + 3  # long or foreign words cost more
    assert estimate_tokens("café") == 1 + 2 + 2  # "caf" + 2 UTF-8 bytes of "é" + start/end
    assert estimate_tokens("1920s") == 2 + 4 + 1


def test_a_subject_phrase_must_have_words():
    with pytest.raises(ValueError, match="subject"):
        Contract("  ")
