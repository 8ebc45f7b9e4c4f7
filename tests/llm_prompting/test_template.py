"""The template expander: subject anchoring, styles, budget, honest warnings."""

from __future__ import annotations

import pytest

from llm_prompting import STYLES, Contract, PromptingConfig, expand
from llm_prompting.errors import EmptyPrompt, PromptTooLong, UnknownStyle
from llm_prompting.template import anchor_subject, guess_language


@pytest.mark.parametrize(
    ("prompt", "scene"),
    [
        ("me as an astronaut on Mars", "a person as an astronaut on Mars"),
        ("Me as a 1920s jazz singer!", "a person as a 1920s jazz singer"),
        ("I'm riding a horse on the beach", "a person riding a horse on the beach"),
        ("I am surfing a giant wave", "a person surfing a giant wave"),
        ("myself as a knight", "a person as a knight"),
        ("make me a pirate", "a person as a pirate"),
        ("turn me into a zombie", "a person as a zombie"),
        ("a photo of me as a chef", "a person as a chef"),
        ("me and my dog in Paris", "a person and their dog in Paris"),
        ("my cat and me on a sofa", "their cat and a person on a sofa"),
        ("moi en astronaute sur Mars", "a person en astronaute sur Mars"),
        ("moi je me promène à Paris", "a person je me promène à Paris"),  # French "me" stays
        ("yo como torero", "a person como torero"),
        ("ich als Ritter", "a person als Ritter"),
        ("astronaut on Mars", "a person as astronaut on Mars"),
        ("riding a dragon over a city", "a person riding a dragon over a city"),
        ("a person dancing in the rain", "a person dancing in the rain"),
    ],
)
def test_the_user_becomes_the_subject_exactly_once(prompt, scene):
    assert anchor_subject(prompt, "a person") == scene


@pytest.mark.parametrize("style", sorted(STYLES))
@pytest.mark.parametrize(
    "prompt",
    ["me as an astronaut on Mars", "me and my dog in Paris", "moi en chevalier", "I'm surfing"],
)
def test_every_style_keeps_the_contract(style, prompt):
    result = expand(prompt, style)
    assert result.backend == "template" and result.style == style
    assert Contract("a person").check(prompt, result.prompt) == []
    assert result.prompt.startswith(STYLES[style].lead + " a person")
    assert result.tokens <= 77


def test_there_are_at_least_six_styles_with_their_own_look():
    assert len(STYLES) >= 6
    assert {"photo", "cinematic", "watercolor", "anime"} <= set(STYLES)
    prompts = {expand("me as a chef", s).prompt for s in STYLES}
    negatives = {expand("me as a chef", s).negative_prompt for s in STYLES}
    assert len(prompts) == len(negatives) == len(STYLES)


def test_added_lists_exactly_what_can_be_undone():
    result = expand("me as a firefighter", "watercolor")
    lead, *details = result.added
    assert lead == "watercolor painting of"
    assert result.prompt == f"{lead} a person as a firefighter, " + ", ".join(details)
    assert "multiple people" in result.negative_prompt  # one subject, always


def test_details_stop_at_the_token_budget():
    def byte_level(text: str) -> int:
        return len(text.encode()) + 2

    roomy = expand("me as a chef", "photo", count_tokens=byte_level)
    tight = expand("me as a chef", "photo", PromptingConfig(token_budget=60), byte_level)
    assert len(tight.added) < len(roomy.added)
    assert tight.added == roomy.added[: len(tight.added)]  # most important first
    assert byte_level(tight.prompt) <= 60 and tight.tokens == byte_level(tight.prompt)


def test_a_prompt_over_budget_by_itself_is_kept_with_a_warning():
    long = "me as " + ", ".join(f"a knight number {i}" for i in range(20))
    result = expand(long, "photo")
    assert result.added == ("photo of",)
    assert any("over the text encoders' 77" in w for w in result.warnings)


@pytest.mark.parametrize(
    ("prompt", "language"),
    [
        ("me as an astronaut on Mars", None),
        ("moi en astronaute sur Mars", "fr"),
        ("yo como astronauta en la luna", "es"),
        ("ich als Astronaut auf dem Mars", "de"),
        ("私は宇宙飛行士", "other"),
    ],
)
def test_the_template_says_it_does_not_translate(prompt, language):
    assert guess_language(prompt) == language
    warnings = expand(prompt, "photo").warnings
    assert bool(warnings) == (language is not None)
    if language:
        assert "does not translate" in warnings[0]


def test_deterministic():
    assert expand("me as a knight", "fantasy") == expand("me as a knight", "fantasy")


def test_input_errors():
    with pytest.raises(EmptyPrompt):
        expand("   ", "photo")
    with pytest.raises(PromptTooLong) as err:
        expand("me " * 300, "photo")
    assert err.value.code == "prompt_too_long"
    with pytest.raises(UnknownStyle) as err2:
        expand("me", "vaporwave")
    assert "watercolor" in str(err2.value)
