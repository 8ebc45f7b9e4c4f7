"""The ``openai`` backend: Llama 3.1 Instruct behind any OpenAI-compatible chat-completions server.

vLLM, llama.cpp's server, Ollama and TGI all serve ``POST {base_url}/chat/completions``.
The answer is asked for as JSON matching ``instructions.ANSWER_SCHEMA``
(``response_format`` of type ``json_schema``; ``json_object`` or nothing for
servers that do not take a schema) and validated against it either way.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import httpx

from llm_prompting.config import PromptingConfig, ServerConfig
from llm_prompting.errors import ExpanderUnavailable, ExpansionFailed
from llm_prompting.instructions import ANSWER_SCHEMA, ChatExpander, Messages

BACKOFF_S = 0.25  # first pause before a retry; doubles each time


class ChatClient:
    """One OpenAI-compatible server: ``complete`` gives the reply or raises ``ExpansionFailed``."""

    def __init__(self, server: ServerConfig):
        if server.json_mode not in ("json_schema", "json_object", "none"):
            raise ExpanderUnavailable(
                f"json_mode must be json_schema, json_object or none, got {server.json_mode!r}"
            )
        self.server = server
        self.url = server.base_url.rstrip("/") + "/chat/completions"
        headers = {"Authorization": f"Bearer {server.api_key}"} if server.api_key else {}
        self.http = httpx.Client(headers=headers, timeout=server.timeout)

    def complete(
        self, messages: Messages, *, max_tokens: int = 256, schema: dict[str, Any] | None = None
    ) -> str:
        body: dict[str, Any] = {
            "model": self.server.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": 0.0,  # the same prompt should give the same expansion
        }
        if schema is not None and self.server.json_mode == "json_schema":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "expansion", "schema": schema, "strict": True},
            }
        elif schema is not None and self.server.json_mode == "json_object":
            body["response_format"] = {"type": "json_object"}
        attempts, error = self.server.retries + 1, ""
        for attempt in range(attempts):
            if attempt:
                time.sleep(BACKOFF_S * 2 ** (attempt - 1))
            try:
                response = self.http.post(self.url, json=body)
            except httpx.TimeoutException:
                # Not retried: a retry would double the user's wait for the same outcome.
                raise ExpansionFailed(
                    f"no answer within {self.server.timeout:g} s", transient=True
                ) from None
            except httpx.TransportError as exc:
                error = f"cannot reach {self.url}: {exc}"
                continue
            if response.status_code == 429 or response.status_code >= 500:
                error = f"HTTP {response.status_code} from {self.url}"
                continue
            if response.status_code >= 400:
                raise ExpansionFailed(
                    f"HTTP {response.status_code} from {self.url}: {response.text[:200]}",
                    transient=True,
                )
            return _content(response)
        tries = f"{attempts} attempt" + ("s" if attempts > 1 else "")
        raise ExpansionFailed(f"{error}; gave up after {tries}", transient=True)


def _content(response: httpx.Response) -> str:
    """The assistant's text of a chat-completions response."""
    try:
        content = response.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise ExpansionFailed(
            f"the server's response is not a chat completion: {response.text[:80]!r}"
        ) from None
    if not isinstance(content, str):
        raise ExpansionFailed("the server's response has no text content")
    return content


def openai_expander(config: PromptingConfig) -> ChatExpander:
    client = ChatClient(config.server)
    complete = functools.partial(
        client.complete, max_tokens=config.max_new_tokens, schema=ANSWER_SCHEMA
    )
    return ChatExpander("openai", config.server.model, complete)
