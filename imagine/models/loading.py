"""Loading: find files, load components, pick device and dtype, attach the face adapter.

``load_pipeline`` reads top to bottom; the speed switches are applied last
(``imagine.models.speed``). The benchmarks build random full-size weights in memory
and enter at ``prepare_pipeline``, so they time exactly what the service runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagine.models.config import (
    DEFAULTS,
    SCHEDULERS,
    ModelConfig,
    ModelConfigError,
    ModelNotFound,
    ProfileDefaults,
    SpeedSwitches,
    check_config,
)
from imagine.models.files import ADAPTER_FILES, find_sdxl_files, image_encoder_problems
from imagine.models.lora import (
    ActiveLora,
    apply_faceid_lora,
    check_lora_backend,
    lora_layers,
    read_adapter,
)
from imagine.models.speed import apply_speed_switches, resolve_switches


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
    switches: SpeedSwitches = field(default_factory=SpeedSwitches)
    faceid_variant: str = "faceid"  # "plusv2": every call needs the identity's face crops
    image_encoder_id: str | None = None  # plusv2: the CLIP image encoder's folder name
    loras: tuple[ActiveLora, ...] = ()  # applied to the UNet (the FaceID LoRA)
    identitynet_id: str | None = None  # instantid: the IdentityNet (ControlNet) folder name
    identitynet_scale: float = 0.8  # instantid: controlnet_conditioning_scale

    def adapters(self) -> dict[str, Any]:
        """What conditions the UNet besides the text, for the sidecar and /readyz."""
        return {
            "face_adapter": self.adapter_id,
            "variant": self.faceid_variant,
            "image_encoder": self.image_encoder_id,
            "identitynet": self.identitynet_id,
            "loras": [lora.summary() for lora in self.loras],
        }


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

        folder, adapter, image_encoder, controlnet = ensure_smoke_models(
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
        weights, adapter, image_encoder, controlnet = find_sdxl_files(config)
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
    if controlnet is not None:
        pipe = attach_identitynet(pipe, controlnet, dtype)
    return prepare_pipeline(pipe, adapter, config, model_id=model_id, image_encoder=image_encoder)


def attach_identitynet(pipe: Any, folder: Path, dtype: Any) -> Any:
    """InstantID: the SDXL components again as a ``StableDiffusionXLControlNetPipeline``
    (no copy) with IdentityNet, InstantID's ControlNet, loaded from ``folder``."""
    from diffusers import ControlNetModel, StableDiffusionXLControlNetPipeline

    try:
        controlnet = ControlNetModel.from_pretrained(folder, dtype=dtype, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelConfigError(f"{folder} could not be loaded as a ControlNet: {exc}") from None
    if controlnet.config.cross_attention_dim != pipe.unet.config.cross_attention_dim:
        raise ModelConfigError(
            f"{folder} is a ControlNet for {controlnet.config.cross_attention_dim}-wide "
            f"cross-attention, the UNet has {pipe.unet.config.cross_attention_dim}: not SDXL's"
        )
    return StableDiffusionXLControlNetPipeline.from_pipe(pipe, controlnet=controlnet)


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
    #    The file is read once here, so that its LoRA (FaceID's, trained with the adapter)
    #    is known before diffusers applies it, or would skip it without PEFT.
    state = read_adapter(adapter)
    layers = lora_layers(state, pipe.unet, adapter.name)
    check_lora_backend(layers, adapter.name)
    try:
        pipe.load_ip_adapter(
            state, subfolder="", weight_name=adapter.name, image_encoder_folder=None
        )
    except (KeyError, RuntimeError, ValueError) as exc:  # shapes or keys of another model
        raise ModelConfigError(f"{adapter.name} could not be attached: {exc}") from None
    del state
    embedding_dim = configure_projection(pipe, adapter, config)
    if config.profile == "smoke" and embedding_dim != config.embedding_dim:
        raise ModelConfigError(f"smoke adapter expects {embedding_dim}-d embeddings")

    # 4. Scheduler, device and dtype.
    pipe.scheduler = make_scheduler(config.scheduler, pipe.scheduler.config)
    pipe.to(device)
    if dtype_name == "float16" and pipe.vae.config.force_upcast:
        pipe.vae.to(torch.float32)  # SDXL's VAE overflows in fp16; diffusers upcasts it too
    pipe.set_progress_bar_config(disable=True)

    # 5. The FaceID LoRA, checked, scaled, and fused on the device (a merge of every
    #    attention projection: seconds on a CPU for SDXL, instant on a GPU).
    lora = apply_faceid_lora(pipe, layers, config, adapter.name)

    # 6. Memory switches. VAE slicing decodes a batch one image at a time;
    #    tiling decodes large images in overlapping tiles (needed past ~1 MP on 24 GB cards).
    pipe.vae.enable_slicing()
    if config.vae_tiling == "on":
        pipe.vae.enable_tiling()

    # 7. Speed switches (README "Performance" has each one's measured effect).
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
        loras=() if lora is None else (lora,),
        identitynet_id=_identitynet_id(pipe),
        identitynet_scale=config.identitynet_scale,
    )


def _identitynet_id(pipe: Any) -> str | None:
    controlnet = getattr(pipe, "controlnet", None)
    if controlnet is None:
        return None
    return Path(controlnet.config.get("_name_or_path", "ControlNetModel")).name


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
    if config.faceid_variant == "instantid":
        # InstantID's image projection is IP-Adapter Plus's Resampler over the embedding.
        from diffusers.models.embeddings import IPAdapterPlusImageProjection

        if not isinstance(projection, IPAdapterPlusImageProjection):
            raise ModelConfigError(
                f"IMAGINE_FACEID_VARIANT=instantid but {adapter.name} is not InstantID's "
                f"adapter ({type(projection).__name__}, no resampler latents); use "
                f"{ADAPTER_FILES['instantid']} from InstantX/InstantID"
            )
        return int(projection.proj_in.in_features)
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
