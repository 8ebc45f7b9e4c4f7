"""FaceID Plus v2 on the smoke profile: the face crops reach the model through CLIP.

The smoke variant has a tiny random CLIP vision encoder and a random Plus
adapter in the original key layout, loaded like the real files, so these tests
run the same conditioning code as ``ip-adapter-faceid-plusv2_sdxl.bin`` with
CLIP ViT-H/14.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagine.cli import main
from imagine.models.config import ModelConfig
from imagine.models.loading import load_pipeline
from imagine.pipeline import GenerationRequest, PersonalizedPipeline
from imagine.request import InvalidArgument
from imagine.settings import Settings
from imagine.smoke import smoke_adapter_file, smoke_image_encoder_folder
from tests.imagine.conftest import unit
from tests.photos import hopper

SMALL = {"width": 64, "height": 64, "steps": 2, "seed": 7}
SMALL_ARGS = ["--size", "64x64", "--steps", "2"]


@pytest.fixture(scope="module")
def plus(model_cache):
    return load_pipeline(ModelConfig(cache=model_cache, embedding_dim=128, faceid_variant="plusv2"))


@pytest.fixture
def pipeline(plus) -> PersonalizedPipeline:
    return PersonalizedPipeline(plus)


def crop(seed: int) -> Image.Image:
    """A 224 px RGB stand-in for an aligned face crop."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8))


def pixels(pipeline: PersonalizedPipeline, face: int, crops, **kwargs) -> np.ndarray:
    result = pipeline("me as an astronaut", unit(face), face_crops=crops, **{**SMALL, **kwargs})
    return np.asarray(result.images[0].image, dtype=np.int16)


def test_settings_reach_the_model_config():
    env = {
        "IMAGINE_FACEID_VARIANT": "plusv2",
        "IMAGINE_CLIP_IMAGE_ENCODER": "/models/clip-vit-h",
        "IMAGINE_FACEID_SHORTCUT_SCALE": "0.5",
    }
    config = Settings.from_env(env).models(embedding_dim=512)
    assert (config.faceid_variant, config.shortcut_scale) == ("plusv2", 0.5)
    assert config.image_encoder == Path("/models/clip-vit-h")


def test_smoke_plus_is_saved_like_the_real_files_and_loaded_from_them(plus, model_cache):
    from safetensors import safe_open

    encoder = smoke_image_encoder_folder(model_cache)
    for name in ("config.json", "model.safetensors", "preprocessor_config.json"):
        assert (encoder / name).is_file(), name
    assert json.loads((encoder / "config.json").read_text())["architectures"] == [
        "CLIPVisionModelWithProjection"
    ]
    with safe_open(smoke_adapter_file(model_cache, 128, "plusv2"), "pt") as f:
        keys = set(f.keys())
    # The original ProjPlusModel layout, which diffusers converts on load.
    assert "image_proj.perceiver_resampler.layers.3.0.to_kv.weight" in keys
    assert "image_proj.perceiver_resampler.layers.0.1.3.weight" in keys
    assert "image_proj.norm.weight" in keys and "ip_adapter.1.to_k_ip.weight" in keys
    assert plus.faceid_variant == "plusv2" and plus.image_encoder_id == "image_encoder"
    assert plus.adapter_id == "ip-adapter-faceid-plusv2-smoke-128d.safetensors"
    assert plus.embedding_dim == 128
    assert type(plus.pipe.image_encoder).__name__ == "CLIPVisionModelWithProjection"


def test_shapes_and_determinism(pipeline):
    a = pipeline("me", unit(1), n=2, face_crops=[crop(1)], **SMALL)
    b = pipeline("me", unit(1), n=2, face_crops=[crop(1)], **SMALL)
    assert [g.image.size for g in a.images] == [(64, 64)] * 2
    assert a.seeds == [7, 8] and a.adapter_id.startswith("ip-adapter-faceid-plusv2")
    assert set(a.timings) == {"expand", "encode", "denoise", "decode", "postprocess"}
    for k in range(2):
        assert np.array_equal(np.asarray(a.images[k].image), np.asarray(b.images[k].image))


def test_the_face_crop_changes_the_image(pipeline):
    """Same embedding, another crop: Plus v2 reads face structure from the crop."""
    assert np.abs(pixels(pipeline, 1, [crop(1)]) - pixels(pipeline, 1, [crop(2)])).mean() > 2


def test_the_embedding_still_changes_the_image(pipeline):
    assert np.abs(pixels(pipeline, 1, [crop(1)]) - pixels(pipeline, 2, [crop(1)])).mean() > 2


def test_adapter_scale_zero_ignores_embedding_and_crop(pipeline):
    off = {"adapter_scale": 0.0}
    assert np.array_equal(
        pixels(pipeline, 1, [crop(1)], **off), pixels(pipeline, 2, [crop(2)], **off)
    )


def test_several_crops_are_averaged_in_any_order(pipeline):
    """One photo given twice weighs as once; photo order does not matter (up to the float
    rounding of another CLIP batch size, a grey level or two)."""
    one = pixels(pipeline, 1, [crop(1)])
    assert np.abs(pixels(pipeline, 1, [crop(1), crop(1)]) - one).max() <= 2
    both = pixels(pipeline, 1, [crop(1), crop(2)])
    assert np.abs(pixels(pipeline, 1, [crop(2), crop(1)]) - both).max() <= 2
    assert np.abs(both - one).mean() > 1


def test_a_plus_adapter_without_crops_is_an_invalid_argument(pipeline):
    with pytest.raises(InvalidArgument) as err:
        pipeline("me", unit(1), **SMALL)
    assert err.value.code == "missing_face_crops"
    assert "face_crops" in err.value.message and "FaceID Plus v2" in err.value.message
    request = GenerationRequest("me", pipeline.expand("me", None), unit(1), (1,))
    with pytest.raises(InvalidArgument, match="face_crops"):
        pipeline.generate_batch([request], **{k: SMALL[k] for k in ("width", "height", "steps")})


def test_generate_batch_gives_each_request_its_own_crops(pipeline):
    """Two requests with one embedding and different crops in one device batch."""
    text = pipeline.expand("me as an astronaut", None)
    requests = [
        GenerationRequest("me as an astronaut", text, unit(1), (7,), (crop(1),)),
        GenerationRequest("me as an astronaut", text, unit(1), (7,), (crop(2),)),
    ]
    shape = {k: SMALL[k] for k in ("width", "height", "steps")}
    results = pipeline.generate_batch(requests, **shape)
    for result, face_crop in zip(results, (crop(1), crop(2)), strict=True):
        got = np.asarray(result.images[0].image, dtype=np.int16)
        # Batch composition changes float rounding only; swapped crops differ by far more.
        assert np.abs(got - pixels(pipeline, 1, [face_crop])).max() <= 2
    first, second = (np.asarray(r.images[0].image, dtype=np.int16) for r in results)
    assert np.abs(first - second).mean() > 2


def test_shortcut_scale_zero_leaves_only_the_id_tokens(model_cache):
    """s_scale weighs the resampler's face-structure output; at 0 the crop has no say."""
    loaded = load_pipeline(
        ModelConfig(
            cache=model_cache, embedding_dim=128, faceid_variant="plusv2", shortcut_scale=0.0
        )
    )
    pipeline = PersonalizedPipeline(loaded)
    assert np.array_equal(pixels(pipeline, 1, [crop(1)]), pixels(pipeline, 1, [crop(2)]))
    assert np.abs(pixels(pipeline, 1, [crop(1)]) - pixels(pipeline, 2, [crop(1)])).mean() > 2


def test_fused_qkv_leaves_the_resampler_attention_alone(plus, model_cache):
    """The resampler attends to CLIP tokens through a self-attention-built layer;
    fusing it (fuse_qkv is on by default with CUDA) would break every call."""
    fused = load_pipeline(
        ModelConfig(cache=model_cache, embedding_dim=128, faceid_variant="plusv2", fuse_qkv="on")
    )
    fast, plain = PersonalizedPipeline(fused), PersonalizedPipeline(plus)
    assert np.abs(pixels(fast, 1, [crop(1)]) - pixels(plain, 1, [crop(1)])).max() <= 2


def test_imagine_generate_passes_the_enrolled_crops(capsys, env, portrait, tmp_path):
    out_dir = tmp_path / "out"
    argv = ["--photo", str(portrait), "--prompt", "me", "--out", str(out_dir), *SMALL_ARGS]
    code = main(["generate", *argv], environ={**env, "IMAGINE_FACEID_VARIANT": "plusv2"})
    _, err = capsys.readouterr()
    assert code == 0, err
    (sidecar,) = out_dir.glob("*.json")
    assert json.loads(sidecar.read_text())["adapter_id"].startswith("ip-adapter-faceid-plusv2")


def test_imagine_batch_passes_each_items_crops(capsys, env, portrait, tmp_path):
    (portrait.parent / "hopper.jpg").write_bytes(hopper())
    manifest = portrait.parent / "m.jsonl"
    manifest.write_text(
        '{"id": "me", "photos": ["me.jpg"], "prompt": "me as an astronaut", "seed": 3}\n'
        '{"id": "grace", "photos": ["hopper.jpg"], "prompt": "me in a lab", "seed": 3}\n'
    )
    out = tmp_path / "out"
    argv = [str(manifest), "--out", str(out), *SMALL_ARGS]
    code = main(["batch", *argv], environ={**env, "IMAGINE_FACEID_VARIANT": "plusv2"})
    _, err = capsys.readouterr()
    assert code == 0, err
    for item in ("me", "grace"):
        sidecar = json.loads((out / item / "0.json").read_text())
        assert sidecar["adapter_id"].startswith("ip-adapter-faceid-plusv2")


@pytest.mark.slow
def test_a_compiled_unet_reads_each_calls_crops(plus, model_cache):
    """torch.compile of the whole UNet traces the Plus projection too; the crop features
    it reads from the layer must stay an input, not a constant baked into the graph."""
    import torch

    compiled = load_pipeline(
        ModelConfig(cache=model_cache, embedding_dim=128, faceid_variant="plusv2", compile="unet")
    )
    fast, plain = PersonalizedPipeline(compiled), PersonalizedPipeline(plus)
    try:
        for face_crop in (crop(1), crop(2)):
            assert np.abs(pixels(fast, 1, [face_crop]) - pixels(plain, 1, [face_crop])).max() <= 2
    finally:
        torch._dynamo.reset()
