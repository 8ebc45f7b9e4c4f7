"""Loading: smoke weights go through from_pretrained; real-weight errors say what is missing."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from imagine.models.config import ModelConfig, ModelConfigError, ModelNotFound
from imagine.models.files import find_sdxl_files
from imagine.models.loading import load_pipeline
from imagine.smoke import ensure_smoke_models, smoke_adapter_file, smoke_folder


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
    from imagine.models.loading import make_scheduler

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
        ({"faceid_variant": "plus"}, "faceid_variant='plus'"),
        ({"shortcut_scale": 6.0}, "shortcut_scale must be 0-5, got 6.0"),
        ({"lora_scale": -0.5}, "lora_scale must be 0-2, got -0.5"),
        ({"lora_fuse": "auto"}, "lora_fuse='auto'"),
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
    assert found == (ckpt, adapter, None, None)  # no image encoder, no IdentityNet


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


def test_plusv2_lists_the_missing_image_encoder_with_everything_else():
    with pytest.raises(ModelNotFound) as err:
        find_sdxl_files(ModelConfig(profile="sdxl", faceid_variant="plusv2"))
    message = err.value.message
    assert "IMAGINE_MODEL_DIR" in message
    assert "IMAGINE_FACEID_ADAPTER is not set: point it at ip-adapter-faceid-plusv2_sdxl.bin" in (
        message
    )
    assert "IMAGINE_CLIP_IMAGE_ENCODER is not set" in message and "ViT-H/14" in message


def test_plusv2_image_encoder_folder_missing_parts_are_listed(tmp_path, model_cache, smoke):
    adapter = tmp_path / "ip-adapter-faceid-plusv2_sdxl.bin"
    adapter.write_bytes(b"\0")
    encoder = tmp_path / "clip"
    encoder.mkdir()
    config = ModelConfig(
        profile="sdxl",
        model_dir=smoke_folder(model_cache),
        faceid_adapter=adapter,
        faceid_variant="plusv2",
        image_encoder=encoder,
    )
    with pytest.raises(ModelNotFound) as err:
        find_sdxl_files(config)
    assert (
        f"{encoder} is not a CLIP image-encoder folder; missing: config.json, "
        "model.safetensors or pytorch_model.bin"
    ) in err.value.message
    with pytest.raises(ModelNotFound, match="no such folder"):
        find_sdxl_files(dataclasses.replace(config, image_encoder=tmp_path / "nowhere"))
    (encoder / "config.json").write_text("{}")
    (encoder / "model.safetensors").write_bytes(b"\0")
    assert find_sdxl_files(config) == (smoke_folder(model_cache), adapter, encoder, None)


def test_plain_faceid_does_not_ask_for_an_image_encoder(tmp_path):
    with pytest.raises(ModelNotFound) as err:
        find_sdxl_files(ModelConfig(profile="sdxl"))
    assert "IMAGINE_CLIP_IMAGE_ENCODER" not in err.value.message


def plus_files(model_cache, tmp_path, *, preprocessor: bool) -> tuple[Path, Path]:
    """The smoke Plus v2 adapter and image encoder copied out of the cache, like real files;
    without ``preprocessor``, the encoder folder is laid out like h94/IP-Adapter's
    ``models/image_encoder`` (no preprocessor_config.json)."""
    smoke_files = ensure_smoke_models(model_cache, 128, "plusv2")
    adapter = tmp_path / "ip-adapter-faceid-plusv2_sdxl.safetensors"
    shutil.copy(smoke_files.adapter, adapter)
    encoder = tmp_path / "image_encoder"
    shutil.copytree(smoke_files.image_encoder, encoder)
    if not preprocessor:
        (encoder / "preprocessor_config.json").unlink()
    return adapter, encoder


def sdxl_plus(model_cache, adapter: Path, encoder: Path) -> ModelConfig:
    """The sdxl profile with Plus v2 files; the smoke weights stand in for SDXL base."""
    return ModelConfig(
        profile="sdxl",
        model_dir=smoke_folder(model_cache),
        faceid_adapter=adapter,
        faceid_variant="plusv2",
        image_encoder=encoder,
    )


def test_sdxl_loads_plusv2_from_local_files(smoke, model_cache, tmp_path):
    adapter, encoder = plus_files(model_cache, tmp_path, preprocessor=False)
    loaded = load_pipeline(sdxl_plus(model_cache, adapter, encoder))
    assert loaded.faceid_variant == "plusv2" and loaded.image_encoder_id == "image_encoder"
    assert loaded.embedding_dim == 128
    side = loaded.pipe.image_encoder.config.image_size
    assert loaded.pipe.feature_extractor.crop_size == {"height": side, "width": side}


def test_an_adapter_of_the_other_variant_is_named(smoke, model_cache, tmp_path):
    adapter, encoder = plus_files(model_cache, tmp_path, preprocessor=True)
    config = sdxl_plus(model_cache, adapter, encoder)
    with pytest.raises(ModelConfigError) as err:
        load_pipeline(dataclasses.replace(config, faceid_variant="faceid"))
    assert "IMAGINE_FACEID_VARIANT=plusv2" in err.value.message
    plain = smoke_adapter_file(model_cache, 128)
    with pytest.raises(ModelConfigError) as err:
        load_pipeline(dataclasses.replace(config, faceid_adapter=plain))
    assert f"{plain.name} is not a FaceID Plus adapter" in err.value.message


def test_an_image_encoder_of_another_width_is_refused(smoke, model_cache, tmp_path):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from imagine.smoke import CLIP_VISION_CONFIG

    adapter, _ = plus_files(model_cache, tmp_path, preprocessor=True)
    wider = tmp_path / "wider"
    config = CLIPVisionConfig(**{**CLIP_VISION_CONFIG, "hidden_size": 48})
    CLIPVisionModelWithProjection(config).save_pretrained(wider)
    with pytest.raises(ModelConfigError, match="48-wide features"):
        load_pipeline(sdxl_plus(model_cache, adapter, wider))
