"""The ``openai`` backend: Llama 3.1 Instruct behind any OpenAI-compatible chat-completions server.

vLLM, llama.cpp's server, Ollama and TGI all serve ``POST {base_url}/chat/completions``.
The answer is asked for as JSON matching ``instructions.ANSWER_SCHEMA``
(``response_format`` of type ``json_schema``; ``json_object`` or nothing for
servers that do not take a schema) and validated against it either way. With
``stream`` on, the answer comes as server-sent events (``data: {chunk}`` lines,
then ``data: [DONE]``) and the whole request still has one deadline.
``complete_text`` uses ``POST {base_url}/completions`` with a raw prompt: how
Llama Guard gets this project's own categories.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
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
        self.base = server.base_url.rstrip("/")
        self.url = self.base + "/chat/completions"
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
        return self._post(self.url, body, _chat_content, _chat_delta)

    def complete_text(self, prompt: str, *, max_tokens: int = 16) -> str:
        """The continuation of a raw ``prompt`` (``POST /completions``), never streamed."""
        body = {"model": self.server.model, "prompt": prompt, "max_tokens": max_tokens}
        body["temperature"] = 0.0
        return self._post(self.base + "/completions", body, _text_content, None)

    def ping(self) -> str:
        """``GET /models``: the model names the server serves; raises ``ExpansionFailed``."""
        try:
            response = self.http.get(self.base + "/models")
        except httpx.TimeoutException:
            raise ExpansionFailed(f"no answer within {self.server.timeout:g} s") from None
        except httpx.TransportError as exc:
            raise ExpansionFailed(f"cannot reach {self.base}/models: {exc}") from None
        if response.status_code != 200:
            raise ExpansionFailed(f"HTTP {response.status_code} from {self.base}/models")
        try:
            names = [m["id"] for m in response.json()["data"]]
        except (ValueError, KeyError, TypeError):
            raise ExpansionFailed(f"{self.base}/models answered no model list") from None
        return ", ".join(names)

    def _post(
        self,
        url: str,
        body: dict[str, Any],
        content: Callable[[httpx.Response], str],
        delta: Callable[[dict[str, Any]], str] | None,
    ) -> str:
        stream = self.server.stream and delta is not None
        if stream:
            body = {**body, "stream": True}
        attempts, error = self.server.retries + 1, ""
        for attempt in range(attempts):
            if attempt:
                time.sleep(BACKOFF_S * 2 ** (attempt - 1))
            try:
                if stream:
                    assert delta is not None
                    return self._stream(url, body, delta)
                response = self.http.post(url, json=body)
                _check_status(response, url)
            except httpx.TimeoutException:
                # Not retried: a retry would double the user's wait for the same outcome.
                raise ExpansionFailed(
                    f"no answer within {self.server.timeout:g} s", transient=True
                ) from None
            except httpx.TransportError as exc:
                error = f"cannot reach {url}: {exc}"
                continue
            except _Retry as retry:
                error = str(retry)
                continue
            return content(response)
        tries = f"{attempts} attempt" + ("s" if attempts > 1 else "")
        raise ExpansionFailed(f"{error}; gave up after {tries}", transient=True)

    def _stream(self, url: str, body: dict[str, Any], delta: Callable[[dict], str]) -> str:
        """Server-sent events joined into one text, within one deadline for the whole answer."""
        deadline = time.monotonic() + self.server.timeout
        parts: list[str] = []
        with self.http.stream("POST", url, json=body) as response:
            if response.status_code >= 400:
                response.read()
                _check_status(response, url)
            for line in response.iter_lines():
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout("the stream outlasted the timeout")
                if not line.startswith("data:"):
                    continue  # blank separators, comments (": ping"), event names
                data = line.removeprefix("data:").strip()
                if data == "[DONE]":
                    return "".join(parts)
                try:
                    parts.append(delta(json.loads(data)))
                except (ValueError, KeyError, IndexError, TypeError):
                    raise ExpansionFailed(
                        f"a streamed chunk is not a chat chunk: {data[:80]!r}"
                    ) from None
        raise ExpansionFailed("the stream ended without data: [DONE]")


class _Retry(Exception):
    """A status worth another attempt (429, 5xx)."""


def _check_status(response: httpx.Response, url: str) -> None:
    if response.status_code == 429 or response.status_code >= 500:
        raise _Retry(f"HTTP {response.status_code} from {url}")
    if response.status_code >= 400:
        raise ExpansionFailed(
            f"HTTP {response.status_code} from {url}: {response.text[:200]}", transient=True
        )


def _chat_content(response: httpx.Response) -> str:
    """The assistant's text of a chat-completions response."""
    return _text(response, lambda body: body["choices"][0]["message"]["content"], "chat completion")


def _text_content(response: httpx.Response) -> str:
    """The text of a (raw prompt) completions response."""
    return _text(response, lambda body: body["choices"][0]["text"], "completion")


def _text(response: httpx.Response, pick: Callable[[Any], Any], what: str) -> str:
    try:
        content = pick(response.json())
    except (ValueError, KeyError, IndexError, TypeError):
        raise ExpansionFailed(
            f"the server's response is not a {what}: {response.text[:80]!r}"
        ) from None
    if not isinstance(content, str):
        raise ExpansionFailed("the server's response has no text content")
    return content


def _chat_delta(chunk: dict[str, Any]) -> str:
    """The text one ``chat.completion.chunk`` adds (role-only and final chunks add none)."""
    if not chunk["choices"]:
        return ""  # a usage-only chunk
    piece = chunk["choices"][0]["delta"].get("content")
    return piece if isinstance(piece, str) else ""


def openai_expander(config: PromptingConfig) -> ChatExpander:
    client = ChatClient(config.server)
    complete = functools.partial(
        client.complete, max_tokens=config.max_new_tokens, schema=ANSWER_SCHEMA
    )
    return ChatExpander("openai", config.server.model, complete)
