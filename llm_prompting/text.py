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
from collections.abc import Iterable, Iterator, Mapping, Sequence
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


GAP = 3  # "..." in a phrase: up to this many words in between
KEPT = ("...", ",")  # not words, but kept in phrases: a gap, a clause's end


def _word_pattern(word: str) -> str:
    """A phrase word as a regular expression on one folded word ("stab*" -> "stab.*")."""
    return ".*".join(re.escape(part) for part in word.split("*"))


class Lexicon:
    """Concepts, each a list of phrases; finds which concepts occur in a list of words.

    A phrase is one or more words written as they look after ``fold``. A word
    may carry ``*`` for any letters: ``etrangl*`` is a stem (every conjugation
    of "étrangler"), ``*kreuz`` an ending, ``*hakenkreuz*`` a part of a longer
    word (German compounds: "Hakenkreuzfahne"). ``...`` stands for up to
    ``GAP`` words ("corde ... cou"). ``exceptions`` are words (same syntax)
    that no stem or part may match: the false friends ("nazionale" is not
    ``nazi*``, "Nudeln" not ``nud*``); whole words still match them.
    """

    def __init__(self, concepts: Mapping[str, Iterable[str]], exceptions: Iterable[str] = ()):
        self.phrases: dict[str, list[tuple[tuple[str, ...], str]]] = {}  # by first word
        self.wild: list[tuple[tuple[str, ...], str]] = []  # phrases whose first word has a *
        self.singles: dict[str, str] = {}  # one-word phrases: the moderator's spelling repairs
        self._patterns: dict[str, re.Pattern[str]] = {}
        for concept, phrases in concepts.items():
            for phrase in phrases:
                parts = tuple(self._parts(phrase))
                if not parts or parts[0] == "..." or parts[-1] == "...":
                    raise ValueError(f"bad phrase in concept {concept!r}: {phrase!r}")
                for part in parts:
                    if "*" in part:
                        self._patterns[part] = re.compile(_word_pattern(part))
                if "*" in parts[0]:
                    self.wild.append((parts, concept))
                    continue
                self.phrases.setdefault(parts[0], []).append((parts, concept))
                if len(parts) == 1:
                    self.singles[parts[0]] = concept
        firsts = sorted({_word_pattern(p[0]) for p, _ in self.wild})
        self._first = re.compile("|".join(firsts)) if firsts else None
        excepted = sorted(_word_pattern(self._parts(w)[0]) for w in exceptions)
        self._except = re.compile("|".join(excepted)) if excepted else None

    @staticmethod
    def _parts(phrase: str) -> list[str]:
        """A phrase's words, folded, each keeping its ``*`` marks; ``...`` and ``,`` kept."""
        return [
            chunk if chunk in KEPT else "*".join("".join(words(p)) for p in chunk.split("*"))
            for chunk in fold(phrase).replace("...", " ... ").split()
            if chunk in KEPT or words(chunk)
        ]

    def _is(self, part: str, token: str) -> bool:
        if "*" not in part:
            return part == token
        if self._except and self._except.fullmatch(token):
            return False
        return self._patterns[part].fullmatch(token) is not None

    def _end(self, parts: Sequence[str], tokens: Sequence[str], i: int) -> int | None:
        """Where ``parts`` ends when matched at ``tokens[i]``, or None."""
        for k, part in enumerate(parts):
            if part == "...":
                rest = parts[k + 1 :]
                for skip in range(GAP + 1):
                    end = self._end(rest, tokens, i + skip)
                    if end is not None:
                        return end
                return None
            if i >= len(tokens) or not self._is(part, tokens[i]):
                return None
            i += 1
        return i

    def matches(self, tokens: Sequence[str]) -> Iterator[tuple[int, int, str]]:
        """(start, end, concept) of every match in ``tokens`` (folded words)."""
        for i, token in enumerate(tokens):
            candidates = self.phrases.get(token, [])
            if self._first and self._first.fullmatch(token):
                candidates = candidates + self.wild
            for parts, concept in candidates:
                end = self._end(parts, tokens, i)
                if end is not None:
                    yield i, end, concept

    def positions(self, tokens: Sequence[str]) -> list[tuple[int, str]]:
        """(index, concept) of every match start, for rules about words near each other."""
        return [(i, concept) for i, _, concept in self.matches(tokens)]

    def find(self, tokens: Sequence[str]) -> dict[str, str]:
        """Concepts found in ``tokens``, each with the words that matched first."""
        found: dict[str, str] = {}
        for i, end, concept in self.matches(tokens):
            found.setdefault(concept, " ".join(tokens[i:end]))
        return found


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
