"""The template expander: deterministic, offline, rule-based; the default and the fallback.

It anchors the subject (the first "me", "I", "moi", "yo", "ich"... becomes the
subject phrase), frames the user's words with the style preset and adds the
style's details while the token budget allows. It does not translate and
knows nothing of scenes: a prompt in another language stays in that language,
and the expansion says so in its warnings.
"""

from __future__ import annotations

import re

from llm_prompting.contract import Contract
from llm_prompting.expander import ExpandedPrompt, compose
from llm_prompting.styles import Style

TEMPLATE_VERSION = "template-1"

# First-person words that stand for the user, by language; the first one found
# becomes the subject phrase. "I'm" / "I am" lose their verb: "I'm surfing" ->
# "a person surfing".
_ANCHOR = re.compile(
    r"\b(?:i'm|i’m|i am|myself|me|i|moi|je|yo|ich|mich|io|eu)\b(?!['’]\w)", re.IGNORECASE
)
# "make me a pirate", "a photo of me as ...": words around the subject; the style gives the frame.
_REQUEST = re.compile(
    r"^(?:please\s+)?(?:(?:make|turn|show|draw|paint|render|create|generate|imagine|picture|put)"
    r"\s+(?=me\b|myself\b)|(?:an?\s+)?(?:photo|picture|image|portrait|painting|drawing|pic)"
    r"\s+of\s+)",
    re.IGNORECASE,
)
# Later first-person words in English, from outside: "me and my dog" -> "a person and their dog".
_THIRD_PERSON = {"me": "them", "myself": "themselves", "my": "their", "mine": "theirs"}

# A few frequent function words per language; a prompt with more of another
# language's than of English's is "not English".
_STOPWORDS = {
    "en": "me i my as an a the in on at with of and to is riding wearing",
    "fr": "moi je en sur dans avec le la les un une des du au aux et mon ma mes comme qui",
    "es": "yo como en con el la los las un una unos del al y mi mis sobre que",
    "de": "ich mich als auf im in mit der die das ein eine einem einer und mein meine am zum",
    "it": "io come sulla nella con il lo la gli un una del della e mio mia",
    "pt": "eu como na no em com o os as um uma do da e meu minha",
}
_LANGUAGE_NAMES = {
    "fr": "looks French",
    "es": "looks Spanish",
    "de": "looks German",
    "it": "looks Italian",
    "pt": "looks Portuguese",
    "other": "is not in the Latin alphabet",
}


def guess_language(text: str) -> str | None:
    """One of fr, es, de, it, pt, other (non-Latin script); None for English or unknown."""
    letters = [c for c in text if c.isalpha()]
    if letters and sum(not c.isascii() for c in letters) / len(letters) > 0.5:
        return "other"
    tokens = re.findall(r"[^\W\d_]+", text.casefold())
    scores = {
        lang: sum(t in set(words.split()) for t in tokens) for lang, words in _STOPWORDS.items()
    }
    best = max(scores, key=lambda lang: (scores[lang], lang == "en"))
    return None if best == "en" or scores[best] == 0 else best


def anchor_subject(prompt: str, subject: str) -> str:
    """The user's words with the user replaced by ``subject``, exactly once."""
    text = " ".join(prompt.replace("\u2019", "'").split()).strip(" .!?;:,\"'")
    text = _REQUEST.sub("", text)
    text = re.sub(
        r"^(me|myself)\s+(?:into\s+|like\s+)?(?=(?:an?|the)\s)", r"\1 as ", text, flags=re.I
    )
    first = _ANCHOR.search(text)
    if first is None:
        if re.search(rf"(?<!\w){re.escape(subject)}(?!\w)", text, re.IGNORECASE):
            return text
        lead = text.split(maxsplit=1)[0].lower() if text else ""
        joiner = " " if lead.endswith("ing") else " as "
        return f"{subject}{joiner}{text}".strip()
    head, tail = text[: first.start()], text[first.end() :]
    if guess_language(text) is not None:  # "moi je me vois": French "me" is not English "me"
        return f"{head}{subject}{tail}".strip()
    tail = re.sub(
        r"\b(me|myself|my|mine)\b",
        lambda m: _THIRD_PERSON[m.group(1).lower()],
        tail,
        flags=re.IGNORECASE,
    )
    head = re.sub(r"\b(my)\b", "their", head, flags=re.IGNORECASE)
    return f"{head}{subject}{tail}".strip()


class TemplateExpander:
    name = "template"
    model_id = TEMPLATE_VERSION

    def expand(self, prompt: str, style: Style, contract: Contract) -> ExpandedPrompt:
        scene = anchor_subject(prompt, contract.subject)
        text, added = compose(style, scene, (), contract)
        warnings = []
        language = guess_language(prompt)
        if language is not None:
            warnings.append(
                "the template expander does not translate: your prompt "
                f"{_LANGUAGE_NAMES[language]}, "
                "and image models follow English best; an LLM expander (openai or "
                "transformers) translates it"
            )
        if not contract.fits(text):
            warnings.append(
                f"the prompt takes {contract.tokens(text)} tokens, over the text encoders' "
                f"{contract.budget}: the image model ignores the words past the limit"
            )
        return ExpandedPrompt(
            prompt=text,
            negative_prompt=style.negative_prompt(),
            style=style.name,
            added=added,
            backend=self.name,
            model=self.model_id,
            warnings=tuple(warnings),
            original=prompt,
            tokens=contract.tokens(text),
        )
