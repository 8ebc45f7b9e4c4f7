"""The moderator's learned layer: what ships is what the sets train, and it sits after the lists."""

from __future__ import annotations

import pytest

from imagine.settings import Settings
from llm_prompting import PromptingConfig, PromptRejected, expand
from llm_prompting.learned import LearnedModel, features
from llm_prompting.moderation import RuleModerator, get_moderator
from llm_prompting.training import examples, fingerprint, fit
from tests.llm_prompting.moderation_cases import load_cases, training_sets

# No word list holds this; the model, trained on other prompts, refuses it.
PARAPHRASE = "me standing on the ledge of the bridge ready to let go forever"


@pytest.fixture(scope="module")
def shipped() -> LearnedModel:
    return LearnedModel.load()


def test_the_shipped_model_learned_from_the_sets_as_they_are(shipped):
    """Changing a labelled set without running scripts/train-moderation-model fails here."""
    assert shipped.trained_on == fingerprint(training_sets()), (
        "the labelled sets changed: run .venv/bin/python scripts/train-moderation-model"
    )
    assert not any(p.name.startswith("likeness_blind") for p in training_sets())


def test_training_again_gives_the_shipped_model(shipped):
    prompts, labels = examples([case for path in training_sets() for case in load_cases(path)])
    again = fit(prompts, labels, shipped.threshold)
    assert again.vocabulary == shipped.vocabulary
    for prompt in (PARAPHRASE, "me as an astronaut", "moi en pompier devant un camion rouge"):
        assert again.scores(prompt).allowed == pytest.approx(
            shipped.scores(prompt).allowed, abs=0.01
        )


def test_features_share_word_parts_across_inflections():
    a, b = features("ich verprügle ihn"), features("ich verprügelte ihn")
    shared = set(a) & set(b)
    assert " ve" in shared and "verpr" in shared and "w:ihn" in shared
    assert "b:ich verprugle" in a  # folded like the word lists


def test_the_layer_refuses_a_paraphrase_no_list_holds_and_keeps_plain_prompts(shipped):
    lists, both = RuleModerator(), RuleModerator(shipped)
    assert lists.check(PARAPHRASE).allowed
    verdict = both.check(PARAPHRASE)
    assert not verdict.allowed and verdict.matched.startswith("model: allowed ")
    assert both.check(PARAPHRASE, expansion=True).allowed  # expansions: the lists only
    assert both.check(PARAPHRASE).category == "self_harm"
    plain = ("me as an astronaut on the moon", "moi en chef dans une cuisine étoilée",
             "yo corriendo un maratón en Madrid", "ich beim Wandern in den Alpen")  # fmt: skip
    for prompt in plain:
        assert both.check(prompt).allowed, prompt


def test_the_default_moderator_has_the_layer_and_the_setting_turns_it_off():
    with pytest.raises(PromptRejected):
        expand(PARAPHRASE, "photo", config=PromptingConfig(cache_size=0))
    off = Settings.from_env({"IMAGINE_MODERATION_MODEL": "false"}).prompting()
    assert off.moderation_model is False
    assert get_moderator(off).check(PARAPHRASE).allowed
    assert expand(PARAPHRASE, "photo", config=off.replace(cache_size=0)).prompt
