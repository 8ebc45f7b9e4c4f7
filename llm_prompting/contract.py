"""The contract every expansion must satisfy, checked by one validator for every backend.

An expansion may make the user's request richer; it may not change who is in
the picture or what they look like. ``Contract.check`` compares the expansion
with the user's words and lists the rules it breaks:

- ``subject``: the subject phrase (the user) appears exactly once;
- ``extra_people``: no person the user did not ask for (a crowd, a woman, a friend);
- ``real_name``: no real person's name the user did not write (public
  figures, "in the style of <Name>", a common given name followed by a
  capitalised word);
- ``facial_attribute``: no hair or eye colour, age, gender, ethnicity, skin or
  facial hair the user did not ask for: those come from their photos;
- ``unsafe_addition``: nothing sexual, suggestive, violent or gory the user did not write;
- ``negative_prompt``: the model's own negative terms do not ask to avoid
  clothing or censorship (a way round moderation);
- ``token_budget``: at most ``budget`` tokens (77, each SDXL text encoder's
  length), counted by the pipeline's tokenizers when given, else by
  ``estimate_tokens``.

Concepts, not words, are compared, in English, French, Spanish and German, so
a faithful translation of the user's words adds nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

from llm_prompting.config import SDXL_TOKEN_BUDGET
from llm_prompting.text import Lexicon, load_data, words

TokenCounter = Callable[[str], int]  # token positions a text takes, start and end tokens included

# CLIP's BPE keeps most common English words whole and splits longer, rarer and
# non-English ones. The estimate charges a word of n ASCII letters 1 + n // 5
# tokens (up to 4 letters: 1, "astronaute": 3), one per digit, one per
# punctuation mark, one per UTF-8 byte of other characters, plus the start and
# end tokens. It over-counts on purpose, so text that fits by the estimate fits
# the real tokenizer: on 144 expansions and prompts in English, French, Spanish
# and German it counted 1.00-1.61 times CLIP's tokens, never fewer
# (benchmarks/expand.py --clip-vocab).
LETTERS_PER_TOKEN = 5


def estimate_tokens(text: str) -> int:
    """A conservative word-based stand-in for CLIP's tokenizer (start and end tokens included)."""
    count = 2
    for piece in re.findall(r"[A-Za-z]+|\d|[^\sA-Za-z\d]", text):
        if piece.isalpha() and piece.isascii():
            count += 1 + len(piece) // LETTERS_PER_TOKEN
        else:
            count += len(piece.encode())
    return count


@dataclass(frozen=True)
class Violation:
    rule: str  # subject, extra_people, real_name, facial_attribute, unsafe_addition, ...
    detail: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.detail}"


@dataclass(frozen=True)
class _Lists:
    people: Lexicon
    attributes: Lexicon
    unsafe: Lexicon
    public_figures: Lexicon
    negative_deny: Lexicon
    given_names: frozenset[str]
    attribution: re.Pattern[str]


@cache
def _lists() -> _Lists:
    contract, moderation, names = (
        load_data("contract.toml"),
        load_data("moderation.toml"),
        load_data("names.toml"),
    )
    eth = contract["ethnicity"]
    combos = [f"{a} {n}" for a in eth["adjectives"] for n in eth["nouns"]]
    combos += [f"{n} {a}" for a in eth["adjectives"] for n in eth["nouns"]]
    attributes = {
        **contract["attributes"],
        "ethnicity": contract["attributes"]["ethnicity"] + combos,
    }
    unsafe = {
        **{f"sexual/{k}": v for k, v in moderation["sexual"].items()},
        **{f"suggestive/{k}": v for k, v in moderation["suggestive"].items()},
        **{f"violence/{k}": v for k, v in moderation["violence"].items()},
        **{f"harm/{k}": v for k, v in contract["harm"].items()},
    }
    lead = "|".join(re.escape(p) for p in names["attribution"]["phrases"])
    return _Lists(
        people=Lexicon(contract["people"]),
        attributes=Lexicon(attributes),
        unsafe=Lexicon(unsafe, moderation["exceptions"]["words"]),
        public_figures=Lexicon({"name": names["public_figures"]["names"]}),
        negative_deny=Lexicon({"deny": contract["negative"]["deny"]}),
        given_names=frozenset(names["given_names"]["names"]),
        attribution=re.compile(rf"\b(?:{lead})\s+(?:the\s+)?([A-Z][\w'-]+(?:\s+[A-Z][\w'-]+)*)"),
    )


class Contract:
    def __init__(
        self,
        subject: str,
        budget: int = SDXL_TOKEN_BUDGET,
        count_tokens: TokenCounter | None = None,
    ):
        if not words(subject):
            raise ValueError(f"subject must contain a word, got {subject!r}")
        self.subject = subject
        self.budget = budget
        self.count_tokens = count_tokens or estimate_tokens
        self._subject = re.compile(rf"(?<!\w){re.escape(' '.join(words(subject)))}(?!\w)")

    def tokens(self, text: str) -> int:
        return self.count_tokens(text)

    def fits(self, text: str) -> bool:
        return self.tokens(text) <= self.budget

    def subject_count(self, text: str) -> int:
        return len(self._subject.findall(" ".join(words(text))))

    def check(self, user_prompt: str, prompt: str, negative: Sequence[str] = ()) -> list[Violation]:
        """Every rule ``prompt`` breaks as an expansion of ``user_prompt``; empty when it complies.

        ``negative`` holds the backend's own negative terms (not the style's).
        """
        lists = _lists()
        found: list[Violation] = []
        if (n := self.subject_count(prompt)) != 1:
            found.append(Violation("subject", f"{self.subject!r} appears {n} times, not once"))
        asked = words(user_prompt)
        said = self._subject.sub(" ", " ".join(words(prompt))).split()
        for rule, lexicon in (
            ("extra_people", lists.people),
            ("facial_attribute", lists.attributes),
            ("unsafe_addition", lists.unsafe),
        ):
            added = lexicon.find(said).keys() - lexicon.find(asked).keys()
            found.extend(Violation(rule, lexicon.find(said)[c]) for c in sorted(added))
        found.extend(Violation("real_name", n) for n in self.added_names(user_prompt, prompt))
        for term in negative:
            if lists.negative_deny.find(words(term)):
                found.append(Violation("negative_prompt", term))
        if (n := self.tokens(prompt)) > self.budget:
            found.append(Violation("token_budget", f"{n} tokens, budget {self.budget}"))
        return found

    def added_names(self, user_prompt: str, prompt: str) -> list[str]:
        """Names of real people in ``prompt`` that ``user_prompt`` does not contain."""
        lists = _lists()
        names = list(lists.public_figures.find(words(prompt)).values())
        names += lists.attribution.findall(prompt)
        for first, last in re.findall(r"\b([A-Z][a-z]+)\s+([A-Z][\w'-]+)", prompt):
            if first.lower() in lists.given_names:
                names.append(f"{first} {last}")
        asked = f" {' '.join(words(user_prompt))} "
        return [n for n in dict.fromkeys(names) if f" {' '.join(words(n))} " not in asked]
