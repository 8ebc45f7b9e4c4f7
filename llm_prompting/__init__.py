"""Prompt moderation and Llama 3.1 prompt expansion.

    from llm_prompting import PromptingConfig, expand

    result = expand("moi en astronaute sur Mars", "cinematic", PromptingConfig(expander="openai"))
    result.prompt, result.negative_prompt, result.added, result.warnings

``expand`` moderates the user's words, expands them with the configured
backend (``EXPANDERS``: template, openai, transformers), checks the expansion
against the contract, falls back to the template expander when an LLM fails,
and moderates the result. Refusals raise ``PromptRejected`` (code
``prompt_rejected``, with ``category``).
"""

from llm_prompting.config import PromptingConfig, ServerConfig
from llm_prompting.contract import Contract, Violation, estimate_tokens
from llm_prompting.errors import PromptingError, PromptRejected
from llm_prompting.expander import EXPANDERS, ExpandedPrompt, PromptExpander, get_expander
from llm_prompting.moderation import CATEGORIES, MODERATORS, Moderator, Verdict, get_moderator
from llm_prompting.prompting import check_prompt, clear_caches, expand
from llm_prompting.styles import STYLES, Style

__all__ = [
    "CATEGORIES",
    "EXPANDERS",
    "MODERATORS",
    "STYLES",
    "Contract",
    "ExpandedPrompt",
    "Moderator",
    "PromptExpander",
    "PromptRejected",
    "PromptingConfig",
    "PromptingError",
    "ServerConfig",
    "Style",
    "Verdict",
    "Violation",
    "check_prompt",
    "clear_caches",
    "estimate_tokens",
    "expand",
    "get_expander",
    "get_moderator",
]
