"""``imagine expand`` as a user runs it: outputs, exit codes, settings from the environment."""

from __future__ import annotations

import json
import socket

import pytest

from imagine.cli import main
from llm_prompting import clear_caches


@pytest.fixture(autouse=True)
def _fresh_caches():
    clear_caches()


def run(capsys, *argv: str, environ: dict[str, str] | None = None) -> tuple[int, str, str]:
    code = main(list(argv), environ=environ or {})
    out, err = capsys.readouterr()
    return code, out, err


def test_expand_json(capsys):
    code, out, err = run(
        capsys, "expand", "me as a 1920s jazz singer", "--style", "cinematic", "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["prompt"].startswith("cinematic film still of a person as a 1920s jazz singer")
    assert result["style"] == "cinematic" and result["backend"] == "template"
    assert result["added"][0] == "cinematic film still of"
    assert result["original"] == "me as a 1920s jazz singer"
    assert set(result) >= {"negative_prompt", "model", "warnings", "tokens"}


def test_expand_human_output_shows_warnings(capsys):
    code, out, _ = run(capsys, "expand", "moi en astronaute sur Mars")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("photo of a person en astronaute sur Mars")
    assert any(line.startswith("added: photo of; natural light") for line in lines)
    assert any(
        line.startswith("warning: the template expander does not translate") for line in lines
    )


def test_refused_prompt_is_a_user_error_with_its_category(capsys):
    code, out, err = run(capsys, "expand", "me n@ked on the beach", "--json")
    assert code == 2
    assert err.startswith("error: prompt_rejected: ") and "category: sexual" in err
    assert json.loads(out)["error"]["code"] == "prompt_rejected"


def test_unknown_style_is_a_usage_error(capsys):
    code, _, err = run(capsys, "expand", "me", "--style", "vaporwave")
    assert code == 2
    assert "error: usage: " in err and "invalid choice" in err


def test_the_backend_flag_and_environment_pick_the_expander(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        env = {
            "IMAGINE_OPENAI_BASE_URL": f"http://127.0.0.1:{s.getsockname()[1]}/v1",
            "IMAGINE_OPENAI_RETRIES": "0",
        }
        code, out, _ = run(
            capsys, "expand", "me as a chef", "--backend", "openai", "--json", environ=env
        )
    assert code == 0
    result = json.loads(out)
    assert result["backend"] == "template"
    assert result["warnings"][0].startswith(
        "fell back to the template expander: openai: cannot reach"
    )


def test_a_missing_model_folder_is_reported(capsys):
    code, _, err = run(capsys, "expand", "me", environ={"IMAGINE_EXPANDER": "transformers"})
    assert code == 2
    assert err.startswith("error: expander_unavailable: ")


@pytest.mark.parametrize(("prompt", "named"), [("me\x1b[2J", "U+001B"), ("me \u2067x", "U+2067")])
def test_control_and_bidi_characters_exit_2_naming_the_character(capsys, prompt, named):
    code, out, err = run(capsys, "expand", prompt)
    assert code == 2 and out == ""
    assert err.startswith("error: invalid_prompt: the prompt contains " + named)
