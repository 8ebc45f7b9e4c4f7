"""``Settings.prompting()``: the IMAGINE_* prompting variables reach the llm_prompting config."""

from __future__ import annotations

from pathlib import Path

from imagine.settings import Settings


def test_prompting_config_from_the_environment():
    env = {
        "IMAGINE_EXPANDER": "openai",
        "IMAGINE_PROMPT_STYLE": "anime",
        "IMAGINE_OPENAI_BASE_URL": "http://gpu-box:8000/v1",
        "IMAGINE_OPENAI_MODEL": "llama-3.1-70b",
        "IMAGINE_OPENAI_API_KEY": "sk-secret",
        "IMAGINE_OPENAI_TIMEOUT": "7.5",
        "IMAGINE_OPENAI_RETRIES": "3",
        "IMAGINE_LLAMA_MODEL_DIR": "/models/llama",
        "IMAGINE_MODERATOR": "llama_guard",
        "IMAGINE_GUARD_BASE_URL": "http://guard:8001/v1",
        "IMAGINE_EXPANSION_CACHE_SIZE": "0",
    }
    settings = Settings.from_env(env)
    config = settings.prompting()
    assert (config.expander, config.style, config.moderator) == ("openai", "anime", "llama_guard")
    assert config.server.base_url == "http://gpu-box:8000/v1"
    assert config.server.model == "llama-3.1-70b"
    assert (config.server.timeout, config.server.retries) == (7.5, 3)
    assert config.model_dir == Path("/models/llama")
    assert config.cache_size == 0
    guard = config.guard_server()
    assert guard.base_url == "http://guard:8001/v1" and guard.model == "meta-llama/Llama-Guard-3-8B"
    assert guard.api_key == "sk-secret"
    assert "sk-secret" not in repr(settings) and "sk-secret" not in repr(config)


def test_guard_defaults_to_the_expander_server():
    config = Settings.from_env({"IMAGINE_OPENAI_BASE_URL": "http://llm:9000/v1"}).prompting()
    assert config.guard_server().base_url == "http://llm:9000/v1"
    assert config.expander == "template" and config.moderator == "rules"
