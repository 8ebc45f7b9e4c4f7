"""Model profiles and loading: the one place where weights are found and speed switches live.

Profiles:
- ``smoke`` (default): tiny random-weight SDXL built once into the model cache
  (``imagine/smoke.py``), then loaded like real weights. Images are noise.
- ``sdxl``: SDXL base from a local diffusers folder or a single-file
  checkpoint, plus an IP-Adapter FaceID SDXL weight file, all local.

Face adapter variants (``faceid_variant``), in either profile:
- ``faceid``: IP-Adapter FaceID; the face embedding alone.
- ``plusv2``: IP-Adapter FaceID Plus v2; the face embedding plus CLIP ViT-H/14
  features of the aligned face crop (face structure), so it also loads a CLIP
  image encoder and every call needs the identity's crops.

``load_pipeline`` reads top to bottom: find files, load components, pick
device and dtype, then each speed switch as its own ``if`` block
(``apply_speed_switches``, after diffusion-fast's loader). The benchmarks build
random full-size weights in memory and enter at ``prepare_pipeline``, so they
time exactly what the service runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, cast

from imagine.errors import ImagineError

PROFILES = ("smoke", "sdxl")
SCHEDULERS = ("euler", "euler_a", "dpmpp_2m_karras", "ddim")
ATTENTION = ("sdpa", "xformers")
SWITCH = ("auto", "on", "off")  # auto: on where measured to help (CUDA), off on CPU
COMPILE = ("off", "unet", "blocks")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
FACEID_VARIANTS = ("faceid", "plusv2")

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
}


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
    faceid_variant: str = "faceid"  # "faceid" | "plusv2" (adds the CLIP encoder and face crops)
    image_encoder: Path | None = None  # sdxl plusv2: CLIP ViT-H/14 image-encoder folder
    shortcut_scale: float = 1.0  # plusv2: weight of the face-structure tokens (s_scale)
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


@dataclass
class LoadedPipeline:
    """A ready diffusers SDXL pipeline with the FaceID adapter attached."""

    pipe: Any  # diffusers.StableDiffusionXLPipeline
    profile: str
    model_id: str
    adapter_id: str
    embedding_dim: int  # what the adapter's image projection expects
    device: str
    dtype: str
    scheduler: str
    defaults: ProfileDefaults
    vae_tiling: str
    switches: SpeedSwitches = SpeedSwitches()
    faceid_variant: str = "faceid"  # "plusv2": every call needs the identity's face crops
    image_encoder_id: str | None = None  # plusv2: the CLIP image encoder's folder name


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
    ):
        if value not in allowed:
            raise ModelConfigError(f"{name}={value!r} is not one of {', '.join(allowed)}")
    if not 0.0 <= config.shortcut_scale <= 5.0:
        raise ModelConfigError(f"shortcut_scale must be 0-5, got {config.shortcut_scale!r}")


class SdxlFiles(NamedTuple):
    weights: Path  # diffusers folder or single-file checkpoint
    adapter: Path  # IP-Adapter FaceID (or FaceID Plus v2) weight file
    image_encoder: Path | None  # CLIP image-encoder folder; plusv2 only


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
    if problems:
        raise ModelNotFound("the sdxl profile cannot load:\n  - " + "\n  - ".join(problems))
    assert model_dir is not None and adapter is not None
    return SdxlFiles(model_dir, adapter, image_encoder)


def image_encoder_problems(folder: Path | None) -> list[str]:
    """What keeps ``folder`` from loading as FaceID Plus v2's CLIP image encoder."""
    if folder is None:
        return [
            "IMAGINE_CLIP_IMAGE_ENCODER is not set: FaceID Plus v2 (IMAGINE_FACEID_VARIANT="
            "plusv2) needs a CLIP ViT-H/14 image-encoder folder "
            "(laion/CLIP-ViT-H-14-laion2B-s32B-b79K: config.json, model.safetensors)"
        ]
    if not folder.is_dir():
        return [f"{folder}: no such folder (CLIP ViT-H/14 image encoder expected)"]
    missing = []
    if not (folder / "config.json").is_file():
        missing.append("config.json")
    if not any((folder / name).is_file() for name in IMAGE_ENCODER_WEIGHTS):
        missing.append(" or ".join(IMAGE_ENCODER_WEIGHTS[:2]))
    if missing:
        return [f"{folder} is not a CLIP image-encoder folder; missing: {', '.join(missing)}"]
    return []


def resolve_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise ModelConfigError("device='cuda' was asked for but no CUDA device is available")
    return requested


def resolve_dtype(requested: str, device: str) -> str:
    if requested != "auto":
        if device == "cpu" and requested != "float32":
            raise ModelConfigError(f"dtype={requested!r} is not supported on CPU; use float32")
        return requested
    if device == "cpu":
        return "float32"
    import torch

    return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"


def make_scheduler(name: str, base_config: Any) -> Any:
    from diffusers import (
        DDIMScheduler,
        DPMSolverMultistepScheduler,
        EulerAncestralDiscreteScheduler,
        EulerDiscreteScheduler,
    )

    if name == "euler":
        return EulerDiscreteScheduler.from_config(base_config)
    if name == "euler_a":
        return EulerAncestralDiscreteScheduler.from_config(base_config)
    if name == "dpmpp_2m_karras":
        return DPMSolverMultistepScheduler.from_config(
            base_config, algorithm_type="dpmsolver++", solver_order=2, use_karras_sigmas=True
        )
    if name == "ddim":
        return DDIMScheduler.from_config(base_config)
    raise ModelConfigError(f"scheduler={name!r} is not one of {', '.join(SCHEDULERS)}")


def _quiet_loaders() -> None:
    """Loading bars and hub notices from diffusers/transformers would drown our own progress."""
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def load_pipeline(config: ModelConfig) -> LoadedPipeline:
    """Load the profile's weights from local files only, then prepare them for serving."""
    check_config(config)
    _quiet_loaders()
    import torch
    from diffusers import StableDiffusionXLPipeline

    device = resolve_device(config.device)
    dtype = getattr(torch, resolve_dtype(config.dtype, device))

    # 1. Find the files (smoke: build them once into the cache) and load the weights.
    if config.profile == "smoke":
        from imagine.smoke import SMOKE_VERSION, ensure_smoke_models

        folder, adapter, image_encoder = ensure_smoke_models(
            config.cache, config.embedding_dim, config.faceid_variant
        )
        model_id = SMOKE_VERSION
        pipe = StableDiffusionXLPipeline.from_pretrained(
            folder,
            dtype=dtype,
            local_files_only=True,
            use_safetensors=True,
            add_watermarker=False,  # provenance marks images after decoding (imagine/provenance)
        )
    else:
        weights, adapter, image_encoder = find_sdxl_files(config)
        model_id = weights.name
        if weights.is_dir():
            pipe = StableDiffusionXLPipeline.from_pretrained(
                weights, dtype=dtype, local_files_only=True, add_watermarker=False
            )
        else:
            pipe = StableDiffusionXLPipeline.from_single_file(
                str(weights),
                config=str(config.single_file_config),
                dtype=dtype,
                local_files_only=True,
                add_watermarker=False,
            )
    return prepare_pipeline(pipe, adapter, config, model_id=model_id, image_encoder=image_encoder)


def prepare_pipeline(
    pipe: Any,
    adapter: Path,
    config: ModelConfig,
    *,
    model_id: str,
    image_encoder: Path | None = None,
) -> LoadedPipeline:
    """Attach the face adapter to loaded SDXL weights and apply every switch of ``config``.

    ``pipe`` is a ``StableDiffusionXLPipeline`` already in the configured dtype;
    ``adapter`` an IP-Adapter FaceID (or, for ``plusv2``, FaceID Plus v2) weight
    file; ``image_encoder`` the CLIP image-encoder folder that ``plusv2`` needs.
    """
    check_config(config)
    _quiet_loaders()
    import torch

    device = resolve_device(config.device)
    dtype_name = resolve_dtype(config.dtype, device)

    # 2. Attention backend, before the adapter: diffusers picks the IP-Adapter
    #    processor class (SDPA or xFormers) from the processors in place.
    if config.attention == "xformers":
        if device != "cuda":
            raise ModelConfigError("attention='xformers' needs a CUDA device; use 'sdpa'")
        try:
            pipe.enable_xformers_memory_efficient_attention()
        except Exception as exc:  # ImportError or a build that does not match torch
            raise ModelConfigError(f"attention='xformers' is unavailable here: {exc}") from None

    # 3. The face adapter. FaceID takes face embeddings only. FaceID Plus v2 also reads
    #    CLIP ViT-H/14 features of the aligned face crop, so its image encoder is attached
    #    first from its own folder (load_ip_adapter would look for it next to the adapter
    #    file, and leaves one already in place).
    if config.faceid_variant == "plusv2":
        if image_encoder is None:
            raise ModelNotFound(image_encoder_problems(None)[0])
        attach_image_encoder(pipe, image_encoder)
    pipe.load_ip_adapter(
        str(adapter.parent),
        subfolder="",
        weight_name=adapter.name,
        image_encoder_folder=None,
        local_files_only=True,
    )
    embedding_dim = configure_projection(pipe, adapter, config)
    if config.profile == "smoke" and embedding_dim != config.embedding_dim:
        raise ModelConfigError(f"smoke adapter expects {embedding_dim}-d embeddings")

    # 4. Scheduler, device and dtype.
    pipe.scheduler = make_scheduler(config.scheduler, pipe.scheduler.config)
    pipe.to(device)
    if dtype_name == "float16" and pipe.vae.config.force_upcast:
        pipe.vae.to(torch.float32)  # SDXL's VAE overflows in fp16; diffusers upcasts it too
    pipe.set_progress_bar_config(disable=True)

    # 5. Memory switches. VAE slicing decodes a batch one image at a time;
    #    tiling decodes large images in overlapping tiles (needed past ~1 MP on 24 GB cards).
    pipe.vae.enable_slicing()
    if config.vae_tiling == "on":
        pipe.vae.enable_tiling()

    # 6. Speed switches (README "Performance" has each one's measured effect).
    switches = resolve_switches(config, device)
    apply_speed_switches(pipe, switches)

    return LoadedPipeline(
        pipe=pipe,
        profile=config.profile,
        model_id=model_id,
        adapter_id=adapter.name,
        embedding_dim=embedding_dim,
        device=device,
        dtype=dtype_name,
        scheduler=config.scheduler,
        defaults=DEFAULTS[config.profile],
        vae_tiling=config.vae_tiling,
        switches=switches,
        faceid_variant=config.faceid_variant,
        image_encoder_id=None if image_encoder is None else image_encoder.name,
    )


def attach_image_encoder(pipe: Any, folder: Path) -> None:
    """Register a CLIP vision encoder and its image processor on ``pipe`` (local files only).

    The processor comes from the folder's ``preprocessor_config.json`` when it has
    one, else it is diffusers' default for the encoder's input size (224 for ViT-H/14).
    """
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    encoder = CLIPVisionModelWithProjection.from_pretrained(
        folder, dtype=pipe.unet.dtype, local_files_only=True
    )
    if (folder / "preprocessor_config.json").is_file():
        processor = CLIPImageProcessor.from_pretrained(folder, local_files_only=True)
    else:
        side: Any = encoder.config.image_size
        processor = CLIPImageProcessor(
            size={"shortest_edge": side}, crop_size={"height": side, "width": side}
        )
    pipe.register_modules(image_encoder=encoder, feature_extractor=processor)


def configure_projection(pipe: Any, adapter: Path, config: ModelConfig) -> int:
    """Check that ``adapter`` is the configured variant and set it up; returns its embedding size.

    Plus v2 is Plus with the shortcut on: the ID tokens are added back to the
    resampler's output, ``id + shortcut_scale * resampler(id, clip)`` (the
    ``shortcut=True, s_scale`` of IP-Adapter's FaceID Plus v2 demo).
    """
    from diffusers.models.embeddings import (
        IPAdapterFaceIDImageProjection,
        IPAdapterFaceIDPlusImageProjection,
    )

    projection = pipe.unet.encoder_hid_proj.image_projection_layers[0]
    if config.faceid_variant == "faceid":
        if not isinstance(projection, IPAdapterFaceIDImageProjection):
            raise ModelConfigError(
                f"{adapter.name} is not a plain IP-Adapter FaceID adapter "
                f"({type(projection).__name__}); a FaceID Plus v2 file needs "
                "IMAGINE_FACEID_VARIANT=plusv2 and IMAGINE_CLIP_IMAGE_ENCODER"
            )
        ff: Any = projection.ff  # FeedForward: net[0] is GELU with the [D*mult, D] proj
        return int(ff.net[0].proj.in_features)
    if not isinstance(projection, IPAdapterFaceIDPlusImageProjection):
        raise ModelConfigError(
            f"IMAGINE_FACEID_VARIANT=plusv2 but {adapter.name} is not a FaceID Plus adapter "
            f"(no perceiver_resampler weights); use {ADAPTER_FILES['plusv2']}"
        )
    clip_width, expected = pipe.image_encoder.config.hidden_size, projection.proj_in.in_features
    if clip_width != expected:
        raise ModelConfigError(
            f"the CLIP image encoder gives {clip_width}-wide features but {adapter.name} "
            f"expects {expected} (CLIP ViT-H/14 has 1280)"
        )
    projection.shortcut = True
    projection.shortcut_scale = config.shortcut_scale
    ff = projection.proj
    return int(ff.net[0].proj.in_features)


def resolve_switches(config: ModelConfig, device: str) -> SpeedSwitches:
    """``auto`` is on for CUDA and off on CPU, where neither switch measured faster
    (benchmarks/results/)."""

    def resolve(value: str) -> bool:
        return device == "cuda" if value == "auto" else value == "on"

    fuse_qkv = resolve(config.fuse_qkv)
    if config.attention == "xformers" and fuse_qkv:
        if config.fuse_qkv == "on":
            raise ModelConfigError(
                "fuse_qkv='on' runs self-attention through PyTorch SDPA; it cannot be combined "
                "with attention='xformers'"
            )
        fuse_qkv = False
    return SpeedSwitches(
        channels_last=resolve(config.channels_last),
        fuse_qkv=fuse_qkv,
        compile=config.compile,
        compile_mode=config.compile_mode,
    )


def apply_speed_switches(pipe: Any, switches: SpeedSwitches) -> None:
    """Put ``pipe``'s UNet and VAE into exactly the state ``switches`` describes.

    Each switch is applied or undone, so the benchmarks can turn them on and
    off in turn on one set of weights; the service calls this once.
    """
    import torch

    unet, vae = pipe.unet, pipe.vae
    # Undo an earlier compile first: the switches below change the modules it traced.
    for module in unet.modules():
        if getattr(module, "_compiled_call_impl", None) is not None:
            module._compiled_call_impl = None  # what nn.Module.compile sets; None runs eager

    # channels_last: convolutions in NHWC, the layout cuDNN's tensor-core kernels
    # prefer; activations follow the weights' layout from conv_in on.
    layout = torch.channels_last if switches.channels_last else torch.contiguous_format
    unet.to(memory_format=layout)
    vae.to(memory_format=layout)

    # fuse_qkv: one [C, 3C] GEMM per self-attention instead of three [C, C] ones.
    # Self-attention only: the cross-attention processors hold the FaceID
    # adapter's to_k_ip / to_v_ip, and diffusers' own fuse_qkv_projections()
    # would replace them with FusedAttnProcessor2_0 and silently drop the face.
    fuse_self_attention(unet, switches.fuse_qkv)

    # compile: torch.compile of the whole UNet, or of each transformer block
    # (regional compilation: the 70 SDXL blocks share a few compiled graphs, so
    # warm-up takes far less time). The first call of each new shape compiles.
    if switches.compile == "unet":
        unet.compile(mode=switches.compile_mode)
    elif switches.compile == "blocks":
        unet.compile_repeated_blocks(mode=switches.compile_mode)


def fuse_self_attention(unet: Any, fuse: bool) -> None:
    """Fuse (or unfuse) the q/k/v projections of every self-attention layer of ``unet``."""
    from diffusers.models.attention_processor import (
        Attention,
        AttnProcessor2_0,
        FusedAttnProcessor2_0,
    )

    for name, module in unet.named_modules():
        if not isinstance(module, Attention) or module.is_cross_attention:
            continue
        # The FaceID Plus resampler (encoder_hid_proj) calls its attention with context
        # tokens although it is built as self-attention: fused, it would look for to_kv.
        if name.startswith("encoder_hid_proj."):
            continue
        fused = isinstance(module.processor, FusedAttnProcessor2_0)
        if fuse and not fused:
            module.fuse_projections(fuse=True)  # adds to_qkv; to_q/k/v stay for unfusing
            module.set_processor(cast(Any, FusedAttnProcessor2_0()))
        elif fused and not fuse:
            del module.to_qkv
            module.fused_projections = False
            module.set_processor(cast(Any, AttnProcessor2_0()))
