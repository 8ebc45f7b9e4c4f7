"""A minimal OpenAI-compatible server for the tests, run as its own process: a protocol stand-in.

    python -m tests.llm_prompting.chat_server [--model-dir DIR]

It prints ``listening on http://127.0.0.1:PORT/v1`` and serves, over real HTTP
on loopback, what the project uses of the OpenAI wire protocol as vLLM and
llama.cpp's ``llama-server`` speak it:

- ``POST /v1/chat/completions``, with ``"stream": true`` answered as
  server-sent events (``data: {chat.completion.chunk}`` lines, a final chunk
  with ``finish_reason``, then ``data: [DONE]``), chunked transfer encoding;
- ``response_format`` ``{"type": "json_schema", "json_schema": {"schema": ...}}``:
  a request without a schema there is a 400, and every answer is checked
  against the schema (what a server's guided decoding guarantees);
- ``POST /v1/completions`` (a raw prompt: how Llama Guard gets our categories);
- ``GET /v1/models``.

It is not Llama: its "good" answers are canned English expansions for a few
known prompts. Why not
llama-cpp-python's server: it has no binary wheel and compiles llama.cpp for
many minutes on 2 cores, on every clean CI run. Instead the request's
``model`` picks a behaviour:

- ``tiny-llama``: the project's transformers backend (``LocalLlama``) on the
  tiny random-weight model in ``--model-dir``: a real Llama 3 chat template and
  real generation, garbage text;
- ``scripted``: a well-behaved model: valid JSON that keeps the contract,
  with English for the few French/Spanish/German requests it knows;
- ``slow`` (answers after 3 s), ``error`` (HTTP 500), ``flaky`` (503 on the
  first request for each prompt, then ``scripted``), ``malformed`` (cut-off
  JSON), ``not-chat`` (200 with a body that is no chat completion),
  ``violating`` (valid JSON that breaks the contract), ``unsafe`` (adds nudity),
  ``sneaky`` (adds a bomb: no contract rule, only Llama Guard, catches it),
  ``obedient`` (follows instructions found inside the request: a hijacked model);
- ``slow-stream``: ``scripted``, streamed one word every 0.3 s;
- ``guard``: a stand-in for Llama Guard 3 (``safe``/``unsafe`` + codes): on chat
  completions with the MLCommons codes, on ``/v1/completions`` with the codes
  the prompt's own category list gives (read from the prompt, so a prompt that
  lists them wrong gets wrong codes).

``GET /stats`` returns the requests seen per model and the last request body;
``POST /reset`` forgets them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

TRANSLATIONS = {
    "moi en astronaute sur Mars": "{s} as an astronaut on Mars",
    "yo como torero en Sevilla": "{s} as a bullfighter in Seville",
    "ich als Ritter auf einer Burg": "{s} as a knight at a castle",
    "moi avec ma femme à Paris": "{s} with their wife in Paris",
    "moi en cuisinier dans un bistrot parisien": "{s} as a chef in a Parisian bistro",
    "yo como pintor en un estudio lleno de luz": "{s} as a painter in a sunlit studio",
    "ich als Bergsteiger auf der Zugspitze": "{s} as a mountaineer on the Zugspitze summit",
}

# What the Llama Guard stand-in refuses, by the title of a category in our policy
# (llm_prompting.moderation.GUARD_POLICY) and, for the chat route, by MLCommons code.
GUARD_WORDS = {
    "bomb": ("Violence", "S9"),
    "vote moved online": ("Deceptive depictions of real people", "S13"),
    "spicy": ("Sexual or intimate content", "S12"),
    "riot": ("Hate", "S1,S10"),
}


class State:
    def __init__(self, model_dir: Path | None):
        self.model_dir = model_dir
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.seen_prompts: set[str] = set()
        self.last: dict[str, Any] = {}
        self.headers: dict[str, str] = {}
        self._llama: Any = None

    def llama(self) -> Any:
        with self.lock:
            if self._llama is None:
                from llm_prompting.transformers_backend import LocalLlama

                assert self.model_dir is not None, "start the server with --model-dir"
                self._llama = LocalLlama(self.model_dir, "cpu", max_new_tokens=24)
            return self._llama


def _request_text(messages: list[dict[str, str]]) -> str:
    user = messages[-1]["content"]
    found = re.search(r"<request>(.*)</request>", user, re.S)
    return found.group(1) if found else user


def _subject(messages: list[dict[str, str]]) -> str:
    found = re.search(r'the exact phrase "([^"]+)"', messages[0]["content"])
    return found.group(1) if found else "a person"


def scripted(messages: list[dict[str, str]]) -> dict[str, Any]:
    """What a good model answers: the request in English, the user once, a few neutral details."""
    request, subject = _request_text(messages), _subject(messages)
    if request in TRANSLATIONS:
        scene = TRANSLATIONS[request].format(s=subject)
    else:
        scene = re.sub(r"^(me|myself|i)\b", subject, request, flags=re.I)
    return {
        "scene": scene,
        "details": ["golden hour light", "wide establishing shot", "rich environmental detail"],
        "negative": ["cropped head"],
    }


def guard_text(prompt: str) -> str:
    """Llama Guard's answer to a raw Llama Guard 3 prompt, in the codes the prompt defines."""
    listed = re.search(r"<BEGIN UNSAFE CONTENT CATEGORIES>\n(.*)\n<END UNSAFE", prompt, re.S)
    said = re.search(r"\nUser: (.*)\n\n<END CONVERSATION>", prompt, re.S)
    if not listed or not said:
        return "not a Llama Guard prompt"
    codes = dict(
        (title, code) for code, title in re.findall(r"^(S\d+): (.+)\.$", listed.group(1), re.M)
    )
    hits = [
        codes.get(title, "S99")
        for word, (title, _) in GUARD_WORDS.items()
        if word in said.group(1).lower()
    ]
    return f"unsafe\n{','.join(hits)}" if hits else "safe"


def answer(model: str, body: dict[str, Any], state: State) -> tuple[int, Any]:
    """(status, JSON payload or raw text) for one chat-completions request."""
    messages = body["messages"]
    request = _request_text(messages)
    subject = _subject(messages)
    if model == "error":
        return 500, {"error": {"message": "model crashed"}}
    if model == "flaky":
        with state.lock:
            first = request not in state.seen_prompts
            state.seen_prompts.add(request)
        if first:
            return 503, {"error": {"message": "loading"}}
        return 200, _chat(json.dumps(scripted(messages)))
    if model == "slow":
        time.sleep(3)
        return 200, _chat(json.dumps(scripted(messages)))
    if model == "malformed":
        return 200, _chat('{"scene": "' + subject + ' on Mars", "details": ["red dust", ')
    if model == "not-chat":
        return 200, {"result": "ok"}
    if model == "violating":
        return 200, _chat(
            json.dumps(
                {
                    "scene": f"{subject} as a young blonde woman with a crowd of fans",
                    "details": ["in the style of Greg Rutkowski"],
                    "negative": [],
                }
            )
        )
    if model == "sneaky":
        scene = scripted(messages)["scene"]
        details = ["a ticking bomb under the table"]
        return 200, _chat(json.dumps({"scene": scene, "details": details, "negative": []}))
    if model == "unsafe":
        scene = f"{subject} lying naked on the beach"
        return 200, _chat(json.dumps({"scene": scene, "details": [], "negative": []}))
    if model == "obedient":
        # A hijacked model: it does what the request's hidden instruction says.
        hijack = re.search(r"(?:instructions|rules)[,.:]?\s*(?:and\s+)?(.*)", request, re.I)
        if hijack:
            wanted = hijack.group(1)
            return 200, _chat(
                json.dumps({"scene": wanted, "details": [], "negative": ["clothes", "censored"]})
            )
        return 200, _chat(json.dumps(scripted(messages)))
    if model == "guard":
        text = messages[-1]["content"].lower()
        verdict = "safe"
        for word, (_, codes) in GUARD_WORDS.items():
            if word in text:
                verdict = f"unsafe\n{codes}"
        return 200, _chat(verdict)
    if model == "tiny-llama":
        return 200, _chat(state.llama().complete(messages))
    return 200, _chat(json.dumps(scripted(messages)))


def schema_error(body: dict[str, Any], content: str) -> str | None:
    """Why ``content`` breaks the request's ``response_format``, or None."""
    fmt = body.get("response_format")
    if not fmt or fmt.get("type") != "json_schema":
        return None
    schema = (fmt.get("json_schema") or {}).get("schema")
    if not isinstance(schema, dict):
        return "response_format json_schema needs json_schema.schema"
    import jsonschema

    try:
        jsonschema.validate(json.loads(content), schema)
    except (ValueError, jsonschema.ValidationError) as exc:
        return f"the answer does not match the schema: {str(exc)[:120]}"
    return None


def chunks(content: str, model: str) -> list[dict[str, Any]]:
    """``content`` as chat.completion.chunk objects: the role, then pieces, then the stop."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 0,
                "model": model, "choices": [choice]}  # fmt: skip

    pieces = re.findall(r"\S+\s*|\s+", content)  # word by word, spaces kept
    return [chunk({"role": "assistant", "content": ""}), *(chunk({"content": p}) for p in pieces),
            chunk({}, "stop")]  # fmt: skip


def _chat(content: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
    }


def make_handler(state: State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive and chunked streams, as real servers do

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, payload: Any) -> None:
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            # The client may have given up already (the timeout tests).
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(data)

        def _stream(self, events: list[dict[str, Any]], pause: float) -> None:
            """Server-sent events in HTTP/1.1 chunks, ending with ``data: [DONE]``."""
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            lines = [f"data: {json.dumps(e)}\n\n" for e in events] + ["data: [DONE]\n\n"]
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                for line in lines:
                    data = line.encode()
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    self.wfile.flush()
                    time.sleep(pause)
                self.wfile.write(b"0\r\n\r\n")

        def do_GET(self) -> None:
            if self.path == "/v1/models":
                models = ["scripted", "guard", "slow-stream"]
                self._send(200, {"object": "list", "data": [
                    {"id": m, "object": "model", "owned_by": "test"} for m in models]})  # fmt: skip
            elif self.path == "/stats":
                with state.lock:
                    self._send(
                        200, {"counts": state.counts, "last": state.last, "headers": state.headers}
                    )
            else:
                self._send(404, {"error": {"message": "not found"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            raw = self.rfile.read(length)
            if self.path == "/reset":
                with state.lock:
                    state.counts.clear()
                    state.seen_prompts.clear()
                    state.last = {}
                self._send(200, {"ok": True})
                return
            if self.path not in ("/v1/chat/completions", "/v1/completions"):
                self._send(404, {"error": {"message": "not found"}})
                return
            body = json.loads(raw)
            model = body.get("model", "scripted")
            with state.lock:
                state.counts[model] = state.counts.get(model, 0) + 1
                state.last = {**body, "path": self.path}
                state.headers = {"authorization": self.headers.get("Authorization", "")}
            if self.path == "/v1/completions":
                text = guard_text(body["prompt"]) if model == "guard" else "not a guard"
                choice = {"index": 0, "text": text, "finish_reason": "stop"}
                self._send(200, {"object": "text_completion", "choices": [choice]})
                return
            fmt = body.get("response_format") or {}
            if fmt.get("type") == "json_schema" and schema_error(body, "{}") == (
                "response_format json_schema needs json_schema.schema"
            ):
                self._send(400, {"error": {"message": "response_format needs a schema"}})
                return
            behaviour = "scripted" if model == "slow-stream" else model
            status, payload = answer(behaviour, body, state)
            if status == 200 and "choices" in payload:
                content = payload["choices"][0]["message"]["content"]
                # "malformed" and "tiny-llama" play servers that ignore the schema.
                if model not in ("malformed", "tiny-llama") and (
                    why := schema_error(body, content)
                ):
                    self._send(500, {"error": {"message": why}})
                    return
                if body.get("stream"):
                    self._stream(chunks(content, model), 0.3 if model == "slow-stream" else 0)
                    return
            self._send(status, payload)

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--model-dir", type=Path)
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(State(args.model_dir)))
    server.daemon_threads = True
    print(f"listening on http://127.0.0.1:{server.server_address[1]}/v1", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
