"""Text folding and phrase matching, shared by moderation and the contract.

``fold`` turns text into the form every word list is written in: lower case,
no accents, look-alike letters from other scripts mapped to Latin, invisible
characters removed. ``Lexicon`` finds concepts (a name for a group of phrases,
often one meaning in several languages) in a list of words.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from importlib import resources

# Cyrillic and Greek letters that look like Latin ones ("nаked" with a Cyrillic а).
_CONFUSABLES = str.maketrans(
    "аеорсхуікмтвнАЕОРСХУІКМТВНαεορτυικνΑΕΟΡΤΥΙΚΝ",
    "aeopcxyikmtbhaeopcxyikmtbhaeoptuiknaeoptyikn",
)
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)
_WORD = re.compile(r"[^\W_]+")

# Digits and symbols used for letters ("s3x", "n@ked", "k1ll", "s1ut"): "1" and
# "|" read as either "i" or "l", so there are two tables.
LEET_I = str.maketrans("0134578@$!|+", "oieastbasiit")
LEET_L = str.maketrans("0134578@$!|+", "oleastbasllt")


def fold(text: str) -> str:
    """Lower case, accents and invisible characters removed, look-alikes mapped to Latin."""
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE).translate(_CONFUSABLES)
    text = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in text if not unicodedata.combining(c))


def words(text: str) -> list[str]:
    """The words of ``text`` after ``fold``: runs of letters and digits."""
    return _WORD.findall(fold(text))


def squeeze(word: str) -> str:
    """Runs of one repeated letter collapsed to one letter ("nuuude" -> "nude", "kill" -> "kil")."""
    return re.sub(r"(.)\1+", r"\1", word)


class Lexicon:
    """Concepts, each a list of phrases; finds which concepts occur in a list of words.

    A phrase is one or more words written as they look after ``fold``; a
    one-word phrase ending in ``*`` matches any word that starts with the rest.
    """

    def __init__(self, concepts: Mapping[str, Iterable[str]]):
        self.phrases: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        self.prefixes: list[tuple[str, str]] = []
        self.singles: dict[str, str] = {}  # one-word phrases: the moderator's spelling repairs
        for concept, phrases in concepts.items():
            for phrase in phrases:
                parts = tuple(words(phrase.rstrip("*")))
                if not parts:
                    raise ValueError(f"empty phrase in concept {concept!r}: {phrase!r}")
                if phrase.endswith("*"):
                    self.prefixes.append((parts[0], concept))
                    continue
                self.phrases.setdefault(parts[0], []).append((parts, concept))
                if len(parts) == 1:
                    self.singles[parts[0]] = concept
        self._starts = tuple(p for p, _ in self.prefixes)  # one startswith call per word

    def find(self, tokens: Sequence[str]) -> dict[str, str]:
        """Concepts found in ``tokens`` (folded words), each with the phrase that matched."""
        found: dict[str, str] = {}
        for i, token in enumerate(tokens):
            for parts, concept in self.phrases.get(token, ()):
                if tuple(tokens[i : i + len(parts)]) == parts:
                    found.setdefault(concept, " ".join(parts))
            if token.startswith(self._starts):
                for prefix, concept in self.prefixes:
                    if token.startswith(prefix):
                        found.setdefault(concept, token)
        return found

    def positions(self, tokens: Sequence[str]) -> list[tuple[int, str]]:
        """(index, concept) of every match start, for rules about words near each other."""
        hits = []
        for i, token in enumerate(tokens):
            for parts, concept in self.phrases.get(token, ()):
                if tuple(tokens[i : i + len(parts)]) == parts:
                    hits.append((i, concept))
            if token.startswith(self._starts):
                hits.extend((i, c) for p, c in self.prefixes if token.startswith(p))
        return hits


class PhraseSet:
    """Phrases to remove from a word list before matching (harmless idioms: "pieds nus")."""

    def __init__(self, phrases: Iterable[str]):
        self.by_first: dict[str, list[tuple[str, ...]]] = {}
        for phrase in sorted(phrases, key=lambda p: -len(words(p))):  # longest first
            parts = tuple(words(phrase))
            self.by_first.setdefault(parts[0], []).append(parts)

    def strip(self, tokens: Sequence[str]) -> list[str]:
        out, i = [], 0
        while i < len(tokens):
            for phrase in self.by_first.get(tokens[i], ()):
                if tuple(tokens[i : i + len(phrase)]) == phrase:
                    i += len(phrase)
                    break
            else:
                out.append(tokens[i])
                i += 1
        return out


@cache
def load_data(name: str) -> dict:
    """A TOML word list shipped in ``llm_prompting/data``."""
    return tomllib.loads(resources.files("llm_prompting").joinpath("data", name).read_text())
