"""Speed switches: each one is a setting, changes nothing a user sees, and can be undone."""

from __future__ import annotations

import numpy as np
import pytest

from imagine.models.config import ModelConfig, ModelConfigError, SpeedSwitches
from imagine.models.loading import load_pipeline
from imagine.models.speed import apply_speed_switches, resolve_switches
from imagine.pipeline import PersonalizedPipeline
from imagine.settings import Settings
from tests.imagine.conftest import unit

SMALL = {"width": 64, "height": 64, "steps": 2, "seed": 7}


def pixels(pipeline: PersonalizedPipeline, face: np.ndarray, **kwargs) -> np.ndarray:
    result = pipeline("me as an astronaut", face, **{**SMALL, **kwargs})
    return np.asarray(result.images[0].image, dtype=np.int16)


@pytest.fixture(scope="module")
def switched(model_cache, smoke):
    """A second smoke pipeline, loaded with both eager switches forced on."""
    config = ModelConfig(cache=model_cache, embedding_dim=128, channels_last="on", fuse_qkv="on")
    return load_pipeline(config)


def test_auto_is_off_on_cpu_and_on_with_cuda(smoke):
    assert smoke.switches == SpeedSwitches()  # the CPU default: nothing switched on
    on_cuda = resolve_switches(ModelConfig(), "cuda")
    assert on_cuda.channels_last and on_cuda.fuse_qkv and on_cuda.compile == "off"
    forced = resolve_switches(ModelConfig(channels_last="on", compile="blocks"), "cpu")
    assert forced.channels_last and not forced.fuse_qkv and forced.compile == "blocks"


def test_settings_reach_the_model_config():
    env = {
        "IMAGINE_CHANNELS_LAST": "off",
        "IMAGINE_FUSE_QKV": "on",
        "IMAGINE_COMPILE": "unet",
        "IMAGINE_COMPILE_MODE": "reduce-overhead",
    }
    config = Settings.from_env(env).models(128)
    assert (config.channels_last, config.fuse_qkv) == ("off", "on")
    assert (config.compile, config.compile_mode) == ("unet", "reduce-overhead")


def test_fused_qkv_cannot_run_with_xformers():
    with pytest.raises(ModelConfigError, match="xformers"):
        resolve_switches(ModelConfig(attention="xformers", fuse_qkv="on"), "cuda")
    assert not resolve_switches(ModelConfig(attention="xformers"), "cuda").fuse_qkv


def test_fused_self_attention_keeps_the_face_adapter(switched, smoke):
    """diffusers' own fuse_qkv_projections() would drop the FaceID processors."""
    processors = {type(p).__name__ for p in switched.pipe.unet.attn_processors.values()}
    assert processors == {"FusedAttnProcessor2_0", "IPAdapterAttnProcessor2_0"}
    fast, plain = PersonalizedPipeline(switched), PersonalizedPipeline(smoke)
    assert np.abs(pixels(fast, unit(1)) - pixels(plain, unit(1))).max() <= 2  # fp32 rounding
    assert np.abs(pixels(fast, unit(1)) - pixels(fast, unit(2))).mean() > 2  # the face steers
    unscaled = {"adapter_scale": 0.0}
    assert np.array_equal(pixels(fast, unit(1), **unscaled), pixels(fast, unit(2), **unscaled))


def test_switches_can_be_undone_exactly(model_cache, smoke):
    loaded = load_pipeline(ModelConfig(cache=model_cache, embedding_dim=128))
    pipeline = PersonalizedPipeline(loaded)
    before = pixels(pipeline, unit(3))
    apply_speed_switches(loaded.pipe, SpeedSwitches(channels_last=True, fuse_qkv=True))
    apply_speed_switches(loaded.pipe, SpeedSwitches())
    assert np.array_equal(pixels(pipeline, unit(3)), before)
    assert not hasattr(loaded.pipe.unet.down_blocks[1].attentions[0], "to_qkv")


@pytest.mark.slow
def test_compiled_blocks_give_the_same_images(model_cache, smoke):
    """Regional torch.compile on the CPU (about a minute of compiling on two cores)."""
    import torch

    loaded = load_pipeline(ModelConfig(cache=model_cache, embedding_dim=128, compile="blocks"))
    assert loaded.switches.compile == "blocks"
    compiled, plain = PersonalizedPipeline(loaded), PersonalizedPipeline(smoke)
    try:
        assert np.abs(pixels(compiled, unit(1)) - pixels(plain, unit(1))).max() <= 2
        assert np.abs(pixels(compiled, unit(1)) - pixels(compiled, unit(2))).mean() > 2
    finally:
        torch._dynamo.reset()
