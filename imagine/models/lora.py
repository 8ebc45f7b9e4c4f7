"""The FaceID LoRA: read it from the adapter file, make sure diffusers applied it, scale and fuse.

IP-Adapter FaceID was trained together with a LoRA on every attention layer of
the UNet (q, k, v and out projections; rank 128 in ``ip-adapter-faceid_sdxl.bin``).
It ships inside the adapter file, in the ``ip_adapter`` dict next to
``to_k_ip`` / ``to_v_ip`` (``{k}.to_q_lora.down.weight`` ... for each attention
processor k). diffusers' ``load_ip_adapter`` applies it as the PEFT adapter
``faceid_0``, but only when ``peft`` is installed; otherwise it logs a warning and
skips it, and likeness is weaker than the authors show. Here a LoRA that the file
carries is applied or loading fails (``invalid_model_config``).

Fusing (``W + scale * up @ down`` into each base weight, then dropping the PEFT
layers) removes the LoRA's two extra matmuls per projection from every step. On
float32 the fused output differs from the unfused one by rounding only: at most one
8-bit level per pixel on the smoke models (``benchmarks/pipeline_cpu.py``, tested).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagine.models.config import ModelConfig, ModelConfigError

FACEID_LORA = "faceid_0"  # the PEFT adapter name diffusers gives the first adapter's LoRA
LORA_PROJECTIONS = ("to_q_lora", "to_k_lora", "to_v_lora", "to_out_lora")


@dataclass(frozen=True)
class ActiveLora:
    """A LoRA applied to the UNet, as the sidecar and /readyz report it."""

    name: str  # the PEFT adapter name, "faceid_0"
    source: str  # the file it came from
    layers: int  # attention layers it adapts (SDXL: 140, every attn1 and attn2)
    rank: int
    scale: float
    fused: bool  # merged into the base weights at load (no PEFT layers remain)

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "layers": self.layers,
            "rank": self.rank,
            "scale": self.scale,
            "fused": self.fused,
        }


def read_adapter(path: Path) -> dict[str, dict[str, Any]]:
    """An IP-Adapter weight file as ``{"image_proj": {...}, "ip_adapter": {...}}``.

    The original ``.bin`` is a pickled dict of those two dicts (read with
    ``weights_only``); a ``.safetensors`` file is flat, its keys prefixed with the
    dict's name, as diffusers reads it.
    """
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state: dict[str, dict[str, Any]] = {"image_proj": {}, "ip_adapter": {}}
        for key, value in load_file(path).items():
            group, _, rest = key.partition(".")
            if group in state:
                state[group][rest] = value
    else:
        from diffusers.models.model_loading_utils import load_state_dict

        state = load_state_dict(str(path))
    if not isinstance(state, dict) or not {"image_proj", "ip_adapter"} <= state.keys():
        raise ModelConfigError(
            f"{path.name} is not an IP-Adapter weight file (no image_proj / ip_adapter weights)"
        )
    return state


def lora_layers(state: dict[str, dict[str, Any]], unet: Any, source: str) -> list[int]:
    """The attention-processor indices the file's LoRA adapts; each must be complete and
    exist in ``unet``. Empty when the file carries no LoRA."""
    weights = state["ip_adapter"]
    layers = sorted({int(key.split(".", 1)[0]) for key in weights if "_lora." in key})
    count = len(unet.attn_processors)
    for k in layers:
        missing = [
            f"{k}.{proj}.{part}.weight"
            for proj in LORA_PROJECTIONS
            for part in ("down", "up")
            if f"{k}.{proj}.{part}.weight" not in weights
        ]
        if missing:
            raise ModelConfigError(
                f"{source}: the FaceID LoRA of attention layer {k} is incomplete; "
                f"missing {', '.join(missing)}"
            )
        if k >= count:
            raise ModelConfigError(
                f"{source}: the FaceID LoRA has weights for attention layer {k}, but this "
                f"UNet has {count} attention layers; the adapter is for another model"
            )
    return layers


def check_lora_backend(layers: list[int], source: str) -> None:
    """Before loading: diffusers would skip the LoRA, with a log line, without PEFT."""
    from diffusers.utils import USE_PEFT_BACKEND

    if layers and not USE_PEFT_BACKEND:
        raise ModelConfigError(
            f"{source} carries the FaceID LoRA ({len(layers)} attention layers), which "
            "diffusers applies only with the PEFT backend: install peft (a dependency of "
            "imagine-me) and check that it imports"
        )


def apply_faceid_lora(
    pipe: Any, layers: list[int], config: ModelConfig, source: str
) -> ActiveLora | None:
    """After ``load_ip_adapter``: check that ``faceid_0`` adapts every layer the file has
    weights for, set its scale, and fuse it when ``config.lora_fuse`` is on."""
    if not layers:
        return None
    from peft.tuners.tuners_utils import BaseTunerLayer

    unet = pipe.unet
    adapted = [
        m
        for m in unet.modules()
        if isinstance(m, BaseTunerLayer) and FACEID_LORA in getattr(m, "lora_A", {})
    ]
    if FACEID_LORA not in getattr(unet, "peft_config", {}) or len(adapted) != 4 * len(layers):
        raise ModelConfigError(
            f"{source}: the FaceID LoRA was not applied ({len(adapted)} of "
            f"{4 * len(layers)} projections adapted as {FACEID_LORA!r})"
        )
    rank = int(unet.peft_config[FACEID_LORA].r)
    pipe.set_adapters([FACEID_LORA], adapter_weights=[config.lora_scale])
    fused = config.lora_fuse == "on"
    if fused:
        # The scale is already the adapter's weight; fuse_lora multiplies by lora_scale again.
        pipe.fuse_lora(components=["unet"], lora_scale=1.0, adapter_names=[FACEID_LORA])
        pipe.unload_lora_weights()  # the merged base weights stay; the PEFT layers go
    return ActiveLora(FACEID_LORA, source, len(layers), rank, config.lora_scale, fused)
