"""/readyz and the LLM servers (issue 22): the expander is reported, never required; a
Llama Guard moderator is required. The servers are real processes or sockets on loopback:
``tests/llm_prompting/chat_server.py`` (an OpenAI-protocol stand-in, not Llama)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from tests.llm_prompting.conftest import ChatServer, running_chat_server


@pytest.fixture(scope="module")
def chat() -> Iterator[ChatServer]:
    with running_chat_server() as server:
        yield server


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A port that accepts connections and never answers: a hung server."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def readyz(make_services, **settings) -> tuple[int, dict, float]:
    services = make_services(executor="null", **settings)
    with TestClient(create_app(services), client=("127.0.0.1", 50000)) as client:
        start = time.perf_counter()
        response = client.get("/readyz")
        return response.status_code, response.json(), time.perf_counter() - start


def test_an_answering_expander_is_reported(make_services, chat):
    status, body, _ = readyz(
        make_services, expander="openai", openai_base_url=chat.base_url, openai_model="scripted"
    )
    assert status == 200 and body["ready"]
    assert body["details"]["expander"] == {
        "name": "openai",
        "ok": True,
        "required": False,
        "detail": f"{chat.base_url} serves scripted",
    }


def test_a_model_the_server_does_not_serve_is_reported(make_services, chat):
    status, body, _ = readyz(
        make_services, expander="openai", openai_base_url=chat.base_url, openai_model="llama-9"
    )
    expander = body["details"]["expander"]
    assert status == 200 and not expander["ok"]
    assert "does not serve 'llama-9'" in expander["detail"] and "scripted" in expander["detail"]


def test_a_hung_expander_leaves_the_service_ready_and_the_probe_bounded(make_services, silent_url):
    status, body, elapsed = readyz(
        make_services, expander="openai", openai_base_url=silent_url, openai_timeout=30.0
    )
    assert status == 200 and body["ready"]
    expander = body["details"]["expander"]
    assert not expander["ok"] and "no answer within 2 s" in expander["detail"]
    assert "fall back to the template expander" in expander["detail"]
    assert elapsed < 6  # 2 s probe, not the 30 s request timeout


def test_a_llama_guard_that_does_not_answer_makes_the_service_unready(make_services):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"  # nothing listens after this
    status, body, _ = readyz(make_services, moderator="llama_guard", guard_base_url=closed)
    assert status == 503 and not body["ready"]
    moderator = body["details"]["moderator"]
    assert moderator["name"] == "llama_guard" and not moderator["ok"] and moderator["required"]
    assert "moderation_unavailable" in moderator["detail"]


def test_the_template_expander_needs_nothing(make_services):
    status, body, _ = readyz(make_services)
    assert status == 200
    assert body["details"]["expander"]["ok"] and body["details"]["moderator"]["name"] == "rules"
