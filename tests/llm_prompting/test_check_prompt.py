"""``check_prompt``: what every entry point accepts as a prompt, and what it stores."""

from __future__ import annotations

import pytest

from llm_prompting import PromptingConfig, check_prompt, clear_caches, expand
from llm_prompting.errors import PromptingError

REFUSED = [
    ("\x00", "U+0000"),  # NUL
    ("\x1b[31m", "U+001B"),  # the ESC of an ANSI colour code
    ("\x07", "U+0007"),  # BEL
    ("\x0b", "U+000B"),  # vertical tab: not one of the line breaks we turn into spaces
    ("\x7f", "U+007F"),  # DEL
    ("\x85", "U+0085"),  # C1 next line
    ("\x9b", "U+009B"),  # C1 control sequence introducer
    ("\udc80", "U+DC80"),  # an unpaired surrogate (e.g. a non-UTF-8 byte in argv)
    *[(chr(c), f"U+{c:04X}") for c in range(0x202A, 0x202F)],  # bidi embeddings, overrides
    *[(chr(c), f"U+{c:04X}") for c in range(0x2066, 0x206A)],  # bidi isolates
]


@pytest.mark.parametrize(("char", "label"), REFUSED)
@pytest.mark.parametrize("where", ["middle", "start", "end"])
def test_control_and_bidi_characters_are_refused_by_code_point(char, label, where):
    prompt = {"middle": f"me as a {char}pirate", "start": f"{char}me", "end": f"me{char}"}[where]
    with pytest.raises(PromptingError) as err:
        check_prompt(prompt)
    assert err.value.code == "invalid_prompt"
    assert label in err.value.message


def test_the_message_names_the_character_and_where_it_is():
    with pytest.raises(PromptingError) as err:
        check_prompt("me as \u202eetarip a")
    assert err.value.message.startswith(
        "the prompt contains U+202E (RIGHT-TO-LEFT OVERRIDE) at character 7;"
    )


def test_prompts_are_nfc_and_one_line():
    assert check_prompt("  me as an e\u0301lf\r\n\tin a  forest\u2028at dawn \n") == (
        "me as an \u00e9lf in a  forest at dawn"
    )
    # Right-to-left text and its own marks are text, not overrides.
    assert check_prompt("me reading \u05e9\u05dc\u05d5\u05dd \u200f") == (
        "me reading \u05e9\u05dc\u05d5\u05dd \u200f"
    )
    checked = check_prompt("me as a pirate\non a ship")
    assert check_prompt(checked) == checked  # checking again changes nothing


def test_length_counts_characters_after_normalising():
    decomposed = "e\u0301" * 500  # 1000 code points, 500 characters in NFC
    assert check_prompt(decomposed, 500) == "\u00e9" * 500
    for prompt in ("x" * 501, "x" * 5_000_000):  # a huge one is refused before NFC
        with pytest.raises(PromptingError) as err:
            check_prompt(prompt, 500)
        assert err.value.code == "prompt_too_long"
        assert f"has {len(prompt)} characters; the limit is 500" in err.value.message


def test_empty_after_trimming():
    for prompt in ("", "  ", "\r\n\t"):
        with pytest.raises(PromptingError) as err:
            check_prompt(prompt)
        assert err.value.code == "empty_prompt"


def test_expand_checks_and_keeps_the_normalised_prompt():
    clear_caches()
    result = expand("me as an e\u0301lf\nin a forest", config=PromptingConfig())
    assert result.original == "me as an \u00e9lf in a forest"
    assert "\n" not in result.prompt
    with pytest.raises(PromptingError) as err:
        expand("me as a pirate\x1b[2J", config=PromptingConfig())
    assert err.value.code == "invalid_prompt"
