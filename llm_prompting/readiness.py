"""Whether the configured LLM servers answer: for the service's ``/readyz``.

One ``GET {base_url}/models`` per server, with a short timeout, so that a
readiness probe stays cheap and bounded however the server is doing. The
expander is optional (its failures fall back to the template expander); a
Llama Guard moderator is required (moderation fails closed without it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from llm_prompting.config import PromptingConfig, ServerConfig
from llm_prompting.errors import ExpansionFailed

PROBE_TIMEOUT_S = 2.0  # at most this long per server, whatever IMAGINE_OPENAI_TIMEOUT says


@dataclass(frozen=True)
class Check:
    name: str  # the expander's or moderator's name
    ok: bool
    required: bool  # when False, a failure does not make the service unready
    detail: str  # for operators: what answered, or why not

    def public(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def check_expander(config: PromptingConfig, timeout: float = PROBE_TIMEOUT_S) -> Check:
    if config.expander != "openai":
        return Check(config.expander, True, False, "in process, nothing to reach")
    return _probe("openai", config.server, timeout, required=False,
                  fallback="; expansions fall back to the template expander")  # fmt: skip


def check_moderator(config: PromptingConfig, timeout: float = PROBE_TIMEOUT_S) -> Check:
    if config.moderator != "llama_guard":
        return Check(config.moderator, True, True, "in process, nothing to reach")
    return _probe("llama_guard", config.guard_server(), timeout, required=True,
                  fallback="; prompts are refused with moderation_unavailable")  # fmt: skip


def _probe(
    name: str, server: ServerConfig, timeout: float, *, required: bool, fallback: str
) -> Check:
    from llm_prompting.openai_backend import ChatClient

    quick = dataclasses.replace(server, timeout=min(timeout, server.timeout), retries=0)
    try:
        served = ChatClient(quick).ping()
    except ExpansionFailed as exc:
        return Check(name, False, required, f"{server.base_url}: {exc.reason}{fallback}")
    if server.model not in served.split(", "):
        why = f"{server.base_url} does not serve {server.model!r} (it serves: {served}){fallback}"
        return Check(name, False, required, why)
    return Check(name, True, required, f"{server.base_url} serves {server.model}")
