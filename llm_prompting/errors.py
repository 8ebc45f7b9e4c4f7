"""Errors raised by the llm_prompting package, each with a stable ``code``.

The API maps codes to HTTP statuses in one place; the CLI prints
``error: <code>: <message>`` and exits 2. An LLM that misbehaves is not an
error: its answer is replaced by the template expander's, with a warning.
"""

from __future__ import annotations


class PromptingError(Exception):
    """A prompt or a setting was refused; ``code`` is stable, ``message`` is for people."""

    code = "prompting_error"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message


class PromptRejected(PromptingError):
    """Moderation refused the prompt; ``category`` says why (one of ``moderation.CATEGORIES``)."""

    code = "prompt_rejected"

    def __init__(self, category: str, *, stage: str = "input", moderator: str = "rules"):
        where = "your prompt" if stage == "input" else "the expanded prompt"
        super().__init__(f"{where} was refused by moderation (category: {category})")
        self.category = category
        self.stage = stage  # "input": the user's words; "output": the expansion
        self.moderator = moderator


class EmptyPrompt(PromptingError):
    code = "empty_prompt"


class PromptTooLong(PromptingError):
    code = "prompt_too_long"


class InvalidPrompt(PromptingError):
    """The prompt holds characters no prompt needs: controls, text-direction overrides."""

    code = "invalid_prompt"


class UnknownStyle(PromptingError):
    code = "unknown_style"


class ExpanderUnavailable(PromptingError):
    """The configured expander or moderator cannot start (unknown name, missing model folder)."""

    code = "expander_unavailable"


class ModerationUnavailable(PromptingError):
    """The configured Llama Guard server did not answer: fail closed, an operator error."""

    code = "moderation_unavailable"


class ExpansionFailed(Exception):
    """An LLM backend gave no usable answer. Never reaches users: ``expand`` falls back.

    ``transient`` failures (timeouts, 5xx, refused connections) are not cached,
    so the next request tries the LLM again.
    """

    def __init__(self, reason: str, *, transient: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.transient = transient
