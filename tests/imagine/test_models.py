"""Loading: smoke weights go through from_pretrained; real-weight errors say what is missing."""

from __future__ import annotations

import json

import pytest

from imagine.models import (
    ModelConfig,
    ModelConfigError,
    ModelNotFound,
    find_sdxl_files,
    load_pipeline,
)
from imagine.smoke import smoke_adapter_file, smoke_folder


def test_smoke_is_saved_in_diffusers_layout_then_loaded(smoke, model_cache):
    folder = smoke_folder(model_cache)
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionXLPipeline"
    for part in (
        "unet",
        "vae",
        "text_encoder",
        "text_encoder_2",
        "tokenizer",
        "tokenizer_2",
        "scheduler",
    ):
        assert (folder / part).is_dir(), part
    assert smoke_adapter_file(model_cache, 128).is_file()
    unet = smoke.pipe.unet.config
    assert unet.addition_embed_type == "text_time"
    assert unet.cross_attention_dim == 64  # both text encoders' hidden sizes
    assert smoke.pipe.vae_scale_factor == 8  # like SDXL's VAE
    assert smoke.embedding_dim == 128 and smoke.device == "cpu" and smoke.dtype == "float32"


def test_adapter_is_sized_to_the_face_encoder(model_cache, smoke):
    loaded = load_pipeline(ModelConfig(cache=model_cache, embedding_dim=512, scheduler="ddim"))
    assert loaded.embedding_dim == 512
    assert type(loaded.pipe.scheduler).__name__ == "DDIMScheduler"
    assert smoke_adapter_file(model_cache, 512).is_file()


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("euler", "EulerDiscreteScheduler"),
        ("euler_a", "EulerAncestralDiscreteScheduler"),
        ("dpmpp_2m_karras", "DPMSolverMultistepScheduler"),
    ],
)
def test_named_schedulers(smoke, name, cls):
    from imagine.models import make_scheduler

    scheduler = make_scheduler(name, smoke.pipe.scheduler.config)
    assert type(scheduler).__name__ == cls
    if name == "dpmpp_2m_karras":
        assert scheduler.config.use_karras_sigmas


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"profile": "sd15"}, "profile='sd15'"),
        ({"scheduler": "fast"}, "scheduler='fast'"),
        ({"attention": "flash"}, "attention='flash'"),
        ({"dtype": "float8"}, "dtype='float8'"),
        ({"channels_last": "yes"}, "channels_last='yes'"),
        ({"fuse_qkv": "true"}, "fuse_qkv='true'"),
        ({"compile": "all"}, "compile='all'"),
        ({"compile_mode": "fast"}, "compile_mode='fast'"),
    ],
)
def test_bad_choices_name_the_setting(change, words, tmp_path):
    with pytest.raises(ModelConfigError) as err:
        load_pipeline(ModelConfig(cache=tmp_path, **change))
    assert words in err.value.message


def test_xformers_needs_cuda(tmp_path, smoke, model_cache):
    with pytest.raises(ModelConfigError, match="CUDA"):
        load_pipeline(ModelConfig(cache=model_cache, attention="xformers"))


def test_sdxl_without_settings_lists_what_to_set():
    with pytest.raises(ModelNotFound) as err:
        find_sdxl_files(ModelConfig(profile="sdxl"))
    assert "IMAGINE_MODEL_DIR" in err.value.message
    assert "IMAGINE_FACEID_ADAPTER" in err.value.message
    assert err.value.code == "model_not_found"


def test_sdxl_folder_missing_parts_are_listed(tmp_path):
    (tmp_path / "sdxl" / "unet").mkdir(parents=True)
    (tmp_path / "sdxl" / "model_index.json").write_text("{}")
    (tmp_path / "sdxl" / "unet" / "config.json").write_text("{}")
    with pytest.raises(ModelNotFound) as err:
        find_sdxl_files(
            ModelConfig(
                profile="sdxl", model_dir=tmp_path / "sdxl", faceid_adapter=tmp_path / "nope.bin"
            )
        )
    message = err.value.message
    assert "vae/config.json" in message and "text_encoder_2/config.json" in message
    assert "unet/config.json" not in message
    assert f"{tmp_path / 'nope.bin'}: no such file" in message


def test_single_file_checkpoint_needs_a_local_config(tmp_path):
    ckpt = tmp_path / "sd_xl_base_1.0.safetensors"
    ckpt.write_bytes(b"\0")
    adapter = tmp_path / "ip-adapter-faceid_sdxl.bin"
    adapter.write_bytes(b"\0")
    with pytest.raises(ModelNotFound, match="IMAGINE_SDXL_CONFIG_DIR"):
        find_sdxl_files(ModelConfig(profile="sdxl", model_dir=ckpt, faceid_adapter=adapter))
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "model_index.json").write_text("{}")
    found = find_sdxl_files(
        ModelConfig(
            profile="sdxl", model_dir=ckpt, faceid_adapter=adapter, single_file_config=config_dir
        )
    )
    assert found == (ckpt, adapter)


def test_sdxl_loads_a_real_diffusers_folder_with_local_files_only(smoke, model_cache, tmp_path):
    """The sdxl profile's loader on a complete folder: the smoke weights stand in for SDXL base."""
    from safetensors.torch import load_file, save_file

    adapter = tmp_path / "ip-adapter-faceid_sdxl.safetensors"
    save_file(load_file(smoke_adapter_file(model_cache, 128)), adapter)
    loaded = load_pipeline(
        ModelConfig(profile="sdxl", model_dir=smoke_folder(model_cache), faceid_adapter=adapter)
    )
    assert loaded.profile == "sdxl" and loaded.embedding_dim == 128
    assert loaded.defaults.steps == 30 and not loaded.defaults.is_noise
