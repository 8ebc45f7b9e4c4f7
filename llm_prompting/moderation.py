"""Prompt moderation: the ``Moderator`` protocol, the offline rule-based default and Llama Guard 3.

Moderation runs twice per request, on the user's words and on the expanded
prompt, and refuses with ``PromptRejected`` carrying one of ``CATEGORIES``:
the categories that matter for likeness images (issue 19), deepfakes of real
office holders included, with word lists in English, French, Spanish, German,
Italian and Portuguese.

The rule moderator reads the text several ways so that spelling tricks do not
slip through: folded (case, accents, look-alike Cyrillic/Greek letters and
invisible characters removed), with digits and symbols read as letters
("s3x", "n@ked", "k1ll"), with ``*`` read as any letter ("n*ked"), with
spaced or dotted letters joined ("n u d e", "n.u.d.e") and with stretched
letters shortened ("nuuuude"). Each reading then goes through three layers:
concept lists refused alone (with stems, word parts and gaps: ``etrangl*``,
``*hakenkreuz*``, ``corde ... cou``), pairs of lists near each other ("a
rope" by "my neck", "shooting" before "people"; ``Pair``), and the rules for
minors. Word lists and pairs live in ``data/moderation.toml``, names in
``data/names.toml``. What no list refuses goes last to a small learned
classifier (``llm_prompting.learned``), which catches some paraphrases.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from llm_prompting.errors import ExpanderUnavailable, ExpansionFailed, ModerationUnavailable
from llm_prompting.instructions import sanitize
from llm_prompting.learned import LearnedModel
from llm_prompting.registry import build_once
from llm_prompting.text import LEET_I, LEET_L, Lexicon, PhraseSet, fold, load_data, squeeze

if TYPE_CHECKING:
    from llm_prompting.config import PromptingConfig
    from llm_prompting.openai_backend import ChatClient

# Reason codes, in order of precedence: a prompt that hits several is refused for the first.
# Stable strings: the API returns one as ``error.category`` (README, "Moderation").
CATEGORIES = (
    "sexual_minors",  # a minor with anything sexual or suggestive
    "minors_harm",  # a minor with violence, weapons, self-harm, drugs, alcohol or abuse
    "sexual",  # nudity, sex, sexualised or intimate framing
    "self_harm",
    "hate",  # slurs, hate symbols, hostility against a group
    "violence",  # against the subject or anyone else
    "deception",  # deepfakes; real figures or office holders in scandals or fake evidence
    "public_figure",  # a named real public figure, in any scene
    "other",  # Llama Guard only: a hazard outside these
)

# Tables of data/moderation.toml that are not word lists.
_NOT_LEXICONS = ("allow", "pairs", "exceptions", "ages")
# Sentence punctuation followed by a space ("me burning toast, my husband laughing").
_CLAUSE = re.compile(r"[,;:!?]+(?=\s|$)")
# "kid's" and "friends'" as two words, the second "s", in every reading.
_POSSESSIVE = re.compile(r"(?<=\w)['’]s\b|(?<=s)['’](?=\s|$)")
# A pair with this category refuses only next to a minor ("kissing" near "in bed").
_NEAR_A_MINOR = "suggestive"
# Categories refused by their own word lists alone (moderation.toml and names.toml).
_DIRECT = ("sexual_minors", "sexual", "self_harm", "hate", "violence", "deception", "public_figure")


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    category: str | None = None  # one of CATEGORIES when refused
    matched: str = ""  # what decided it, for logs and tests; never shown to users
    moderator: str = "rules"


ALLOWED = Verdict(allowed=True)


@dataclass(frozen=True)
class Pair:
    """Two word lists matched near each other make a refusal ("a noose" by "my neck").

    One ``[[pairs]]`` entry of data/moderation.toml. ``within``: the later
    match starts at most this many words after the earlier one ends (1: next
    to each other; 0: anywhere in the prompt); ``ordered``: the second comes
    after the first ("shooting" then "people"); ``breaks``: lists of words
    that may not stand between them ("hitting a ball *with* my son");
    ``unless``: lists whose presence anywhere cancels the pair ("at chess",
    "with my camera"). A second match followed by a possessive "s" ("my kid's
    drawing") does not count: it is not the one acted on. Without ``second``
    the first list refuses alone unless an ``unless`` list is there (a
    swastika, but not at a Hindu temple).
    """

    category: str
    first: tuple[str, ...]
    second: tuple[str, ...] = ()
    within: int = 0
    ordered: bool = False
    breaks: tuple[str, ...] = ()
    unless: tuple[str, ...] = ()

    @classmethod
    def from_toml(cls, entry: dict) -> Pair:
        lists = {k: tuple(v) if isinstance(v, list) else (v,) for k, v in entry.items()
                 if k in ("first", "second", "breaks", "unless")}  # fmt: skip
        return cls(entry["category"], within=entry.get("within", 0),
                   ordered=entry.get("ordered", False), **lists)  # fmt: skip


class Moderator(Protocol):
    name: str

    def check(self, text: str, *, expansion: bool = False) -> Verdict:
        """Whether ``text`` (a user's prompt, or with ``expansion`` an expansion) may be drawn."""
        ...


class RuleModerator:
    """Word lists and patterns in English, French, Spanish, German, Italian, Portuguese; offline.

    With ``learned``, a user's prompt no list refuses is refused when that
    model scores it under its threshold (``matched`` then reads "model: ...").
    Expansions, longer prose than the prompts it learned from, get the lists only.
    """

    name = "rules"

    def __init__(self, learned: LearnedModel | None = None) -> None:
        self.learned = learned
        data, names = load_data("moderation.toml"), load_data("names.toml")
        self.allow = PhraseSet(data["allow"]["phrases"])
        exceptions = data["exceptions"]["words"]
        self.lexicons = {
            key: Lexicon(data[key], exceptions) for key in data if key not in _NOT_LEXICONS
        }
        self.lexicons["public_figure"] = Lexicon(
            {"name": names["public_figures"]["names"], "single": names["public_figures"]["single"]}
        )
        self.pairs = [Pair.from_toml(entry) for entry in data["pairs"]]
        for pair in self.pairs:
            if pair.category not in CATEGORIES and pair.category != _NEAR_A_MINOR:
                raise ValueError(f"pairs: unknown category {pair.category!r}")
            for name in pair.first + pair.second + pair.breaks + pair.unless:
                if name not in self.lexicons:
                    raise ValueError(f"pairs: no word list named {name!r} in moderation.toml")
        self.minor_age = _age_pattern(data["ages"])  # read as the word "underage"
        known = [w for lex in self.lexicons.values() for w in lex.singles]
        self.known = set(known)
        self.by_squeeze = {squeeze(w): w for w in reversed(known)}
        self.by_length: dict[int, list[str]] = {}
        for w in sorted(self.known):
            self.by_length.setdefault(len(w), []).append(w)

    def check(self, text: str, *, expansion: bool = False) -> Verdict:
        hits: dict[str, str] = {}
        readings: list[list[str]] = []
        for view in self.views(text):
            tokens = self.allow.strip(view)
            if tokens in readings:  # most prompts read the same every way
                continue
            readings.append(tokens)
            for category, matched in self._categories(_Reading(tokens, self.lexicons)):
                hits.setdefault(category, matched)
        for category in CATEGORIES:
            if category in hits:
                return Verdict(False, category, hits[category], self.name)
        if self.learned and not expansion and (scores := self.learned.refuses(text)):
            return Verdict(
                False, scores.category, f"model: allowed {scores.allowed:.2f}", self.name
            )
        return ALLOWED

    def views(self, text: str) -> list[list[str]]:
        """The text as several word lists, each undoing one kind of disguise."""
        folded = self.minor_age.sub(_underage, fold(text))  # "my 6 year old", "she's 13"
        plain = _CLAUSE.sub(" , ", folded)  # a comma ends a clause: pairs do not cross it
        plain = _POSSESSIVE.sub(" s", plain)  # "my kid's drawing", "my friends' photos"
        chunks = plain.split()
        return [
            re.findall(r"[^\W_]+|,", plain),
            self._joined(re.findall(r"[^\W_]+|,", plain)),
            [w for c in chunks if (w := self._clean(c, LEET_I))],
            [w for c in chunks if (w := self._clean(c, LEET_L))],
        ]

    def _clean(self, chunk: str, leet: dict[int, int]) -> str:
        """One whitespace-separated chunk as a word: symbols read as letters, then stripped."""
        if chunk == ",":
            return chunk
        if re.search(r"[a-z]", chunk) and re.search(r"[^a-z]", chunk):
            if "*" in chunk.strip("*"):
                chunk = self._wildcard(chunk.strip("*")) or chunk
            chunk = chunk.translate(leet)
        word = re.sub(r"[\W_]", "", chunk)
        if re.search(r"(.)\1\1", word):  # "nuuude": stretched on purpose
            word = self.by_squeeze.get(squeeze(word), word)
        return word

    def _wildcard(self, chunk: str) -> str | None:
        """A listed word that ``chunk`` spells with ``*`` for some letters ("n*ked")."""
        core = re.sub(r"[^\w*]", "", chunk)
        pattern = re.compile(re.escape(core).replace(r"\*", "[a-z]"))
        return next((w for w in self.by_length.get(len(core), ()) if pattern.fullmatch(w)), None)

    def _joined(self, tokens: list[str]) -> list[str]:
        """Runs of three or more one-letter words joined, and listed words found inside them."""
        out: list[str] = []
        i = 0
        while i < len(tokens):
            j = i
            while j < len(tokens) and len(tokens[j]) == 1 and tokens[j] != ",":
                j += 1
            if j - i >= 3:
                run = "".join(tokens[i:j])
                inside = [w for w in self.known if len(w) >= 3 and w in run]
                out.extend(inside or [run])
                i = j
            else:
                out.append(tokens[i])
                i += 1
        return out

    def _categories(self, reading: _Reading) -> Iterable[tuple[str, str]]:
        """(category, what matched) for one reading of the prompt, idioms already removed.

        Three layers: each category's own lists (words refused alone), then the
        pairs (words refused together), then the rules for minors.
        """
        found = {category: list(reading.found(category).values()) for category in _DIRECT}
        for pair in self.pairs:
            matched = self._pair(pair, reading)
            if matched:
                found.setdefault(pair.category, []).append(matched)
        for category, matches in found.items():
            if category == _NEAR_A_MINOR:  # used by the rules for minors only
                continue
            for matched in matches:
                yield category, matched
        yield from self._minors(reading, found)

    def _pair(self, pair: Pair, reading: _Reading) -> str | None:
        """What made ``pair`` match in the reading ("noose ... neck"), or None."""
        tokens = reading.tokens
        if any(reading.spans(name) for name in pair.unless):
            return None
        firsts = [(i, end) for name in pair.first for i, end, _ in reading.spans(name)]
        if not firsts:
            return None
        if not pair.second:
            a, a_end = firsts[0]
            return " ".join(tokens[a:a_end])
        seconds = [(i, end) for name in pair.second for i, end, _ in reading.spans(name)
                   if tokens[end : end + 1] != ["s"]]  # fmt: skip
        breaks = [i for name in pair.breaks for i, _, _ in reading.spans(name)]
        for a, a_end in firsts:
            for b, b_end in seconds:
                if a == b:  # the same words
                    continue
                if pair.ordered and b < a:
                    continue
                gap = max(a, b) - (a_end if a < b else b_end) + 1  # 1: next to each other
                if pair.within and gap > pair.within:
                    continue
                if any(min(a_end, b_end) <= k < max(a, b) for k in breaks):
                    continue
                return f"{' '.join(tokens[a:a_end])} ... {' '.join(tokens[b:b_end])}"
        return None

    def _minors(self, reading: _Reading, found: dict[str, list[str]]) -> Iterable[tuple[str, str]]:
        """A minor (a word, or an age read as "underage") with anything sexual, or with a harm.

        One's own child counts as a minor with anything refused as sexual ("my
        stepdaughter in bed together"), and with any violence.
        """
        minors = reading.found("minors")
        violence = found["violence"] + found["self_harm"]
        offspring = reading.found("offspring")
        if offspring and found["sexual"]:  # "setz meine Stieftochter auf ein erotisches Foto"
            yield "sexual_minors", f"{next(iter(offspring.values()))} + {found['sexual'][0]}"
        if offspring and violence:  # "ich verprügle meinen Sohn"
            yield "minors_harm", f"{next(iter(offspring.values()))} + {violence[0]}"
        if not minors:
            return
        minor = next(iter(minors.values()))
        sexual = [
            *(reading.found("sexual") | reading.found("suggestive") | reading.found("revealing")),
            *found.get(_NEAR_A_MINOR, []),
        ]
        if sexual:
            yield "sexual_minors", f"{minor} + {sexual[0]}"
        harm = [*reading.found("harm_to_minors").values(), *violence]
        if harm:  # "a ten year old holding a rifle"
            yield "minors_harm", f"{minor} + {harm[0]}"


class _Reading:
    """One reading of a prompt (its words) and each word list's matches in it, found once."""

    def __init__(self, tokens: list[str], lexicons: dict[str, Lexicon]):
        self.tokens = tokens
        self._lexicons = lexicons
        self._spans: dict[str, list[tuple[int, int, str]]] = {}

    def spans(self, name: str) -> list[tuple[int, int, str]]:
        """(start, end, concept) of each match of the word list ``name``."""
        if name not in self._spans:
            spans = list(self._lexicons[name].matches(self.tokens))
            if name == "public_figure":  # a name inside an attribute ("Frida Kahlo") goes too
                things = [(i, k) for i, k, _ in spans if self._attribute(i, k)]
                spans = [s for s in spans if not any(i <= s[0] and s[1] <= k for i, k in things)]
            self._spans[name] = spans
        return self._spans[name]

    def _attribute(self, start: int, end: int) -> bool:
        """Whether the name at ``tokens[start:end]`` names a thing, not a person shown:
        clothes ("a Ronaldo jersey", "la camiseta de Messi") or a style ("a Wes
        Anderson style hotel", "in the style of Annie Leibovitz", "in stile Fellini")."""
        spans = self.spans("attribute")
        at = {concept: {i for i, _, c in spans if c == concept} for concept in ("after", "of")}
        ends = {concept: {k for _, k, c in spans if c == concept} for concept in ("item", "by")}
        after = end + (self.tokens[end : end + 1] == ["s"])  # "Messi's shirt"
        return (
            after in at["after"]
            or start in ends["by"]
            or (start - 1 in at["of"] and start - 1 in ends["item"])
        )

    def found(self, name: str) -> dict[str, str]:
        """The concepts of ``name`` found, each with the words that matched first."""
        found: dict[str, str] = {}
        for i, end, concept in self.spans(name):
            found.setdefault(concept, " ".join(self.tokens[i:end]))
        return found


def _age_pattern(ages: dict[str, list[str]]) -> re.Pattern[str]:
    """An age under 18 in figures or words, folded text.

    With a unit ("14 years old", "15-jähriges", "quatorze ans") unless a span
    of time follows ("10 years younger"); after a word that announces an age
    ("she's 13", "at age sixteen", "when I was 15"; "me at 12", "mit 15" and
    "a los 13" with 10 to 17 in figures only) unless a unit of something else
    follows ("5 feet", "7 pm"); or alone between brackets or commas ("mein
    Neffe (10)", "my nephew, 10, holding").
    """

    def one_of(key: str) -> str:
        return "|".join(r"[\s'’]*".join(map(re.escape, w.split())) for w in ages[key])

    figures = ["\\d", "1[0-7]"]
    numbers = "|".join(figures + [re.escape(w) for w in ages["under_18"]])
    unambiguous = [w for w in ages["under_18"] if w not in ages["not_alone"]]
    alone = "|".join(figures + [re.escape(w) for w in unambiguous])
    units = "|".join(re.escape(w) for w in sorted(ages["units"], key=len, reverse=True))
    not_age = rf"(?!\s*(?:{one_of('not_ages')}|{units})(?!\w)|[.,:]\d)"
    age, teen = rf"(?:{alone})\b{not_age}", rf"1[0-7]\b{not_age}"
    return re.compile(
        rf"\b(?:{numbers})\s*-?\s*(?:{units})\b(?!\s*(?:{one_of('not_after_unit')})\b)"
        rf"|(?P<before>\b(?:{one_of('before')})\s+){age}"
        rf"|(?P<before_figures>\b(?:{one_of('before_figures')})\s+){teen}"
        rf"|\(\s*{age}\s*\)|(?<=\w),\s*{age}\s*,"
    )


def _underage(age: re.Match[str]) -> str:
    """An age under 18 as the word "underage" ("me at 12" -> "me at underage")."""
    return f"{age['before'] or age['before_figures'] or ''} underage "


# Llama Guard 3 takes its categories in the prompt ("custom categories" in its
# model card): it is asked this project's own, S1..S8, and answers with their codes.
GUARD_POLICY = {
    "S1": ("sexual_minors", "Sexual content involving minors",
           "Any sexual, suggestive or nude depiction of a person under 18."),
    "S2": ("minors_harm", "Harm to minors",
           "A child or teenager with violence, weapons, injuries, self-harm, drugs, alcohol "
           "or tobacco, or as a soldier."),
    "S3": ("sexual", "Sexual or intimate content",
           "Nudity, sex, or a sexualised or intimate depiction of a person (lingerie, "
           "seductive poses, bedroom or shower scenes)."),
    "S4": ("self_harm", "Self-harm", "Suicide, self-injury, eating disorders."),
    "S5": ("hate", "Hate",
           "Slurs, hate symbols (swastikas, SS runes, Klan robes, burning crosses), "
           "hostility against a protected group."),
    "S6": ("violence", "Violence",
           "Violence against the person shown or anyone else: killing, stabbing, shooting, "
           "beating, gore."),
    "S7": ("deception", "Deceptive depictions of real people",
           "Images that could pass as evidence of something a real public figure or office "
           "holder never did: crimes, arrests, bribes, scandals, compromising or leaked photos, "
           "fake news or campaign material, election fraud, deepfakes."),
    "S8": ("public_figure", "Real public figures",
           "Any named real, living public figure: politicians, celebrities, athletes."),
}  # fmt: skip

# Llama Guard 3's own hazard categories (MLCommons), for ``guard_policy="builtin"``.
LLAMA_GUARD_CATEGORIES = {
    "S1": "violence",  # violent crimes
    "S3": "sexual",  # sex-related crimes
    "S4": "sexual_minors",  # child sexual exploitation
    "S5": "deception",  # defamation
    "S7": "public_figure",  # privacy
    "S10": "hate",
    "S11": "self_harm",
    "S12": "sexual",  # sexual content
    "S13": "deception",  # elections
}

# Without <|begin_of_text|>: vLLM and llama.cpp's server add it to a raw prompt themselves.
_GUARD_TASK = """<|start_header_id|>user<|end_header_id|>

Task: Check if there is unsafe content in 'User' messages in conversations according our \
safety policy with the below categories.

<BEGIN UNSAFE CONTENT CATEGORIES>
{categories}
<END UNSAFE CONTENT CATEGORIES>

<BEGIN CONVERSATION>

User: {text}

<END CONVERSATION>

Provide your safe assessment for ONLY THE LAST User message in the above conversation:
 - First line must read 'safe' or 'unsafe'.
 - If unsafe, a second line must include a comma-separated list of violated categories.\
<|eot_id|><|start_header_id|>assistant<|end_header_id|>

"""


def llama_guard_prompt(text: str) -> str:
    """Llama Guard 3's prompt with this project's categories; special tokens in ``text`` removed."""
    categories = "\n".join(
        f"{code}: {title}.\n{what}" for code, (_, title, what) in GUARD_POLICY.items()
    )
    return _GUARD_TASK.format(categories=categories, text=sanitize(text))


class LlamaGuardModerator:
    """The rule moderator first (cheap, and the only one that knows names), then Llama Guard 3.

    Llama Guard answers ``safe`` or ``unsafe`` and a line of category codes
    (``S1,S6``). With the ``imagine`` policy it is given ``GUARD_POLICY`` (our
    categories, in a raw prompt to ``/completions``); with ``builtin`` the
    server's chat template adds its MLCommons policy, mapped by
    ``LLAMA_GUARD_CATEGORIES``. When the server does not answer, moderation
    fails closed: ``ModerationUnavailable``.
    """

    name = "llama_guard"

    def __init__(self, client: ChatClient, rules: RuleModerator, policy: str = "imagine"):
        if policy not in ("imagine", "builtin"):
            raise ExpanderUnavailable(f"guard_policy must be imagine or builtin, got {policy!r}")
        self.client = client
        self.rules = rules
        self.policy = policy

    def check(self, text: str, *, expansion: bool = False) -> Verdict:
        verdict = self.rules.check(text, expansion=expansion)
        if not verdict.allowed:
            return verdict
        try:
            if self.policy == "imagine":
                answer = self.client.complete_text(llama_guard_prompt(text), max_tokens=16)
                return parse_llama_guard(answer, {k: v[0] for k, v in GUARD_POLICY.items()})
            answer = self.client.complete([{"role": "user", "content": text}], max_tokens=16)
        except ExpansionFailed as exc:
            raise ModerationUnavailable(f"Llama Guard did not answer: {exc.reason}") from None
        return parse_llama_guard(answer)


def parse_llama_guard(answer: str, codes: dict[str, str] = LLAMA_GUARD_CATEGORIES) -> Verdict:
    """``safe`` / ``unsafe`` + codes as a verdict; codes missing from ``codes`` are ``other``."""
    lines = [line.strip() for line in answer.strip().splitlines() if line.strip()]
    if lines and lines[0].lower() == "safe":
        return Verdict(True, moderator="llama_guard")
    if not lines or lines[0].lower() != "unsafe":
        raise ModerationUnavailable(f"Llama Guard gave an answer that is not a verdict: {answer!r}")
    found = re.findall(r"S\d+", lines[1]) if len(lines) > 1 else []
    categories = [codes.get(code, "other") for code in found] or ["other"]
    category = min(categories, key=CATEGORIES.index)
    return Verdict(False, category, ",".join(found), "llama_guard")


def _rules(config: PromptingConfig) -> Moderator:
    return _rule_moderator(config.moderation_model)


def _llama_guard(config: PromptingConfig) -> Moderator:
    from llm_prompting.openai_backend import ChatClient

    client = ChatClient(config.guard_server())
    # Llama Guard reads paraphrases itself: the word lists stand in front of it, not the model.
    return LlamaGuardModerator(client, _rule_moderator(learned=False), config.guard_policy)


_shared: dict[bool, RuleModerator] = {}


def _rule_moderator(learned: bool) -> RuleModerator:
    """One rule moderator per process for each choice of the learned layer."""
    if learned not in _shared:
        _shared[learned] = RuleModerator(LearnedModel.load() if learned else None)
    return _shared[learned]


MODERATORS: dict[str, Callable[[PromptingConfig], Moderator]] = {
    "rules": _rules,
    "llama_guard": _llama_guard,
}


def get_moderator(config: PromptingConfig) -> Moderator:
    """The moderator named by ``config.moderator``, built once per config value."""
    return build_once("moderator", MODERATORS, config.moderator, config)
