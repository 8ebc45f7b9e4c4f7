"""What prompting needs to run, filled by ``imagine.settings.Settings.prompting()``.

Frozen and hashable: expanders and moderators are built once per config value.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

# Both SDXL text encoders are CLIP models with 77 positions, start and end tokens included.
SDXL_TOKEN_BUDGET = 77


@dataclass(frozen=True)
class ServerConfig:
    """An OpenAI-compatible chat-completions server (vLLM, llama.cpp, Ollama, TGI)."""

    base_url: str = "http://127.0.0.1:8000/v1"  # up to and including /v1
    model: str = "meta-llama/Llama-3.1-8B-Instruct"
    api_key: str = field(default="", repr=False)  # sent as a bearer token when set
    timeout: float = 20.0  # seconds for one request, connection included
    retries: int = 1  # extra attempts after a refused connection, 429 or 5xx; timeouts are final
    json_mode: str = "json_schema"  # "json_schema" | "json_object" | "none": how to ask for JSON
    stream: bool = False  # ask for server-sent events; the timeout then bounds the whole answer


@dataclass(frozen=True)
class PromptingConfig:
    expander: str = "template"  # "template" | "openai" | "transformers"
    style: str = "photo"  # style used when a request names none
    subject: str = "a person"  # the phrase that stands for the user in every expansion
    server: ServerConfig = field(default_factory=ServerConfig)
    model_dir: Path | None = None  # Llama 3.1 Instruct folder for the transformers backend
    device: str = "auto"  # "auto" | "cpu" | "cuda", for the transformers backend
    max_new_tokens: int = 256  # answer length cap for either LLM backend
    moderator: str = "rules"  # "rules" | "llama_guard"
    moderation_model: bool = True  # the learned layer after the rule lists (llm_prompting.learned)
    guard: ServerConfig | None = None  # Llama Guard 3 server; None: the expander's server
    guard_model: str = "meta-llama/Llama-Guard-3-8B"
    # "imagine": Llama Guard 3 is given this project's categories (POST /completions);
    # "builtin": the server's chat template and its MLCommons categories, mapped to ours
    guard_policy: str = "imagine"
    token_budget: int = SDXL_TOKEN_BUDGET
    max_prompt_chars: int = 500  # longer user prompts are refused (prompt_too_long)
    cache_size: int = 1024  # expansions remembered per process; 0 turns the cache off

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)

    def guard_server(self) -> ServerConfig:
        base = self.guard or self.server
        return dataclasses.replace(base, model=self.guard_model, json_mode="none", stream=False)
