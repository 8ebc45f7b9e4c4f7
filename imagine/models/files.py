"""Finding model files on disk: a diffusers SDXL folder or single file, adapters, encoders."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from imagine.models.config import ModelConfig, ModelNotFound

# Files a diffusers SDXL folder must hold (weights may be .safetensors, .bin, or fp16 variants).
SDXL_LAYOUT = (
    "model_index.json",
    "unet/config.json",
    "vae/config.json",
    "text_encoder/config.json",
    "text_encoder_2/config.json",
    "tokenizer",
    "tokenizer_2",
    "scheduler/scheduler_config.json",
)
# A CLIP image-encoder folder as transformers saves it (laion/CLIP-ViT-H-14-laion2B-s32B-b79K,
# or h94/IP-Adapter's models/image_encoder): config.json and one of these weight files.
IMAGE_ENCODER_WEIGHTS = (
    "model.safetensors",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)
ADAPTER_FILES = {
    "faceid": "ip-adapter-faceid_sdxl.bin",
    "plusv2": "ip-adapter-faceid-plusv2_sdxl.bin",
    "instantid": "ip-adapter.bin",  # InstantX/InstantID's
}
# InstantID's IdentityNet, as InstantX/InstantID ships it: a diffusers ControlNet folder.
CONTROLNET_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


class SdxlFiles(NamedTuple):
    weights: Path  # diffusers folder or single-file checkpoint
    adapter: Path  # IP-Adapter FaceID (or FaceID Plus v2) weight file
    image_encoder: Path | None  # CLIP image-encoder folder; plusv2 only
    controlnet: Path | None = None  # InstantID's ControlNetModel/ folder; instantid only


def find_sdxl_files(config: ModelConfig) -> SdxlFiles:
    """The sdxl profile's files, or ``ModelNotFound`` listing everything that is missing."""
    problems = []
    model_dir, adapter = config.model_dir, config.faceid_adapter
    if model_dir is None:
        problems.append(
            "IMAGINE_MODEL_DIR (or --model-dir) is not set: point it at an SDXL base "
            "diffusers folder or a single-file .safetensors checkpoint"
        )
    elif model_dir.is_dir():
        missing = [p for p in SDXL_LAYOUT if not (model_dir / p).exists()]
        if missing:
            problems.append(
                f"{model_dir} is not a diffusers SDXL folder; missing: {', '.join(missing)}"
            )
    elif model_dir.is_file():
        cfg = config.single_file_config
        if cfg is None or not (cfg / "model_index.json").is_file():
            problems.append(
                f"{model_dir} is a single-file checkpoint; it needs IMAGINE_SDXL_CONFIG_DIR "
                "pointing at a local diffusers config folder (model_index.json, */config.json, "
                "tokenizers) because configs cannot be downloaded here"
            )
    else:
        problems.append(f"{model_dir}: no such file or folder (SDXL base weights expected)")
    expected = ADAPTER_FILES.get(config.faceid_variant, ADAPTER_FILES["faceid"])
    if adapter is None:
        problems.append(f"IMAGINE_FACEID_ADAPTER is not set: point it at {expected}")
    elif not adapter.is_file():
        problems.append(f"{adapter}: no such file ({expected} expected)")
    image_encoder = None
    if config.faceid_variant == "plusv2":
        image_encoder = config.image_encoder
        problems += image_encoder_problems(image_encoder)
    controlnet = None
    if config.faceid_variant == "instantid":
        controlnet = config.controlnet
        problems += controlnet_problems(controlnet)
    if problems:
        raise ModelNotFound("the sdxl profile cannot load:\n  - " + "\n  - ".join(problems))
    assert model_dir is not None and adapter is not None
    return SdxlFiles(model_dir, adapter, image_encoder, controlnet)


def controlnet_problems(folder: Path | None) -> list[str]:
    """What keeps ``folder`` from loading as InstantID's IdentityNet."""
    if folder is None:
        return [
            "IMAGINE_INSTANTID_CONTROLNET is not set: InstantID (IMAGINE_FACEID_VARIANT="
            "instantid) needs its IdentityNet, the ControlNetModel/ folder of InstantX/InstantID "
            f"(config.json, {CONTROLNET_WEIGHTS[0]})"
        ]
    return folder_problems(folder, "InstantID's ControlNetModel folder", CONTROLNET_WEIGHTS)


def image_encoder_problems(folder: Path | None) -> list[str]:
    """What keeps ``folder`` from loading as FaceID Plus v2's CLIP image encoder."""
    if folder is None:
        return [
            "IMAGINE_CLIP_IMAGE_ENCODER is not set: FaceID Plus v2 (IMAGINE_FACEID_VARIANT="
            "plusv2) needs a CLIP ViT-H/14 image-encoder folder "
            "(laion/CLIP-ViT-H-14-laion2B-s32B-b79K: config.json, model.safetensors)"
        ]
    return folder_problems(folder, "a CLIP image-encoder folder", IMAGE_ENCODER_WEIGHTS)


def folder_problems(folder: Path, what: str, weights: tuple[str, ...]) -> list[str]:
    """A model folder as diffusers / transformers save it: ``config.json`` and one of
    ``weights``; what is missing, as one line naming ``what`` the folder should be."""
    if not folder.is_dir():
        return [f"{folder}: no such folder ({what} expected)"]
    missing = []
    if not (folder / "config.json").is_file():
        missing.append("config.json")
    if not any((folder / name).is_file() for name in weights):
        missing.append(" or ".join(weights[:2]))
    if missing:
        return [f"{folder} is not {what}; missing: {', '.join(missing)}"]
    return []
