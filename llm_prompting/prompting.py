"""``expand``: the one entry point that the pipeline, the API and the CLI call.

1. check the input (``check_prompt``): not empty, not too long, no control or
   text-direction characters; and a known style;
2. look the request up in the cache;
3. moderate the user's words (``PromptRejected`` with the category);
4. expand with the configured backend; an LLM answer that times out, fails,
   is not the JSON asked for or breaks the contract is replaced by the
   template expander's, with a warning: the request still succeeds;
5. moderate the expansion; an LLM expansion refused here is replaced by the
   template's, which is moderated in turn;
6. remember the result (not after a timeout or server error: the next
   request tries the LLM again).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import replace

from llm_prompting.cache import LRUCache
from llm_prompting.config import PromptingConfig
from llm_prompting.contract import Contract, TokenCounter
from llm_prompting.errors import (
    EmptyPrompt,
    ExpansionFailed,
    InvalidPrompt,
    PromptRejected,
    PromptTooLong,
)
from llm_prompting.expander import ExpandedPrompt, PromptExpander, get_expander
from llm_prompting.moderation import get_moderator
from llm_prompting.styles import Style, get_style
from llm_prompting.template import TemplateExpander

log = logging.getLogger(__name__)

_caches: dict[int, LRUCache[ExpandedPrompt]] = {}
_TEMPLATE = TemplateExpander()

# Line breaks and tabs (with the spaces around them) are layout, not words: each becomes
# one space, so a prompt is one line in sidecars, logs and the gallery. U+2028/U+2029 are
# Unicode's line and paragraph separators.
_BREAKS = re.compile(r"\s*[\t\n\r\u2028\u2029]\s*")
# Refused outright: C0 and C1 controls and DEL (Unicode category Cc: a NUL, the ESC of an
# ANSI colour code), unpaired surrogates (not text; unencodable as UTF-8) and the bidi
# embeddings, overrides and isolates U+202A-U+202E, U+2066-U+2069, which make stored text
# display in another order than it reads ("Trojan Source", CVE-2021-42574).
_REFUSED = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"  # Cc but \t \n \r
    r"\ud800-\udfff"  # surrogates
    r"\u202a-\u202e\u2066-\u2069]"  # bidi embeddings, overrides, isolates
)
_UNNAMED = {"Cc": "a control character", "Cs": "an unpaired surrogate"}
# NFC joins at most 4 code points into one (U+1F82 is 4 in NFD): text this much over the
# limit stays over it, so a huge body is refused before the work of normalising it.
_NFC_MAX_SHRINK = 4


def check_prompt(prompt: str, max_chars: int = PromptingConfig.max_prompt_chars) -> str:
    """The user's ``prompt`` as every later stage sees and stores it: trimmed, in Unicode NFC,
    line breaks and tabs made spaces; at most ``max_chars`` characters after that.

    Entry points (the API, the CLI, batch manifests) call this where the prompt comes in;
    ``expand`` calls it again, which changes nothing in a checked prompt. Raises
    ``EmptyPrompt``, ``PromptTooLong`` or ``InvalidPrompt`` (naming the character).
    """
    text = prompt.strip()
    if len(text) > max_chars * _NFC_MAX_SHRINK:
        raise _too_long(text, max_chars)
    # Searched before trimming: str.strip() would quietly drop some controls at the ends.
    if (bad := _REFUSED.search(prompt)) is not None:
        char = bad.group()
        name = unicodedata.name(char, "") or _UNNAMED[unicodedata.category(char)]
        raise InvalidPrompt(
            f"the prompt contains U+{ord(char):04X} ({name}) at character {bad.start() + 1}; "
            "control characters and text-direction overrides are not allowed in prompts"
        )
    text = _BREAKS.sub(" ", unicodedata.normalize("NFC", text)).strip()
    if not text:
        raise EmptyPrompt("the prompt is empty")
    if len(text) > max_chars:
        raise _too_long(text, max_chars)
    return text


def _too_long(text: str, max_chars: int) -> PromptTooLong:
    return PromptTooLong(f"the prompt has {len(text)} characters; the limit is {max_chars}")


def expand(
    prompt: str,
    style: str | None = None,
    config: PromptingConfig | None = None,
    count_tokens: TokenCounter | None = None,
) -> ExpandedPrompt:
    """The user's ``prompt`` as an English image prompt in ``style``, moderated and validated.

    ``count_tokens`` (text -> token positions, start and end included) is the
    pipeline's tokenizers; without it the budget uses ``contract.estimate_tokens``.
    Raises ``PromptRejected`` when moderation refuses the prompt.
    """
    config = config or PromptingConfig()
    text = check_prompt(prompt, config.max_prompt_chars)
    chosen = get_style(style, config.style)
    expander = get_expander(config)
    cache = cache_for(config)
    # The config and the token counter are part of the key: another subject phrase,
    # budget or tokenizer gives another expansion.
    key = (text, chosen.name, expander.name, expander.model_id, config, count_tokens)
    if (hit := cache.get(key)) is not None:
        return hit

    moderator = get_moderator(config)
    verdict = moderator.check(text)
    if not verdict.allowed:
        log.info("prompt refused on input: %s (%s)", verdict.category, verdict.matched)
        raise PromptRejected(verdict.category or "other", moderator=verdict.moderator)

    contract = Contract(config.subject, config.token_budget, count_tokens)
    result, cacheable = _expand(expander, text, chosen, contract)
    verdict = moderator.check(result.prompt, expansion=True)
    if not verdict.allowed and result.backend != _TEMPLATE.name:
        reason = f"moderation refused the {expander.name} expansion ({verdict.category})"
        result = _fallback(text, chosen, contract, reason)
        verdict = moderator.check(result.prompt, expansion=True)
    if not verdict.allowed:
        log.info("prompt refused on output: %s (%s)", verdict.category, verdict.matched)
        raise PromptRejected(
            verdict.category or "other", stage="output", moderator=verdict.moderator
        )
    if cacheable:
        cache.put(key, result)
    return result


def _expand(
    expander: PromptExpander, prompt: str, style: Style, contract: Contract
) -> tuple[ExpandedPrompt, bool]:
    """The backend's expansion if it keeps the contract, else the template's; and cacheability."""
    if expander.name == _TEMPLATE.name:
        result = expander.expand(prompt, style, contract)
        broken = contract.check(prompt, result.prompt)
        notes = [f"the expansion does not keep the contract: {v}" for v in broken]
        return result.with_warnings(*notes), True
    try:
        result = expander.expand(prompt, style, contract)
    except ExpansionFailed as exc:
        return _fallback(
            prompt, style, contract, f"{expander.name}: {exc.reason}"
        ), not exc.transient
    style_terms = set(style.negative_prompt().split(", "))
    own_negative = [t for t in result.negative_prompt.split(", ") if t not in style_terms]
    broken = contract.check(prompt, result.prompt, own_negative)
    if broken:
        log.info("%s expansion broke the contract: %s", expander.name, broken)
        reason = "the answer broke the contract (" + "; ".join(map(str, broken)) + ")"
        return _fallback(prompt, style, contract, f"{expander.name}: {reason}"), True
    return result, True


def _fallback(prompt: str, style: Style, contract: Contract, reason: str) -> ExpandedPrompt:
    log.warning("falling back to the template expander: %s", reason)
    result = _TEMPLATE.expand(prompt, style, contract)
    warning = f"fell back to the template expander: {reason}"
    return replace(result, warnings=(warning, *result.warnings))


def cache_for(config: PromptingConfig) -> LRUCache[ExpandedPrompt]:
    """The process-wide expansion cache of ``config.cache_size`` entries."""
    if config.cache_size not in _caches:
        _caches[config.cache_size] = LRUCache(config.cache_size)
    return _caches[config.cache_size]


def clear_caches() -> None:
    """Forget every remembered expansion (tests, or after changing a server's model)."""
    for cache in _caches.values():
        cache.clear()
