"""PersonalizedPipeline on the smoke profile: the conditioning and control paths are real."""

from __future__ import annotations

import numpy as np
import pytest

from imagine.pipeline import Cancelled, GenerationRequest, PersonalizedPipeline
from imagine.postprocess import IdentityScore
from imagine.request import GenerationLimits, GenerationSpec, InvalidArgument
from llm_prompting import ExpandedPrompt, PromptRejected
from tests.imagine.conftest import unit

SMALL = {"width": 64, "height": 64, "steps": 2}


def pixels(result, k: int = 0) -> np.ndarray:
    return np.asarray(result.images[k].image, dtype=np.int16)


def test_shapes_seeds_and_metadata(pipeline):
    result = pipeline("me as an astronaut", unit(1), n=3, seed=11, width=96, height=64, steps=2)
    assert [g.image.size for g in result.images] == [(96, 64)] * 3
    assert all(g.image.mode == "RGB" for g in result.images)
    assert result.seeds == [11, 12, 13]
    assert (result.steps, result.width, result.height) == (2, 96, 64)
    assert result.profile == "smoke" and result.model_id == "smoke-v2"
    assert set(result.timings) == {"expand", "encode", "denoise", "decode", "postprocess"}
    assert any("noise" in w for w in result.warnings)


def test_profile_defaults_apply(pipeline):
    result = pipeline("me", unit(1))
    assert result.images[0].image.size == (256, 256) and result.steps == 4


def test_same_inputs_and_seed_give_identical_images(pipeline):
    a = pipeline("me as an astronaut", unit(1), n=2, seed=7, **SMALL)
    b = pipeline("me as an astronaut", unit(1), n=2, seed=7, **SMALL)
    assert np.array_equal(pixels(a, 0), pixels(b, 0))
    assert np.array_equal(pixels(a, 1), pixels(b, 1))
    assert np.abs(pixels(a, 0) - pixels(a, 1)).mean() > 5  # different seeds differ


def test_different_identities_give_different_images(pipeline):
    a = pipeline("me as an astronaut", unit(1), seed=7, **SMALL)
    b = pipeline("me as an astronaut", unit(2), seed=7, **SMALL)
    assert np.abs(pixels(a) - pixels(b)).mean() > 2


def test_adapter_scale_zero_ignores_the_face(pipeline):
    a = pipeline("me as an astronaut", unit(1), seed=7, adapter_scale=0.0, **SMALL)
    b = pipeline("me as an astronaut", unit(2), seed=7, adapter_scale=0.0, **SMALL)
    assert np.array_equal(pixels(a), pixels(b))


def test_prompt_changes_the_image(pipeline):
    a = pipeline("me as an astronaut", unit(1), seed=7, **SMALL)
    b = pipeline("me as a jazz singer in 1920s Paris", unit(1), seed=7, **SMALL)
    assert np.abs(pixels(a) - pixels(b)).mean() > 1


def test_progress_counts_every_step_of_every_image(smoke):
    pipe = PersonalizedPipeline(smoke, max_batch=2)
    calls = []
    pipe(
        "me",
        unit(1),
        n=3,
        seed=1,
        progress=lambda done, total: calls.append((done, total)),
        **SMALL,
    )
    # 3 images in batches of 2 and 1, 2 steps each: 6 image-steps in total.
    assert calls == [(2, 6), (4, 6), (5, 6), (6, 6)]


def test_cancellation_stops_mid_denoise(pipeline):
    seen = []

    def cancelled() -> bool:
        return len(seen) >= 2

    with pytest.raises(Cancelled) as err:
        pipeline(
            "me",
            unit(1),
            n=1,
            seed=1,
            steps=10,
            width=64,
            height=64,
            progress=lambda d, t: seen.append(d),
            is_cancelled=cancelled,
        )
    assert seen == [1, 2]  # stopped after the second of ten steps
    assert err.value.code == "cancelled"


def test_expander_output_reaches_the_model(smoke):
    def expand(prompt: str, style: str | None) -> ExpandedPrompt:
        return ExpandedPrompt(
            prompt=f"{prompt}, watercolor",
            negative_prompt="",
            style=style or "",
            added=("watercolor",),
            backend="test",
            model="test",
        )

    result = PersonalizedPipeline(smoke, expand=expand)("me", unit(1), style="watercolor", **SMALL)
    assert result.text.prompt == "me, watercolor" and result.text.added == ("watercolor",)


def test_prompts_are_expanded_and_moderated_by_default(pipeline):
    result = pipeline("moi en astronaute", unit(1), style="watercolor", **SMALL)
    assert result.text.backend == "template" and result.text.style == "watercolor"
    assert result.text.added and "watercolor" in result.text.prompt
    assert pipeline.count_tokens(result.text.prompt) <= 77
    with pytest.raises(PromptRejected) as err:
        pipeline("me holding a bloody severed head", unit(1), **SMALL)
    assert err.value.code == "prompt_rejected"


class FixedScorer:
    """Scores images by their mean brightness, so best-of-k picks are predictable."""

    def score(self, image, reference):
        return IdentityScore(float(np.asarray(image).mean()) / 255.0)


def test_best_of_keeps_the_highest_scoring_images(smoke):
    plain = PersonalizedPipeline(smoke, scorer=FixedScorer())("me", unit(1), n=4, seed=3, **SMALL)
    best = PersonalizedPipeline(smoke, scorer=FixedScorer())(
        "me", unit(1), n=2, seed=3, best_of=2, **SMALL
    )
    ranked = sorted(plain.images, key=lambda g: -g.identity_score.similarity)[:2]
    assert best.seeds == [g.seed for g in ranked]


def test_without_a_scorer_similarity_is_null_with_a_reason(pipeline):
    item = pipeline("me", unit(1), **SMALL).images[0]
    assert item.identity_score.similarity is None and item.identity_score.note


@pytest.mark.parametrize(
    ("kwargs", "code", "words"),
    [
        ({"prompt": "  "}, "invalid_prompt", "prompt"),
        ({"n": 0}, "invalid_n", "n must be"),
        ({"n": 9}, "invalid_n", "got 9"),
        ({"steps": 0}, "invalid_steps", "steps"),
        ({"steps": 101}, "invalid_steps", "got 101"),
        ({"width": 100}, "invalid_size", "width"),
        ({"height": 32}, "invalid_size", "height"),
        ({"width": 4096}, "invalid_size", "got 4096"),
        ({"seed": -1}, "invalid_seed", "seed"),
        ({"best_of": 9}, "invalid_best_of", "best_of"),
        ({"adapter_scale": 3.0}, "invalid_adapter_scale", "adapter_scale"),
        ({"embedding": np.ones(512, np.float32)}, "embedding_mismatch", "128-d"),
        ({"embedding": np.full(128, np.nan, np.float32)}, "embedding_mismatch", "NaN"),
    ],
)
def test_every_input_is_checked_before_work(pipeline, kwargs, code, words):
    args = {"prompt": "me", "embedding": unit(1), **SMALL, **kwargs}
    with pytest.raises(InvalidArgument) as err:
        pipeline(args.pop("prompt"), args.pop("embedding"), **args)
    assert err.value.code == code
    assert words in err.value.message
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize(
    ("seed", "n", "best_of"),
    [(2**32 - 1, 2, 1), (2**32 - 2, 3, 1), (2**32 - 3, 2, 2), (2**32, 1, 1)],
)
def test_every_image_seed_must_be_a_seed_the_api_takes(seed, n, best_of):
    """Image k uses seed + k: a last seed of 2**32 or more could not be asked for again."""
    lim = GenerationLimits()
    with pytest.raises(InvalidArgument) as err:
        GenerationSpec("me", n, seed, 2, 64, 64, best_of=best_of).checked(lim)
    assert err.value.code == "invalid_seed"
    assert f"seed must be 0-{2**32 - n * best_of}" in err.value.message
    last = 2**32 - n * best_of  # its last image's seed is 2**32 - 1
    GenerationSpec("me", n, last, 2, 64, 64, best_of=best_of).checked(lim)


def test_decoded_pixels_match_diffusers_postprocess(pipeline):
    """The 8-bit conversion runs on the device; its pixels are diffusers' to the bit."""
    import torch

    latents = torch.randn(2, 4, 8, 12, generator=torch.Generator().manual_seed(0))
    ours = pipeline.decode(latents)
    vae = pipeline.pipe.vae
    with torch.inference_mode():
        decoded = vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0]
    reference = pipeline.pipe.image_processor.postprocess(decoded, output_type="pil")
    assert [im.size for im in ours] == [(96, 64)] * 2
    for a, b in zip(ours, reference, strict=True):
        assert a.mode == "RGB" and np.array_equal(np.asarray(a), np.asarray(b))


def request(pipe: PersonalizedPipeline, prompt: str, face: int, seeds: tuple[int, ...]):
    """A request expanded by the pipeline's own expander, as ``__call__`` would expand it."""
    return GenerationRequest(prompt, pipe.expand(prompt, None), unit(face), seeds)


def test_generate_batch_gives_each_request_its_own_face_and_prompt(smoke):
    """Other people and prompts in one device batch: each image is the one made alone."""
    pipe = PersonalizedPipeline(smoke, max_batch=4)
    astronaut = request(pipe, "me as an astronaut", 1, (7, 8))
    singer = request(pipe, "me singing", 2, (9,))
    results = pipe.generate_batch([astronaut, singer], **SMALL)
    alone = [
        pipe("me as an astronaut", unit(1), n=2, seed=7, **SMALL),
        pipe("me singing", unit(2), n=1, seed=9, **SMALL),
    ]
    assert [r.seeds for r in results] == [[7, 8], [9]]
    assert [r.prompt for r in results] == ["me as an astronaut", "me singing"]
    for got, ref in zip(results, alone, strict=True):
        for k in range(len(ref.images)):
            # Batch composition changes float rounding only (at most one grey level);
            # a face blended from the whole batch differs by tens of levels.
            assert np.abs(pixels(got, k) - pixels(ref, k)).max() <= 2
    assert set(results[0].timings) == {"encode", "denoise", "decode", "postprocess"}
    assert any("noise" in w for w in results[1].warnings)


def test_generate_batch_splits_rows_into_device_batches_and_can_be_cancelled(smoke):
    pipe = PersonalizedPipeline(smoke, max_batch=2)
    requests = [request(pipe, "me", 1, (1, 2)), request(pipe, "me", 2, (3,))]
    results = pipe.generate_batch(requests, **SMALL)
    assert [len(r.images) for r in results] == [2, 1]
    calls = []
    with pytest.raises(Cancelled):
        pipe.generate_batch(
            requests, is_cancelled=lambda: calls.append(1) or len(calls) >= 3, **SMALL
        )
    assert len(calls) == 3  # stopped at the first step of the second device batch


def test_generate_batch_checks_every_request_before_work(pipeline):
    bad = GenerationRequest("me", pipeline.expand("me", None), np.ones(512, np.float32), (1,))
    with pytest.raises(InvalidArgument) as err:
        pipeline.generate_batch([request(pipeline, "me", 1, (1,)), bad], **SMALL)
    assert err.value.code == "embedding_mismatch"
