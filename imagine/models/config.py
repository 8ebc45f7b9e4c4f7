"""Model profiles, their defaults and the model settings: what every part reads, nothing loads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imagine.errors import ImagineError

PROFILES = ("smoke", "sdxl")
SCHEDULERS = ("euler", "euler_a", "dpmpp_2m_karras", "ddim")
ATTENTION = ("sdpa", "xformers")
SWITCH = ("auto", "on", "off")  # auto: on where measured to help (CUDA), off on CPU
COMPILE = ("off", "unet", "blocks")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
FACEID_VARIANTS = ("faceid", "plusv2", "instantid")


class ModelNotFound(ImagineError):
    code = "model_not_found"


class ModelConfigError(ImagineError):
    code = "invalid_model_config"


@dataclass(frozen=True)
class ProfileDefaults:
    steps: int
    width: int
    height: int
    guidance_scale: float
    adapter_scale: float
    is_noise: bool  # True: outputs carry no meaning; say so wherever a user sees them


DEFAULTS = {
    "smoke": ProfileDefaults(
        steps=4, width=256, height=256, guidance_scale=5.0, adapter_scale=0.8, is_noise=True
    ),
    "sdxl": ProfileDefaults(
        steps=30, width=1024, height=1024, guidance_scale=5.0, adapter_scale=0.8, is_noise=False
    ),
}


@dataclass(frozen=True)
class ModelConfig:
    profile: str = "smoke"
    cache: Path = Path(".imagine/models")  # where smoke weights are built
    embedding_dim: int = 128  # the active face encoder's; the adapter must match
    model_dir: Path | None = None  # sdxl: diffusers folder or single-file .safetensors/.ckpt
    single_file_config: Path | None = None  # sdxl single file: a local diffusers config folder
    faceid_adapter: Path | None = None  # sdxl: ip-adapter-faceid_sdxl.bin (or .safetensors)
    # "faceid" | "plusv2" (adds the CLIP encoder and face crops) | "instantid" (adds
    # IdentityNet, a ControlNet on the face's five keypoints)
    faceid_variant: str = "faceid"
    image_encoder: Path | None = None  # sdxl plusv2: CLIP ViT-H/14 image-encoder folder
    shortcut_scale: float = 1.0  # plusv2: weight of the face-structure tokens (s_scale)
    controlnet: Path | None = None  # sdxl instantid: InstantID's ControlNetModel/ folder
    identitynet_scale: float = 0.8  # instantid: weight of the keypoint ControlNet's residuals
    lora_scale: float = 1.0  # the FaceID LoRA inside the adapter file; 0 turns it off
    lora_fuse: str = "on"  # "on": merged into the UNet weights at load | "off": PEFT layers
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    dtype: str = "auto"  # "auto" | "float32" | "bfloat16" | "float16"
    attention: str = "sdpa"  # "sdpa" | "xformers" (CUDA only)
    scheduler: str = "euler"
    vae_tiling: str = "auto"  # "auto" (above 1 megapixel) | "on" | "off"
    # Speed switches (README "Performance"); "auto" means on for CUDA, off on CPU.
    channels_last: str = "auto"  # UNet and VAE convolutions in NHWC
    fuse_qkv: str = "auto"  # one q/k/v projection per self-attention
    compile: str = "off"  # "off" | "unet" (whole UNet) | "blocks" (each transformer block)
    compile_mode: str = "default"  # torch.compile mode; "reduce-overhead" adds CUDA graphs


@dataclass(frozen=True)
class SpeedSwitches:
    """The speed switches as applied: ``auto`` resolved for the device."""

    channels_last: bool = False
    fuse_qkv: bool = False
    compile: str = "off"
    compile_mode: str = "default"

    def describe(self) -> str:
        on = [name for name in ("channels_last", "fuse_qkv") if getattr(self, name)]
        if self.compile != "off":
            on.append(f"compile={self.compile}:{self.compile_mode}")
        return "+".join(on) or "none"


def check_config(config: ModelConfig) -> None:
    """Validate choices early, naming the setting and repeating the bad value."""
    for name, value, allowed in (
        ("profile", config.profile, PROFILES),
        ("scheduler", config.scheduler, SCHEDULERS),
        ("attention", config.attention, ATTENTION),
        ("device", config.device, ("auto", "cpu", "cuda")),
        ("dtype", config.dtype, ("auto", "float32", "bfloat16", "float16")),
        ("vae_tiling", config.vae_tiling, ("auto", "on", "off")),
        ("channels_last", config.channels_last, SWITCH),
        ("fuse_qkv", config.fuse_qkv, SWITCH),
        ("compile", config.compile, COMPILE),
        ("compile_mode", config.compile_mode, COMPILE_MODES),
        ("faceid_variant", config.faceid_variant, FACEID_VARIANTS),
        ("lora_fuse", config.lora_fuse, ("on", "off")),
    ):
        if value not in allowed:
            raise ModelConfigError(f"{name}={value!r} is not one of {', '.join(allowed)}")
    if not 0.0 <= config.shortcut_scale <= 5.0:
        raise ModelConfigError(f"shortcut_scale must be 0-5, got {config.shortcut_scale!r}")
    if not 0.0 <= config.identitynet_scale <= 2.0:
        raise ModelConfigError(f"identitynet_scale must be 0-2, got {config.identitynet_scale!r}")
    if not 0.0 <= config.lora_scale <= 2.0:
        raise ModelConfigError(f"lora_scale must be 0-2, got {config.lora_scale!r}")
