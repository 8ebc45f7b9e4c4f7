"""InstantID on the smoke profile: the face embedding through the resampler adapter, the
enrolled face's keypoints through IdentityNet (a ControlNet), from files in the real layouts.

The smoke InstantID files are a ``ControlNetModel/`` folder (``config.json`` +
``diffusion_pytorch_model.safetensors``) and an ``ip-adapter.bin`` pickled as the
original is; the ``sdxl`` profile loads copies of them with the smoke pipeline
standing in for SDXL base. Images are noise; what is checked is that each input
reaches the model where the user put it.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from imagine.cli import main
from imagine.face_keypoints import COLOURS, FacePlacement, control_image
from imagine.models.config import ModelConfig, ModelConfigError, ModelNotFound
from imagine.models.files import find_sdxl_files
from imagine.models.loading import LoadedPipeline, load_pipeline
from imagine.pipeline import GenerationRequest, PersonalizedPipeline
from imagine.request import InvalidArgument
from imagine.settings import Settings
from imagine.smoke import ensure_smoke_models, smoke_folder, smoke_instantid_files
from tests.identity.insightface_pack import ASTRONAUT, write_pack
from tests.imagine.conftest import unit

SMALL = {"width": 128, "height": 128, "steps": 2, "seed": 7}
SMALL_ARGS = ["--size", "128x128", "--steps", "2"]
# insightface's five keypoints (eyes, nose tip, mouth corners) relative to the face box
KEYPOINTS = np.array(
    [[-0.2, -0.15], [0.2, -0.15], [0.0, 0.05], [-0.15, 0.25], [0.15, 0.25]], np.float32
)


@pytest.fixture(scope="module")
def instantid(model_cache) -> LoadedPipeline:
    return load_pipeline(
        ModelConfig(cache=model_cache, embedding_dim=512, faceid_variant="instantid")
    )


@pytest.fixture
def pipeline(instantid) -> PersonalizedPipeline:
    return PersonalizedPipeline(instantid)


def pixels(pipeline: PersonalizedPipeline, face: int = 1, **kwargs) -> np.ndarray:
    kwargs = {"keypoints": KEYPOINTS, **SMALL, **kwargs}
    result = pipeline("me as an astronaut", unit(face, 512), **kwargs)
    return np.asarray(result.images[0].image, dtype=np.int16)


def test_settings_reach_the_model_config():
    env = {
        "IMAGINE_FACEID_VARIANT": "instantid",
        "IMAGINE_INSTANTID_CONTROLNET": "/models/InstantID/ControlNetModel",
        "IMAGINE_INSTANTID_CONTROLNET_SCALE": "0.6",
    }
    config = Settings.from_env(env).models(embedding_dim=512)
    assert config.faceid_variant == "instantid" and config.identitynet_scale == 0.6
    assert config.controlnet == Path("/models/InstantID/ControlNetModel")


def test_smoke_instantid_is_saved_like_the_real_files(instantid, model_cache):
    controlnet, adapter = smoke_instantid_files(model_cache, 512)
    config = json.loads((controlnet / "config.json").read_text())
    assert (
        config["_class_name"] == "ControlNetModel" and config["addition_embed_type"] == "text_time"
    )
    assert (controlnet / "diffusion_pytorch_model.safetensors").is_file()
    state = torch.load(adapter, weights_only=True)  # the original: a dict of two dicts
    assert set(state) == {"image_proj", "ip_adapter"}
    proj = state["image_proj"]
    assert proj["latents"].shape[1] == 16 and proj["proj_in.weight"].shape[1] == 512
    assert "layers.3.0.to_kv.weight" in proj and "ip_adapter" not in proj
    assert "1.to_k_ip.weight" in state["ip_adapter"]
    assert instantid.adapters() == {
        "face_adapter": adapter.name,
        "variant": "instantid",
        "image_encoder": None,
        "identitynet": "ControlNetModel",
        "loras": [],  # InstantID's adapter has none
    }
    assert type(instantid.pipe).__name__ == "StableDiffusionXLControlNetPipeline"


def sdxl_instantid(model_cache: Path, tmp_path: Path) -> ModelConfig:
    """The sdxl profile with InstantID's files as InstantX/InstantID names them."""
    controlnet, adapter = smoke_instantid_files(model_cache, 512)
    shutil.copytree(controlnet, tmp_path / "InstantID" / "ControlNetModel")
    shutil.copy(adapter, tmp_path / "InstantID" / "ip-adapter.bin")
    return ModelConfig(
        profile="sdxl",
        model_dir=smoke_folder(model_cache),
        faceid_adapter=tmp_path / "InstantID" / "ip-adapter.bin",
        faceid_variant="instantid",
        controlnet=tmp_path / "InstantID" / "ControlNetModel",
    )


def test_sdxl_loads_instantid_from_local_files(instantid, model_cache, tmp_path):
    config = sdxl_instantid(model_cache, tmp_path)
    loaded = load_pipeline(config)
    assert loaded.faceid_variant == "instantid" and loaded.embedding_dim == 512
    assert loaded.identitynet_id == "ControlNetModel" and not loaded.defaults.is_noise
    assert np.array_equal(
        pixels(PersonalizedPipeline(loaded), steps=2), pixels(PersonalizedPipeline(instantid))
    )
    # Every missing file is named at once.
    with pytest.raises(ModelNotFound) as err:
        find_sdxl_files(dataclasses.replace(config, controlnet=None, faceid_adapter=None))
    assert err.value.code == "model_not_found"
    assert "IMAGINE_INSTANTID_CONTROLNET" in err.value.message
    assert "ip-adapter.bin" in err.value.message and "ControlNetModel/" in err.value.message
    assert config.controlnet is not None
    (config.controlnet / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(ModelNotFound, match=r"missing: diffusion_pytorch_model\.safetensors"):
        find_sdxl_files(config)


def test_a_faceid_adapter_is_not_taken_for_instantid(instantid, model_cache, tmp_path):
    config = sdxl_instantid(model_cache, tmp_path)
    faceid = ensure_smoke_models(model_cache, 512).adapter
    with pytest.raises(ModelConfigError, match="not InstantID's adapter"):
        load_pipeline(dataclasses.replace(config, faceid_adapter=faceid))


def test_the_control_image_is_instantids_drawing_centred_by_default():
    image = np.asarray(control_image(KEYPOINTS, FacePlacement(), 512, 512))
    # Centred, face box half of 512 px: the nose tip at (256, 256 + 0.05 * 256).
    for (x, y), colour in zip(KEYPOINTS * 256 + 256, COLOURS, strict=True):
        assert tuple(image[round(y), round(x)]) == colour
    moved = np.asarray(control_image(KEYPOINTS, FacePlacement(0.25, 0.3, 0.25), 512, 512))
    lit = np.argwhere(moved.any(axis=2))  # [N, 2] rows, columns
    assert lit[:, 1].mean() == pytest.approx(0.25 * 512, abs=12)
    assert lit[:, 0].mean() == pytest.approx(0.3 * 512 + 0.05 * 128, abs=12)
    assert not image[:100].any()  # black around the face


def test_keypoints_are_required(pipeline):
    with pytest.raises(InvalidArgument) as err:
        pipeline("me", unit(1, 512), **SMALL)
    assert err.value.code == "missing_face_keypoints"
    assert "IMAGINE_FACE_BACKEND=insightface" in err.value.message


def test_placement_face_and_identitynet_each_steer_the_image(pipeline, instantid):
    centred = pixels(pipeline)
    assert np.array_equal(pixels(pipeline), centred)  # seeded: the same image again
    assert np.abs(pixels(pipeline, placement=FacePlacement(0.3, 0.3, 0.3)) - centred).mean() > 2
    assert np.abs(pixels(pipeline, face=2) - centred).mean() > 1
    off = PersonalizedPipeline(dataclasses.replace(instantid, identitynet_scale=0.0))
    assert np.abs(pixels(off) - centred).mean() > 2
    # Without IdentityNet the keypoints have no say.
    assert np.array_equal(pixels(off, placement=FacePlacement(0.3, 0.3, 0.3)), pixels(off))


def test_generate_batch_gives_each_request_its_own_face_and_placement(pipeline):
    """Two faces at two places in one device batch: each image is its request's alone."""
    text = pipeline.expand("me as an astronaut", None)
    where = (FacePlacement(), FacePlacement(0.3, 0.3, 0.3))
    requests = [
        GenerationRequest("me as an astronaut", text, unit(f, 512), (7,), (), KEYPOINTS, p)
        for f, p in zip((1, 2), where, strict=True)
    ]
    shape = {k: SMALL[k] for k in ("width", "height", "steps")}
    results = pipeline.generate_batch(requests, **shape)
    for result, face, placement in zip(results, (1, 2), where, strict=True):
        got = np.asarray(result.images[0].image, dtype=np.int16)
        assert np.abs(got - pixels(pipeline, face, placement=placement)).max() <= 2


def test_imagine_generate_with_insightface_places_the_enrolled_face(
    capsys, env, portrait, tmp_path, instantid
):
    """Enrollment gives insightface's keypoints (here from the tiny test pack), the CLI
    draws them where --face-at says. With dlib there are no such keypoints: refused."""
    root = write_pack(tmp_path / "insightface", [ASTRONAUT], (512, 512))
    env = {
        **env,
        "IMAGINE_FACEID_VARIANT": "instantid",
        "IMAGINE_FACE_BACKEND": "insightface",
        "IMAGINE_INSIGHTFACE_ROOT": str(root),
        "IMAGINE_INSIGHTFACE_PACK": "tiny",
    }
    out_dir = tmp_path / "out"
    argv = ["--photo", str(portrait), "--prompt", "me", "--out", str(out_dir), *SMALL_ARGS]
    code = main(["generate", *argv, "--face-at", "0.5,0.4,0.4", "--json"], environ=env)
    out, err = capsys.readouterr()
    assert code == 0, err
    (sidecar,) = out_dir.glob("*.json")
    meta = json.loads(sidecar.read_text())
    assert meta["adapters"]["variant"] == "instantid" and meta["face_backend"] == "insightface"
    assert meta["adapters"]["identitynet"] == "ControlNetModel"
    env["IMAGINE_FACE_BACKEND"] = "dlib"
    code = main(["generate", *argv, "--json"], environ=env)
    out, _ = capsys.readouterr()
    assert code == 2 and json.loads(out)["error"]["code"] in (
        "missing_face_keypoints",
        "embedding_mismatch",
    )


def test_imagine_batch_runs_instantid_with_each_items_keypoints(
    capsys, env, portrait, tmp_path, instantid
):
    root = write_pack(tmp_path / "insightface", [ASTRONAUT], (512, 512))
    manifest = portrait.parent / "m.jsonl"
    manifest.write_text('{"id": "me", "photos": ["me.jpg"], "prompt": "me on Mars", "seed": 3}\n')
    env = {
        **env,
        "IMAGINE_FACEID_VARIANT": "instantid",
        "IMAGINE_FACE_BACKEND": "insightface",
        "IMAGINE_INSIGHTFACE_ROOT": str(root),
        "IMAGINE_INSIGHTFACE_PACK": "tiny",
    }
    out = tmp_path / "out"
    code = main(["batch", str(manifest), "--out", str(out), *SMALL_ARGS], environ=env)
    _, err = capsys.readouterr()
    assert code == 0, err
    sidecar = json.loads((out / "me" / "0.json").read_text())
    assert sidecar["adapters"]["identitynet"] == "ControlNetModel"
