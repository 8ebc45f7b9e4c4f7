"""The ``smoke`` profile's models: a tiny SDXL-architecture pipeline with random weights.

Built once from config, saved to the model cache with ``save_pretrained`` and
from then on loaded through exactly the same ``from_pretrained`` /
``load_ip_adapter`` path as real weights. Every layer type of SDXL is present
(text-time added conditioning, two CLIP text encoders with a pooled
projection, cross-attention transformer blocks, an 8x VAE), only narrow.
Its images are noise: the point is to run every stage for real on a CPU.

The FaceID Plus v2 variant adds a tiny random CLIP vision encoder (saved with
its ``CLIPImageProcessor`` config, like a hub image-encoder folder) and a Plus
adapter in the original ``ip-adapter-faceid-plusv2_sdxl.bin`` key layout. Both
adapters carry the FaceID LoRA in the real files' layout (``faceid_lora``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import torch

from imagine.tokens import byte_level_tokenizer

SMOKE_VERSION = "smoke-v2"  # v2: the FaceID adapters carry their LoRA, as the real files do
SEED = 20261128  # weights are identical on every machine
TEXT_HIDDEN = 32  # both text encoders; the UNet's cross-attention width is their sum
ADDITION_TIME_DIM = 8
FACEID_TOKENS = 4  # diffusers' FaceID attention processors are built for 4 tokens
FACEID_MULT = 2
# The FaceID LoRA on every attention layer's q/k/v/out (ip-adapter-faceid_sdxl.bin: rank 128).
LORA_RANK = 4
# FaceID Plus: diffusers builds the resampler with 4 blocks of 64-wide heads and reads
# the head count as to_q rows // 64, so the tiny one keeps both (heads = cross // 64 = 1).
PLUS_DEPTH = 4
PLUS_DIM_HEAD = 64
PLUS_FF_MULT = 4
INSTANTID_TOKENS = 16  # the InstantID resampler's queries, as in the real ip-adapter.bin
CLIP_VISION_CONFIG: dict[str, Any] = {
    "hidden_size": 32,  # ViT-H/14: 1280; the Plus adapter's proj_in reads this width
    "intermediate_size": 64,
    "num_hidden_layers": 3,  # the adapter reads the penultimate hidden states
    "num_attention_heads": 4,
    "image_size": 32,  # ViT-H/14: 224 (257 tokens); here 4x4 patches + CLS = 17 tokens
    "patch_size": 8,
    "projection_dim": 32,
    "hidden_act": "gelu",
}


class SmokeFiles(NamedTuple):
    pipeline: Path  # diffusers SDXL folder
    adapter: Path  # IP-Adapter FaceID (or FaceID Plus v2, or InstantID) weight file
    image_encoder: Path | None  # CLIP vision folder; Plus v2 only
    controlnet: Path | None = None  # InstantID's IdentityNet (ControlNetModel folder)


def smoke_folder(cache: Path) -> Path:
    return cache / SMOKE_VERSION / "pipeline"


def smoke_adapter_file(cache: Path, embedding_dim: int, variant: str = "faceid") -> Path:
    kind = "faceid" if variant == "faceid" else "faceid-plusv2"
    return cache / SMOKE_VERSION / f"ip-adapter-{kind}-smoke-{embedding_dim}d.safetensors"


def smoke_instantid_files(cache: Path, embedding_dim: int) -> tuple[Path, Path]:
    """InstantID's two files, named as in the InstantX/InstantID repository:
    ``ControlNetModel/`` (IdentityNet) and an ``ip-adapter.bin`` sized to the encoder."""
    folder = cache / SMOKE_VERSION / "instantid"
    return folder / "ControlNetModel", folder / f"ip-adapter-smoke-{embedding_dim}d.bin"


def smoke_image_encoder_folder(cache: Path) -> Path:
    return cache / SMOKE_VERSION / "image_encoder"


def ensure_smoke_models(cache: Path, embedding_dim: int, variant: str = "faceid") -> SmokeFiles:
    """Build the smoke pipeline and the ``variant``'s adapter into ``cache`` if absent.

    ``variant`` is ``"faceid"`` or ``"plusv2"`` (which also needs the CLIP image
    encoder). Each part is written to a temporary folder first and renamed into
    place, so a crash never leaves a half-saved model that later loads as garbage.
    """
    folder = smoke_folder(cache)
    adapter = smoke_adapter_file(cache, embedding_dim, variant)
    if not (folder / "model_index.json").is_file():
        _atomic_build(folder, _save_pipeline)
    unet_config = json.loads((folder / "unet" / "config.json").read_text())
    if variant == "instantid":
        controlnet, adapter = smoke_instantid_files(cache, embedding_dim)
        if not (controlnet / "config.json").is_file():
            _atomic_build(controlnet, lambda tmp: _save_identitynet(tmp, folder))
        if not adapter.is_file():
            _atomic_build(
                adapter,
                lambda tmp: torch.save(
                    _nested(instantid_state_dict(unet_config, embedding_dim)), tmp
                ),
            )
        return SmokeFiles(folder, adapter, None, controlnet)
    if variant == "faceid":
        if not adapter.is_file():
            _atomic_build(adapter, lambda tmp: _save_adapter(tmp, unet_config, embedding_dim))
        return SmokeFiles(folder, adapter, None)
    encoder = smoke_image_encoder_folder(cache)
    if not (encoder / "config.json").is_file():
        _atomic_build(encoder, _save_image_encoder)
    if not adapter.is_file():
        _atomic_build(
            adapter,
            lambda tmp: _save_adapter(
                tmp, unet_config, embedding_dim, clip_width=CLIP_VISION_CONFIG["hidden_size"]
            ),
        )
    return SmokeFiles(folder, adapter, encoder)


def _atomic_build(target: Path, build) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        built = tmp / target.name
        build(built)
        try:
            os.replace(built, target)
        except OSError:
            if not target.exists():  # another process may have won the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


TEXT_CONFIG = {
    "vocab_size": 514,  # len(imagine.tokens.byte_level_vocab())
    "hidden_size": TEXT_HIDDEN,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 77,
    "projection_dim": TEXT_HIDDEN,
    "bos_token_id": 0,
    "eos_token_id": 1,
    "pad_token_id": 1,
    "hidden_act": "gelu",
}

SMOKE_CONFIGS = {
    "unet": {
        "sample_size": 32,
        "in_channels": 4,
        "out_channels": 4,
        "block_out_channels": (32, 64),
        "layers_per_block": 1,
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
        "attention_head_dim": (2, 4),
        "transformer_layers_per_block": (1, 1),
        "use_linear_projection": True,
        "cross_attention_dim": 2 * TEXT_HIDDEN,
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": ADDITION_TIME_DIM,
        # 6 size/crop conditioning numbers, each embedded, plus the pooled text embedding
        "projection_class_embeddings_input_dim": 6 * ADDITION_TIME_DIM + TEXT_HIDDEN,
        "norm_num_groups": 16,
    },
    "vae": {
        "in_channels": 3,
        "out_channels": 3,
        "block_out_channels": (16, 16, 32, 32),  # four blocks: the same 8x downscale as SDXL's
        "down_block_types": ("DownEncoderBlock2D",) * 4,
        "up_block_types": ("UpDecoderBlock2D",) * 4,
        "latent_channels": 4,
        "norm_num_groups": 16,
        "sample_size": 256,
        "scaling_factor": 0.13025,  # SDXL's
    },
    "text_encoder": TEXT_CONFIG,
    "text_encoder_2": TEXT_CONFIG,
    "scheduler": {
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "timestep_spacing": "leading",
        "steps_offset": 1,
    },
}


def build_pipeline(
    configs: dict[str, dict],
    *,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int = SEED,
) -> Any:  # diffusers.StableDiffusionXLPipeline
    """An SDXL-architecture pipeline with random weights, built directly on ``device``.

    ``configs`` holds ``unet``, ``vae``, ``text_encoder``, ``text_encoder_2`` and
    ``scheduler`` (EulerDiscreteScheduler) config dicts, as in a diffusers
    folder's ``*/config.json``. Modules are constructed under ``device``, so a
    full-size SDXL (2.6 B UNet parameters) is initialised on the GPU in seconds
    and its weights never exist on the CPU. Both encoders share the byte-level
    tokenizer: token ids then differ from CLIP's, compute does not.
    """
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    def text_config(name: str) -> CLIPTextConfig:
        return CLIPTextConfig(**{k: v for k, v in configs[name].items() if k != "architectures"})

    torch.manual_seed(seed)  # seeds the CPU and every CUDA generator
    # Construction order fixes the random weights: unet, vae, text_encoder, text_encoder_2.
    with torch.device(device):
        unet = UNet2DConditionModel.from_config(configs["unet"])
        vae = AutoencoderKL.from_config(configs["vae"])
        text_encoder = CLIPTextModel(text_config("text_encoder"))
        text_encoder_2 = CLIPTextModelWithProjection(text_config("text_encoder_2"))
    tokenizer = byte_level_tokenizer()
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=EulerDiscreteScheduler.from_config(configs["scheduler"]),
        add_watermarker=False,  # provenance marks images after decoding (imagine/provenance)
    )
    return pipe.to(dtype=dtype)  # type: ignore[attr-defined]


def _save_pipeline(folder: Path) -> None:
    pipe = build_pipeline(SMOKE_CONFIGS)
    pipe.save_pretrained(folder, safe_serialization=True)


def faceid_state_dict(
    unet_config: dict, embedding_dim: int, *, device: str = "cpu"
) -> dict[str, torch.Tensor]:
    """A random IP-Adapter FaceID state dict in the original (non-diffusers) key layout.

    float32 on ``device``; the values depend on it (each device has its own random
    stream). A full-size SDXL adapter has 350 M parameters: draw those on a GPU.

    ``image_proj``: ``proj.0`` [D*mult, D], ``proj.2`` [tokens*cross, D*mult] and
    ``norm`` [cross] (diffusers recognises FaceID by ``norm.weight``).
    ``ip_adapter``: ``{k}.to_k_ip`` / ``{k}.to_v_ip`` [hidden, cross] for each
    cross-attention processor, k = 1, 3, 5, ... in ``unet.attn_processors`` order,
    and the FaceID LoRA trained with them (``faceid_lora``).
    """
    rand = _random_weights(SEED + embedding_dim, device)
    state = _id_projection(rand, unet_config["cross_attention_dim"], embedding_dim, device)
    state.update(_ip_adapter_layers(rand, unet_config))
    state.update(faceid_lora(rand, unet_config))
    return state


def faceid_plus_state_dict(
    unet_config: dict, embedding_dim: int, clip_width: int, *, device: str = "cpu"
) -> dict[str, torch.Tensor]:
    """A random IP-Adapter FaceID Plus state dict in the original key layout
    (``ip-adapter-faceid-plusv2_sdxl.bin``: ``ProjPlusModel`` with a ``FacePerceiverResampler``).

    ``image_proj`` holds FaceID's ``proj`` / ``norm`` (the ID tokens, the
    resampler's queries) plus ``perceiver_resampler.*``: ``proj_in`` [cross,
    clip_width] from the CLIP encoder's hidden states, ``PLUS_DEPTH`` blocks of
    (``0``: attention with ``norm1``/``norm2``, ``to_q``, ``to_kv``, ``to_out``;
    ``1``: LayerNorm, Linear, GELU, Linear), ``proj_out`` and ``norm_out``
    [cross]. diffusers recognises it by ``perceiver_resampler.proj_in.weight``.
    ``ip_adapter`` is laid out as in ``faceid_state_dict``, LoRA included.
    """
    cross = unet_config["cross_attention_dim"]
    inner = (cross // PLUS_DIM_HEAD) * PLUS_DIM_HEAD  # heads * dim_head
    rand = _random_weights(SEED + embedding_dim + clip_width, device)
    state = _id_projection(rand, cross, embedding_dim, device)

    def norm(prefix: str) -> None:
        state[f"{prefix}.weight"] = torch.ones(cross, device=device)
        state[f"{prefix}.bias"] = torch.zeros(cross, device=device)

    resampler = "image_proj.perceiver_resampler"
    state[f"{resampler}.proj_in.weight"] = rand(cross, clip_width)
    state[f"{resampler}.proj_in.bias"] = torch.zeros(cross, device=device)
    for i in range(PLUS_DEPTH):
        block = f"{resampler}.layers.{i}"
        norm(f"{block}.0.norm1")
        norm(f"{block}.0.norm2")
        state[f"{block}.0.to_q.weight"] = rand(inner, cross)
        state[f"{block}.0.to_kv.weight"] = rand(2 * inner, cross)
        state[f"{block}.0.to_out.weight"] = rand(cross, inner)
        norm(f"{block}.1.0")
        state[f"{block}.1.1.weight"] = rand(PLUS_FF_MULT * cross, cross)
        state[f"{block}.1.3.weight"] = rand(cross, PLUS_FF_MULT * cross)
    state[f"{resampler}.proj_out.weight"] = rand(cross, cross)
    state[f"{resampler}.proj_out.bias"] = torch.zeros(cross, device=device)
    norm(f"{resampler}.norm_out")
    state.update(_ip_adapter_layers(rand, unet_config))
    state.update(faceid_lora(rand, unet_config))
    return state


def instantid_state_dict(
    unet_config: dict, embedding_dim: int, *, device: str = "cpu"
) -> dict[str, torch.Tensor]:
    """A random InstantID ``ip-adapter.bin`` state dict, flat, in the original key layout.

    ``image_proj`` is IP-Adapter Plus's ``Resampler`` over the face embedding:
    ``latents`` [1, queries, dim] (InstantID: 16 x 1280), ``proj_in`` [dim, D]
    (D = 512 for ArcFace), ``PLUS_DEPTH`` blocks (``0``: attention with
    ``norm1``/``norm2``, ``to_q``, ``to_kv``, ``to_out``; ``1``: LayerNorm, Linear,
    GELU, Linear), ``proj_out`` [cross, dim] and ``norm_out`` [cross]; diffusers
    recognises it by ``latents``. ``ip_adapter`` holds ``to_k_ip`` / ``to_v_ip`` as
    in ``faceid_state_dict``, without a LoRA (InstantID has none).
    """
    cross = unet_config["cross_attention_dim"]
    dim = PLUS_DIM_HEAD  # one 64-wide head; diffusers reads heads as to_q rows // 64
    rand = _random_weights(SEED + 2 * embedding_dim, device)
    state = {
        "image_proj.latents": rand(1, INSTANTID_TOKENS, dim) * dim**0.5,
        "image_proj.proj_in.weight": rand(dim, embedding_dim, scale=4.0),
        "image_proj.proj_in.bias": torch.zeros(dim, device=device),
    }
    for i in range(PLUS_DEPTH):
        block = f"image_proj.layers.{i}"
        for norm in (f"{block}.0.norm1", f"{block}.0.norm2", f"{block}.1.0"):
            state[f"{norm}.weight"] = torch.ones(dim, device=device)
            state[f"{norm}.bias"] = torch.zeros(dim, device=device)
        state[f"{block}.0.to_q.weight"] = rand(dim, dim)
        state[f"{block}.0.to_kv.weight"] = rand(2 * dim, dim)
        state[f"{block}.0.to_out.weight"] = rand(dim, dim)
        state[f"{block}.1.1.weight"] = rand(PLUS_FF_MULT * dim, dim)
        state[f"{block}.1.3.weight"] = rand(dim, PLUS_FF_MULT * dim)
    state["image_proj.proj_out.weight"] = rand(cross, dim)
    state["image_proj.proj_out.bias"] = torch.zeros(cross, device=device)
    state["image_proj.norm_out.weight"] = torch.ones(cross, device=device)
    state["image_proj.norm_out.bias"] = torch.zeros(cross, device=device)
    state.update(_ip_adapter_layers(rand, unet_config))
    return state


def _nested(flat: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """A flat ``image_proj.* / ip_adapter.*`` state dict as the original ``.bin`` holds it."""
    nested: dict[str, dict[str, torch.Tensor]] = {"image_proj": {}, "ip_adapter": {}}
    for key, value in flat.items():
        group, _, rest = key.partition(".")
        nested[group][rest] = value
    return nested


def _save_identitynet(folder: Path, pipeline: Path) -> None:
    """InstantID's IdentityNet for the smoke UNet: a ControlNet copied from it
    (``ControlNetModel.from_unet``), saved as ``config.json`` +
    ``diffusion_pytorch_model.safetensors``. A trained ControlNet's output convolutions
    start at zero; here they are random, and the control-image encoder's convolutions are
    drawn large (2x He), so that where the keypoints are drawn visibly steers the image."""
    from diffusers import ControlNetModel, UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(pipeline, subfolder="unet", local_files_only=True)
    controlnet = ControlNetModel.from_unet(
        unet, conditioning_embedding_out_channels=(8, 16, 32, 32)
    )
    generator = torch.Generator().manual_seed(SEED + 3)
    zero_convs = [
        controlnet.controlnet_cond_embedding.conv_out,
        *controlnet.controlnet_down_blocks,
        controlnet.controlnet_mid_block,
    ]
    encoder = [
        m for m in controlnet.controlnet_cond_embedding.modules() if isinstance(m, torch.nn.Conv2d)
    ]
    with torch.no_grad():
        for conv, gain in [(c, 2 * 2**0.5) for c in encoder] + [(c, 1.0) for c in zero_convs]:
            fan_in = conv.weight[0].numel()
            draw = torch.randn(conv.weight.shape, generator=generator)
            conv.weight.copy_(draw * gain / fan_in**0.5)
    controlnet.save_pretrained(folder, safe_serialization=True)


def _random_weights(seed: int, device: str):
    """``rand(*shape, scale=1.0)``: normal weights scaled by 1/sqrt(fan_in), one seeded stream."""
    generator = torch.Generator(device).manual_seed(seed)

    def rand(*shape: int, scale: float = 1.0) -> torch.Tensor:
        fan_in = shape[-1]
        return torch.randn(*shape, generator=generator, device=device) * scale / fan_in**0.5

    return rand


def _id_projection(rand, cross: int, embedding_dim: int, device: str) -> dict[str, torch.Tensor]:
    """FaceID's ID-embedding projection to ``FACEID_TOKENS`` tokens of width ``cross``."""
    hidden = embedding_dim * FACEID_MULT
    return {
        "image_proj.proj.0.weight": rand(hidden, embedding_dim),
        "image_proj.proj.0.bias": torch.zeros(hidden, device=device),
        "image_proj.proj.2.weight": rand(FACEID_TOKENS * cross, hidden),
        "image_proj.proj.2.bias": torch.zeros(FACEID_TOKENS * cross, device=device),
        "image_proj.norm.weight": torch.ones(cross, device=device),
        "image_proj.norm.bias": torch.zeros(cross, device=device),
    }


def faceid_lora(rand, unet_config: dict, rank: int = LORA_RANK) -> dict[str, torch.Tensor]:
    """The FaceID LoRA in the original layout: for every attention processor k (self- and
    cross-attention, ``unet.attn_processors`` order), ``ip_adapter.{k}.{p}_lora.down.weight``
    [rank, in] and ``.up.weight`` [out, rank] for p in to_q, to_k, to_v, to_out. to_k / to_v
    read the text tokens in cross-attention (in = cross), the image tokens otherwise.
    IP-Adapter applies them unscaled (no alpha): ``W x + up(down(x))``."""
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(unet_config)
    state = {}
    for k, name in enumerate(unet.attn_processors):
        attn = unet.get_submodule(name.removesuffix(".processor"))
        hidden, context = attn.to_q.in_features, attn.to_k.in_features
        for proj, width_in in (("to_q", hidden), ("to_k", context), ("to_v", context)):
            state[f"ip_adapter.{k}.{proj}_lora.down.weight"] = rand(rank, width_in)
            state[f"ip_adapter.{k}.{proj}_lora.up.weight"] = rand(hidden, rank, scale=0.5)
        state[f"ip_adapter.{k}.to_out_lora.down.weight"] = rand(rank, hidden)
        state[f"ip_adapter.{k}.to_out_lora.up.weight"] = rand(hidden, rank, scale=0.5)
    return state


def _ip_adapter_layers(rand, unet_config: dict) -> dict[str, torch.Tensor]:
    """``ip_adapter.{k}.to_k_ip`` / ``to_v_ip`` [hidden, cross] for each cross-attention."""
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(unet_config)
    cross = unet_config["cross_attention_dim"]
    channels = list(unet_config["block_out_channels"])
    state = {}
    key = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue  # self-attention: no image tokens
        if name.startswith("mid_block"):
            width = channels[-1]
        elif name.startswith("up_blocks"):
            width = channels[::-1][int(name[len("up_blocks.")])]
        else:
            width = channels[int(name[len("down_blocks.")])]
        # Scaled up so the face visibly steers the random model (identity sensitivity).
        state[f"ip_adapter.{key}.to_k_ip.weight"] = rand(width, cross, scale=4.0)
        state[f"ip_adapter.{key}.to_v_ip.weight"] = rand(width, cross, scale=4.0)
        key += 2
    return state


def _save_adapter(
    path: Path, unet_config: dict, embedding_dim: int, clip_width: int | None = None
) -> None:
    """FaceID, or FaceID Plus when ``clip_width`` (the image encoder's hidden size) is given."""
    from safetensors.torch import save_file

    if clip_width is None:
        state, kind = faceid_state_dict(unet_config, embedding_dim), "ip-adapter-faceid"
    else:
        state = faceid_plus_state_dict(unet_config, embedding_dim, clip_width)
        kind = "ip-adapter-faceid-plusv2"
    save_file(
        state,
        str(path),
        metadata={"format": "pt", "kind": kind, "embedding_dim": str(embedding_dim)},
    )


def _save_image_encoder(folder: Path) -> None:
    """A tiny random CLIP vision tower with projection, and its preprocessor config,
    in the layout of a hub image-encoder folder (``config.json``, ``model.safetensors``,
    ``preprocessor_config.json``)."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(SEED)
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**CLIP_VISION_CONFIG))
    encoder.save_pretrained(folder, safe_serialization=True)
    side = CLIP_VISION_CONFIG["image_size"]
    processor = CLIPImageProcessor(
        size={"shortest_edge": side}, crop_size={"height": side, "width": side}
    )
    processor.save_pretrained(folder)
