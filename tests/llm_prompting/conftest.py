from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from llm_prompting import PromptingConfig, ServerConfig, clear_caches

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    clear_caches()
    yield
    clear_caches()


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.llm_prompting.tiny_llama import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@dataclass
class ChatServer:
    """The test chat server process (tests/llm_prompting/chat_server.py) on loopback."""

    base_url: str  # http://127.0.0.1:PORT/v1
    process: subprocess.Popen

    def config(self, model: str, **server: object) -> PromptingConfig:
        """A prompting config whose openai expander talks to this server as ``model``."""
        settings = {"timeout": 10.0, "retries": 0, **server}
        return PromptingConfig(
            expander="openai",
            server=ServerConfig(base_url=self.base_url, model=model, **settings),  # type: ignore[arg-type]
        )

    def stats(self) -> dict:
        with urllib.request.urlopen(self.base_url.removesuffix("/v1") + "/stats") as r:
            return json.load(r)

    def count(self, model: str) -> int:
        return int(self.stats()["counts"].get(model, 0))

    def reset(self) -> None:
        req = urllib.request.Request(self.base_url.removesuffix("/v1") + "/reset", data=b"{}")
        urllib.request.urlopen(req).close()


def start_chat_server(model_dir: Path | None = None) -> ChatServer:
    cmd = [sys.executable, "-m", "tests.llm_prompting.chat_server"]
    if model_dir is not None:
        cmd += ["--model-dir", str(model_dir)]
    process = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("listening on "), f"chat server did not start: {line!r}"
    return ChatServer(line.split()[-1], process)


@contextlib.contextmanager
def running_chat_server() -> Iterator[ChatServer]:
    server = start_chat_server()
    try:
        yield server
    finally:
        server.process.terminate()
        server.process.wait(timeout=10)


@pytest.fixture(scope="session")
def chat_server() -> Iterator[ChatServer]:
    with running_chat_server() as server:
        yield server


@pytest.fixture
def server(chat_server: ChatServer) -> ChatServer:
    chat_server.reset()
    return chat_server
