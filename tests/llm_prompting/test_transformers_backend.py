"""The transformers backend on a tiny random-weight Llama 3 chat model built from config.

Its answers are garbage: the point is that they are generated for real
(chat template, generate, decode), rejected by the validator, and replaced by
the template's expansion with a warning.
"""

from __future__ import annotations

import pytest

from llm_prompting import PromptingConfig, expand, get_expander
from llm_prompting.errors import ExpanderUnavailable
from llm_prompting.instructions import messages
from llm_prompting.styles import STYLES

PROMPT = "me as a 1920s jazz singer"


@pytest.fixture(scope="module")
def config(tiny_llama_dir) -> PromptingConfig:
    return PromptingConfig(expander="transformers", model_dir=tiny_llama_dir, max_new_tokens=24)


@pytest.fixture(scope="module")
def llama(tiny_llama_dir):
    from llm_prompting.transformers_backend import LocalLlama

    return LocalLlama(tiny_llama_dir, "auto", max_new_tokens=24)


def test_the_chat_template_wraps_the_request_as_data(llama):
    chat = messages(PROMPT, STYLES["photo"], "a person")
    text = llama.tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    assert text.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>")
    assert (
        f"<|start_header_id|>user<|end_header_id|>\n\n<request>{PROMPT}</request><|eot_id|>" in text
    )
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_generation_is_real_and_deterministic(llama):
    import torch

    assert llama.device == ("cuda" if torch.cuda.is_available() else "cpu")
    chat = messages(PROMPT, STYLES["photo"], "a person")
    answer = llama.complete(chat)
    assert answer and answer == llama.complete(chat)  # greedy decoding


def test_garbage_answers_fall_back_to_the_template(config):
    expander = get_expander(config)
    assert expander.name == "transformers" and expander.model_id == config.model_dir.name

    result = expand(PROMPT, "photo", config)
    assert result.backend == "template"
    assert result.prompt == expand(PROMPT, "photo").prompt
    assert result.warnings[0].startswith("fell back to the template expander: transformers: ")
    assert "not JSON" in result.warnings[0] or "schema" in result.warnings[0]


def test_a_missing_model_folder_is_an_operator_error(tmp_path):
    with pytest.raises(ExpanderUnavailable, match="model folder"):
        expand(PROMPT, "photo", PromptingConfig(expander="transformers"))
    with pytest.raises(ExpanderUnavailable, match=r"no config\.json"):
        expand(PROMPT, "photo", PromptingConfig(expander="transformers", model_dir=tmp_path))


@pytest.mark.slow
def test_the_tiny_llama_served_over_http(tiny_llama_dir):
    """The openai backend talking to the transformers backend behind the test server."""
    from tests.llm_prompting.conftest import start_chat_server

    server = start_chat_server(tiny_llama_dir)
    try:
        result = expand(PROMPT, "anime", server.config("tiny-llama", timeout=120))
        assert server.count("tiny-llama") == 1
    finally:
        server.process.terminate()
        server.process.wait(timeout=10)
    assert result.backend == "template"
    assert result.prompt.startswith("anime illustration of a person as a 1920s jazz singer")
    assert result.warnings[0].startswith("fell back to the template expander: openai: ")
