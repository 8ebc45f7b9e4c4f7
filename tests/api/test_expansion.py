"""One token rule: a prompt expands the same way through the API, ``imagine expand`` and the
pipeline, all budgeted with the profile's CLIP tokenizers (issue 17)."""

from __future__ import annotations

import json

from imagine.cli import main as imagine
from imagine.pipeline import PersonalizedPipeline
from llm_prompting import clear_caches, expand
from tests.api.conftest import SMALL, auth, enroll

PROMPT, STYLE = "me as a 1920s jazz singer", "cinematic"
SAME = ("prompt", "negative_prompt", "style", "added", "backend", "warnings")


def test_a_prompt_gets_the_same_expansion_from_the_api_the_cli_and_the_pipeline(
    client, user_key, smoke, capsys
):
    key = user_key("ada")
    body = {"identity_id": enroll(client, key)["id"], "prompt": PROMPT, "style": STYLE, "n": 1}
    accepted = client.post("/v1/generations", headers=auth(key), json=body | SMALL)
    assert accepted.status_code == 202, accepted.text
    job = client.get(f"/v1/generations/{accepted.json()['id']}", headers=auth(key)).json()
    via_api = job["expanded"]

    clear_caches()
    assert imagine(["expand", PROMPT, "--style", STYLE, "--json"], environ={}) == 0
    via_cli = json.loads(capsys.readouterr().out)
    clear_caches()
    pipeline = PersonalizedPipeline(smoke)
    via_pipeline = pipeline.expand_prompt(PROMPT, STYLE).to_dict()

    assert [via_api[f] for f in SAME] == [via_cli[f] for f in SAME]
    assert [via_cli[f] for f in SAME] == [via_pipeline[f] for f in SAME]
    assert via_cli["tokens"] == via_pipeline["tokens"] == pipeline.count_tokens(via_api["prompt"])
    assert via_cli["tokens"] <= 77
    # The budget binds on this prompt: the word-based estimate alone would add more details.
    assert len(via_api["added"]) < len(expand(PROMPT, STYLE).added)
