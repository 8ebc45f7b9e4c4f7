"""The openai backend against a real OpenAI-compatible HTTP server process on loopback.

The server is ``tests/llm_prompting/chat_server.py`` (see its docstring for
why not llama-cpp-python): every misbehaviour a real server shows (timeouts,
5xx, malformed JSON, contract-breaking answers) goes over real HTTP, and each
one must end in the template's expansion with a warning, never an error.
"""

from __future__ import annotations

import socket
import time

import pytest

from llm_prompting import PromptingConfig, PromptRejected, ServerConfig, expand
from llm_prompting.errors import ExpansionFailed
from llm_prompting.instructions import ANSWER_SCHEMA

PROMPT = "me as an astronaut on Mars"


def template_prompt(prompt: str = PROMPT, style: str = "photo") -> str:
    return expand(prompt, style).prompt


def test_a_good_answer_is_used_and_framed_by_the_style(server):
    result = expand(PROMPT, "cinematic", server.config("scripted"))
    assert result.backend == "openai" and result.model == "scripted"
    assert result.warnings == ()
    assert result.prompt.startswith("cinematic film still of a person as an astronaut on Mars")
    assert "golden hour light" in result.prompt and "golden hour light" in result.added
    assert result.prompt.count("a person") == 1
    assert "cropped head" in result.negative_prompt  # the model's own negative term, kept
    assert result.tokens <= 77


def test_the_llm_translates_what_the_template_cannot(server):
    llm = expand("moi en astronaute sur Mars", "photo", server.config("scripted"))
    assert llm.prompt.startswith("photo of a person as an astronaut on Mars")
    assert llm.warnings == ()
    template = expand("moi en astronaute sur Mars", "photo")
    assert "en astronaute sur Mars" in template.prompt
    assert "does not translate" in template.warnings[0]


def test_a_faithful_translation_of_other_people_keeps_the_contract(server):
    result = expand("moi avec ma femme à Paris", "photo", server.config("scripted"))
    assert result.backend == "openai", result.warnings
    assert "with their wife in Paris" in result.prompt


def test_the_request_asks_for_json_matching_the_schema(server):
    expand(PROMPT, "photo", server.config("scripted", api_key="sk-test"))
    stats = server.stats()
    body = stats["last"]
    assert body["model"] == "scripted"
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"] == ANSWER_SCHEMA
    assert body["temperature"] == 0.0
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert body["messages"][1]["content"] == f"<request>{PROMPT}</request>"
    assert stats["headers"]["authorization"] == "Bearer sk-test"


@pytest.mark.parametrize(("mode", "expected"), [("json_object", "json_object"), ("none", None)])
def test_json_mode_for_servers_without_schemas(server, mode, expected):
    result = expand(PROMPT, "photo", server.config("scripted", json_mode=mode))
    assert result.backend == "openai"
    fmt = server.stats()["last"].get("response_format")
    assert (fmt or {}).get("type") == expected


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        ("error", "HTTP 500"),
        ("malformed", "the answer is not JSON"),
        ("not-chat", "not a chat completion"),
        ("violating", "broke the contract"),
        ("unsafe", "unsafe_addition: naked"),
    ],
)
def test_misbehaving_servers_fall_back_to_the_template(server, model, reason):
    result = expand(PROMPT, "photo", server.config(model))
    assert result.backend == "template"
    assert result.prompt == template_prompt()
    assert len(result.warnings) == 1
    assert result.warnings[0].startswith("fell back to the template expander: openai: ")
    assert reason in result.warnings[0]
    assert server.count(model) == 1


def test_contract_violations_are_named_in_the_warning(server):
    warning = expand(PROMPT, "photo", server.config("violating")).warnings[0]
    for violation in (
        "extra_people: crowd",
        "facial_attribute: blonde",
        "facial_attribute: young",
        "real_name: Greg Rutkowski",
    ):
        assert violation in warning


def test_a_timeout_falls_back_within_the_timeout(server):
    start = time.perf_counter()
    result = expand(PROMPT, "photo", server.config("slow", timeout=0.5, retries=2))
    elapsed = time.perf_counter() - start
    assert result.backend == "template"
    assert "no answer within 0.5 s" in result.warnings[0]
    assert elapsed < 2.0  # timeouts are not retried
    assert server.count("slow") == 1


def test_5xx_is_retried_then_falls_back(server):
    result = expand(PROMPT, "photo", server.config("error", retries=2))
    assert result.backend == "template"
    assert "gave up after 3 attempts" in result.warnings[0]
    assert server.count("error") == 3


def test_a_retry_rescues_a_server_that_is_still_loading(server):
    result = expand(PROMPT, "photo", server.config("flaky", retries=1))
    assert result.backend == "openai"
    assert server.count("flaky") == 2


def test_an_unreachable_server_falls_back():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        config = ServerConfig(base_url=f"http://127.0.0.1:{port}/v1", retries=0, timeout=2)
        result = expand(PROMPT, "photo", PromptingConfig(expander="openai", server=config))
    assert result.backend == "template"
    assert "cannot reach" in result.warnings[0]


def test_the_cache_spares_a_second_request(server):
    config = server.config("scripted")
    first = expand(PROMPT, "photo", config)
    second = expand(PROMPT, "photo", config)
    assert second == first
    assert server.count("scripted") == 1
    expand(PROMPT, "anime", config)  # another style is another key
    assert server.count("scripted") == 2


def test_contract_failures_are_cached_but_server_failures_are_not(server):
    for _ in range(2):
        expand(PROMPT, "photo", server.config("violating"))
        expand(PROMPT, "photo", server.config("error"))
    assert server.count("violating") == 1  # the same answer would break the contract again
    assert server.count("error") == 2  # the server may be back next time


def test_a_refused_prompt_never_reaches_the_server(server):
    with pytest.raises(PromptRejected) as err:
        expand("me n@ked on the beach", "photo", server.config("scripted"))
    assert err.value.category == "sexual" and err.value.stage == "input"
    assert server.count("scripted") == 0


# Issue 22: the protocol as vLLM and llama.cpp's server speak it, streaming off and on.
# The server is a stand-in that answers canned English, not Llama: these tests show
# that the client speaks the protocol and that the contract holds, not what Llama writes.
MULTILINGUAL = [
    ("moi en cuisinier dans un bistrot parisien", "a person as a chef in a Parisian bistro"),
    ("yo como pintor en un estudio lleno de luz", "a person as a painter in a sunlit studio"),
    ("ich als Bergsteiger auf der Zugspitze", "a person as a mountaineer on the Zugspitze"),
]
FOREIGN = {"moi", "en", "dans", "un", "yo", "como", "lleno", "de", "ich", "als", "auf", "der"}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize(("prompt", "scene"), MULTILINGUAL, ids=["fr", "es", "de"])
def test_multilingual_prompts_become_english_with_the_user_as_subject(
    server, stream, prompt, scene
):
    result = expand(prompt, "photo", server.config("scripted", stream=stream))
    assert (result.backend, result.warnings) == ("openai", ())
    assert result.prompt.startswith(f"photo of {scene}")
    assert result.prompt.count("a person") == 1  # the user, once: the contract's subject rule
    assert not FOREIGN & set(result.prompt.lower().replace(",", " ").split())
    body = server.stats()["last"]
    assert body.get("stream", False) is stream
    assert body["response_format"]["json_schema"]["schema"] == ANSWER_SCHEMA


def test_a_stream_gives_the_same_expansion_as_a_plain_answer(server):
    plain = expand(PROMPT, "cinematic", server.config("scripted"))
    streamed = expand(PROMPT, "cinematic", server.config("scripted", stream=True))
    assert streamed.prompt == plain.prompt and streamed.backend == "openai"


def test_a_slow_stream_falls_back_within_the_timeout(server):
    """Each chunk comes within the read timeout; the whole answer does not."""
    start = time.perf_counter()
    result = expand(PROMPT, "photo", server.config("slow-stream", stream=True, timeout=1.0))
    elapsed = time.perf_counter() - start
    assert result.backend == "template"
    assert "no answer within 1 s" in result.warnings[0]
    assert elapsed < 2.5  # the stream runs for about 9 s


def test_the_server_checks_answers_against_the_schema_we_send(server):
    """A schema that does not describe the answer is an error of the server, then a fallback:
    so the schema the client sends is the one its answers are parsed with."""
    from llm_prompting.openai_backend import ChatClient

    client = ChatClient(ServerConfig(base_url=server.base_url, model="scripted", retries=0))
    wrong = {"type": "object", "properties": {"scene": {"type": "integer"}}}
    with pytest.raises(ExpansionFailed, match="HTTP 500"):
        client.complete([{"role": "user", "content": "<request>me</request>"}], schema=wrong)
    answer = client.complete([{"role": "user", "content": "<request>me</request>"}],
                             schema=ANSWER_SCHEMA)  # fmt: skip
    assert answer.startswith('{"scene": "a person"')
