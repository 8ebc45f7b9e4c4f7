"""The speed switches: each one reversible ``if`` block (after diffusion-fast's loader)."""

from __future__ import annotations

from typing import Any, cast

from imagine.models.config import ModelConfig, ModelConfigError, SpeedSwitches


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
        # An unfused FaceID LoRA wraps to_q/k/v in PEFT layers: fusing would concatenate
        # their base weights and drop the LoRA. IMAGINE_FACEID_LORA_FUSE=on merges it first.
        if hasattr(module.to_q, "base_layer"):
            continue
        fused = isinstance(module.processor, FusedAttnProcessor2_0)
        if fuse and not fused:
            module.fuse_projections(fuse=True)  # adds to_qkv; to_q/k/v stay for unfusing
            module.set_processor(cast(Any, FusedAttnProcessor2_0()))
        elif fused and not fuse:
            del module.to_qkv
            module.fused_projections = False
            module.set_processor(cast(Any, AttnProcessor2_0()))
