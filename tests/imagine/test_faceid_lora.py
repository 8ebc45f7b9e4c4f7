"""The FaceID LoRA inside the adapter file is applied, scaled and fused like the authors run it.

IP-Adapter FaceID was trained with a LoRA on every attention layer of the UNet;
it ships in the adapter file's ``ip_adapter`` dict. The smoke adapters carry one
in the real key layout, so these tests load it through the same code as
``ip-adapter-faceid_sdxl.bin``: the smoke pipeline folder stands in for SDXL base
under the ``sdxl`` profile, and adapters are written as the original nested
``.bin`` or as flat ``.safetensors``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from imagine.models.config import ModelConfig, ModelConfigError
from imagine.models.loading import LoadedPipeline, load_pipeline
from imagine.pipeline import PersonalizedPipeline
from imagine.settings import Settings
from imagine.smoke import ensure_smoke_models, smoke_adapter_file, smoke_folder
from tests.imagine.conftest import unit

SMALL = {"width": 64, "height": 64, "steps": 2, "seed": 7}


def sdxl(model_cache: Path, adapter: Path, **changes) -> ModelConfig:
    return ModelConfig(
        profile="sdxl", model_dir=smoke_folder(model_cache), faceid_adapter=adapter, **changes
    )


def pixels(loaded: LoadedPipeline, face: int = 1) -> np.ndarray:
    result = PersonalizedPipeline(loaded)("me as an astronaut", unit(face), **SMALL)
    return np.asarray(result.images[0].image, dtype=np.int16)


def write_adapter(model_cache: Path, path: Path, keep=lambda key: True) -> Path:
    """The smoke FaceID adapter's weights, filtered by ``keep``, written to ``path``: flat
    ``.safetensors``, or the original ``.bin`` (``{"image_proj": {...}, "ip_adapter": {...}}``)."""
    flat = {k: v for k, v in load_file(smoke_adapter_file(model_cache, 128)).items() if keep(k)}
    if path.suffix == ".safetensors":
        save_file(flat, path)
    else:
        nested: dict[str, dict] = {"image_proj": {}, "ip_adapter": {}}
        for key, value in flat.items():
            group, _, rest = key.partition(".")
            nested[group][rest] = value
        torch.save(nested, path)
    return path


def without_lora(key: str) -> bool:
    return "_lora." not in key


@pytest.fixture(scope="module")
def unfused(smoke, model_cache) -> LoadedPipeline:
    return load_pipeline(ModelConfig(cache=model_cache, embedding_dim=128, lora_fuse="off"))


def test_settings_reach_the_model_config():
    env = {"IMAGINE_FACEID_LORA_SCALE": "0.6", "IMAGINE_FACEID_LORA_FUSE": "off"}
    config = Settings.from_env(env).models(embedding_dim=128)
    assert (config.lora_scale, config.lora_fuse) == (0.6, "off")


def test_the_smoke_adapter_carries_the_lora_in_the_real_layout(smoke, model_cache):
    keys = set(load_file(smoke_adapter_file(model_cache, 128)))
    attention_layers = len(smoke.pipe.unet.attn_processors)
    for k in range(attention_layers):  # self- and cross-attention alike
        for proj in ("to_q_lora", "to_k_lora", "to_v_lora", "to_out_lora"):
            for part in ("down", "up"):
                assert f"ip_adapter.{k}.{proj}.{part}.weight" in keys
    ensure_smoke_models(model_cache, 128, "plusv2")
    plus = set(load_file(smoke_adapter_file(model_cache, 128, "plusv2")))
    assert "ip_adapter.0.to_out_lora.up.weight" in plus


def test_faceid_0_is_active_after_loading_the_original_bin(unfused, model_cache, tmp_path):
    assert unfused.pipe.get_active_adapters() == ["faceid_0"]
    (lora,) = unfused.loras
    assert (lora.name, lora.scale, lora.fused) == ("faceid_0", 1.0, False)
    assert lora.layers == len(unfused.pipe.unet.attn_processors)
    # The real file is a pickled dict of dicts; it goes through the same loader.
    original = write_adapter(model_cache, tmp_path / "ip-adapter-faceid_sdxl.bin")
    loaded = load_pipeline(sdxl(model_cache, original, lora_fuse="off"))
    assert loaded.pipe.get_active_adapters() == ["faceid_0"]
    assert loaded.adapters()["loras"][0]["source"] == "ip-adapter-faceid_sdxl.bin"
    assert np.array_equal(pixels(loaded), pixels(unfused))


def test_lora_scale_zero_equals_the_adapter_without_its_lora(smoke, model_cache, tmp_path):
    bare = write_adapter(model_cache, tmp_path / "bare.safetensors", keep=without_lora)
    full = write_adapter(model_cache, tmp_path / "full.safetensors")
    plain = load_pipeline(sdxl(model_cache, bare))
    assert plain.loras == () and plain.adapters()["loras"] == []
    expected = pixels(plain)
    for fuse in ("off", "on"):
        off = load_pipeline(sdxl(model_cache, full, lora_scale=0.0, lora_fuse=fuse))
        assert off.loras[0].scale == 0.0
        assert np.array_equal(pixels(off), expected), fuse


def test_the_lora_changes_the_image(smoke, unfused, model_cache):
    half = load_pipeline(ModelConfig(cache=model_cache, embedding_dim=128, lora_scale=0.5))
    zero = load_pipeline(ModelConfig(cache=model_cache, embedding_dim=128, lora_scale=0.0))
    full, halved, none = pixels(unfused), pixels(half), pixels(zero)
    assert np.abs(full - none).mean() > 5  # of 255: the LoRA steers the whole image
    assert np.abs(halved - none).mean() > 1 and not np.array_equal(halved, full)


def test_fused_matches_unfused(smoke, unfused):
    # smoke is the default config: fused into the weights, no PEFT layers left.
    assert smoke.loras[0].fused and smoke.pipe.get_list_adapters() == {}
    for face in (1, 2):
        # float32: the merge only reorders sums; under one level of 255 per pixel.
        assert np.abs(pixels(smoke, face) - pixels(unfused, face)).max() <= 1


def test_fuse_qkv_keeps_an_unfused_lora(unfused, model_cache):
    switched = load_pipeline(
        ModelConfig(cache=model_cache, embedding_dim=128, lora_fuse="off", fuse_qkv="on")
    )
    assert np.array_equal(pixels(switched), pixels(unfused))


def test_an_incomplete_lora_is_refused(smoke, model_cache, tmp_path):
    broken = write_adapter(
        model_cache,
        tmp_path / "broken.bin",
        keep=lambda key: key != "ip_adapter.3.to_v_lora.up.weight",
    )
    with pytest.raises(ModelConfigError) as err:
        load_pipeline(sdxl(model_cache, broken))
    assert err.value.code == "invalid_model_config"
    assert "LoRA of attention layer 3 is incomplete" in err.value.message
    assert "3.to_v_lora.up.weight" in err.value.message


def test_a_lora_for_a_bigger_unet_is_refused(smoke, model_cache, tmp_path):
    flat = load_file(smoke_adapter_file(model_cache, 128))
    layers = len(smoke.pipe.unet.attn_processors)
    for key in [k for k in flat if k.startswith("ip_adapter.0.") and "_lora." in k]:
        flat[key.replace("ip_adapter.0.", f"ip_adapter.{layers + 5}.")] = flat[key].clone()
    save_file(flat, tmp_path / "bigger.safetensors")
    with pytest.raises(ModelConfigError, match=f"attention layer {layers + 5}"):
        load_pipeline(sdxl(model_cache, tmp_path / "bigger.safetensors"))


def test_without_peft_loading_fails_instead_of_skipping_the_lora(smoke, model_cache):
    """diffusers alone would log a warning and run without the LoRA. A fresh process in
    which ``peft`` cannot be imported (``sys.modules["peft"] = None``, as if it were not
    installed) must refuse to load instead."""
    script = (
        "import sys; sys.modules['peft'] = None\n"
        "from pathlib import Path\n"
        "from imagine.models.config import ModelConfig, ModelConfigError\n"
        "from imagine.models.loading import load_pipeline\n"
        "try:\n"
        f"    load_pipeline(ModelConfig(cache=Path({str(model_cache)!r}), embedding_dim=128))\n"
        "except ModelConfigError as exc:\n"
        "    print(exc.code, exc.message)\n"
    )
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert run.stdout.startswith("invalid_model_config "), run.stderr[-2000:]
    assert "install peft" in run.stdout
