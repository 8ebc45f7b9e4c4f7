"""The one settings object, read from ``IMAGINE_*`` environment variables.

Only entry points (the CLI, the server) call ``Settings.from_env``; library code
receives the object, or the small config it needs, explicitly. Every field is
documented in the README's "Configuration" table (a test checks that).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Self

from identity.analyzer import FaceSettings
from identity.enrollment import EnrollmentConfig
from identity.ingest import IngestLimits
from identity.quality import QualityThresholds
from imagine.errors import ImagineError
from imagine.models.config import ModelConfig
from imagine.provenance.config import DEFAULT_LABEL, ProvenanceConfig
from imagine.provenance.keys import load_watermark_key, local_chain
from imagine.request import GenerationLimits
from imagine.safety import DEFAULT_THRESHOLDS, SafetyConfig, parse_thresholds
from imagine.tokens import ClipTokenCounter, token_counter
from llm_prompting.config import PromptingConfig, ServerConfig

PREFIX = "IMAGINE_"


class SettingsError(ImagineError):
    code = "invalid_setting"


@dataclass(frozen=True)
class Settings:
    home: Path = Path(".imagine")  # data folder: database, images, model cache
    face_backend: str = "dlib"  # "dlib" | "insightface"
    insightface_root: Path | None = None  # folder with models/<pack>/*.onnx
    insightface_pack: str = "buffalo_l"
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    max_upload_bytes: int = IngestLimits.max_bytes
    max_image_pixels: int = IngestLimits.max_pixels
    min_photo_side: int = IngestLimits.min_side
    max_enroll_photos: int = 5
    min_face_px: int = QualityThresholds.min_face_px
    min_sharpness: float = QualityThresholds.min_sharpness
    max_yaw: float = QualityThresholds.max_yaw
    profile: str = "smoke"  # "smoke" (tiny random weights, images are noise) | "sdxl"
    model_dir: Path | None = None  # sdxl: diffusers folder or single-file checkpoint
    sdxl_config_dir: Path | None = None  # sdxl single file: local diffusers config folder
    faceid_adapter: Path | None = None  # sdxl: ip-adapter-faceid_sdxl.bin (or the plusv2 file)
    faceid_variant: str = "faceid"  # "faceid" | "plusv2" (adds face crops) | "instantid"
    clip_image_encoder: Path | None = None  # sdxl plusv2: CLIP ViT-H/14 image-encoder folder
    faceid_shortcut_scale: float = 1.0  # plusv2: weight of the face-structure tokens (s_scale)
    instantid_controlnet: Path | None = None  # sdxl instantid: InstantID's ControlNetModel/
    instantid_controlnet_scale: float = 0.8  # instantid: IdentityNet's conditioning scale
    faceid_lora_scale: float = 1.0  # the FaceID LoRA inside the adapter file; 0 turns it off
    faceid_lora_fuse: str = "on"  # "on": merged into the UNet weights at load | "off"
    dtype: str = "auto"  # "auto" | "float32" | "bfloat16" | "float16"
    attention: str = "sdpa"  # "sdpa" | "xformers"
    scheduler: str = "euler"  # "euler" | "euler_a" | "dpmpp_2m_karras" | "ddim"
    vae_tiling: str = "auto"  # "auto" | "on" | "off"
    channels_last: str = "auto"  # "auto" (on for CUDA) | "on" | "off"
    fuse_qkv: str = "auto"  # "auto" (on for CUDA) | "on" | "off"
    compile: str = "off"  # "off" | "unet" | "blocks"
    compile_mode: str = "default"  # torch.compile mode; "reduce-overhead" adds CUDA graphs
    max_images: int = GenerationLimits.max_images
    max_steps: int = GenerationLimits.max_steps
    max_side: int = GenerationLimits.max_side
    max_batch: int = 4  # images denoised together on the device
    prompt_cache_size: int = 64  # text-encoder outputs kept for repeated prompts; 0 is off
    expander: str = "template"  # "template" | "openai" | "transformers"
    prompt_style: str = PromptingConfig.style
    prompt_subject: str = PromptingConfig.subject
    openai_base_url: str = ServerConfig.base_url
    openai_model: str = ServerConfig.model
    openai_api_key: str = field(default="", repr=False)
    openai_timeout: float = ServerConfig.timeout
    openai_retries: int = ServerConfig.retries
    openai_json_mode: str = ServerConfig.json_mode  # "json_schema" | "json_object" | "none"
    openai_stream: bool = ServerConfig.stream  # answers as server-sent events
    llama_model_dir: Path | None = None  # Llama 3.1 Instruct folder for the transformers expander
    llm_max_new_tokens: int = PromptingConfig.max_new_tokens
    moderator: str = "rules"  # "rules" | "llama_guard"
    moderation_model: bool = PromptingConfig.moderation_model  # the rules' learned layer
    guard_base_url: str = ""  # Llama Guard server; empty: the openai server
    guard_model: str = PromptingConfig.guard_model
    guard_policy: str = PromptingConfig.guard_policy  # "imagine" | "builtin"
    max_prompt_chars: int = PromptingConfig.max_prompt_chars
    expansion_cache_size: int = PromptingConfig.cache_size
    # Provenance (README "Provenance and output safety")
    # PEM chain, signing certificate first; unset: the local chain made on first start under
    # IMAGINE_HOME/c2pa (valid, untrusted by verifiers)
    c2pa_cert: Path | None = None
    c2pa_key: Path | None = None  # PEM private key of that certificate
    c2pa_alg: str = "es256"
    c2pa_tsa_url: str | None = None  # RFC 3161 time-stamp authority
    c2pa_trust_anchors: Path | None = None  # extra PEM roots trusted when verifying
    watermark_key: str | None = field(default=None, repr=False)  # base64, 32 bytes; else file
    # The watermark key's file (base64); unset: IMAGINE_HOME/watermark.key, made on first start
    watermark_key_file: Path | None = None
    visible_label: bool = False  # draw the label on every image `imagine generate` writes
    label_text: str = DEFAULT_LABEL
    safety_checker: str = "nudenet"  # "nudenet" | "none" (no output check: explicit only)
    safety_thresholds: tuple[str, ...] = ()  # CLASS=score overrides, e.g. BUTTOCKS_EXPOSED=0.5
    production: bool = False  # refuse to run without an output checker unless it is "none"
    # `imagine batch --server` (README "imagine batch": service mode)
    batch_server: str | None = None  # the service a batch is submitted to; unset: local mode
    # The Ray cluster (host:port of its head) of `imagine batch --ray` and `imagine serve
    # --executor ray`; unset: start a local Ray
    ray_address: str | None = None
    # A non-AWS S3 server (MinIO, ...) for s3:// URLs: the service's image storage and
    # `imagine batch --out s3://...`; unset: AWS
    s3_endpoint_url: str | None = None
    batch_api_key: str = field(default="", repr=False)  # that service's API key

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> Self:
        """Defaults, then ``IMAGINE_<FIELD>`` variables, then explicit ``overrides``."""
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _parse(f.name, raw, hints[f.name])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)

    @property
    def model_cache(self) -> Path:
        return self.home / "models"

    def face(self) -> FaceSettings:
        return FaceSettings(
            backend=self.face_backend,
            insightface_root=self.insightface_root,
            insightface_pack=self.insightface_pack,
            device=self.device,
        )

    def enrollment(self) -> EnrollmentConfig:
        return EnrollmentConfig(
            limits=IngestLimits(
                max_bytes=self.max_upload_bytes,
                max_pixels=self.max_image_pixels,
                min_side=self.min_photo_side,
            ),
            thresholds=dataclasses.replace(
                QualityThresholds(),
                min_face_px=self.min_face_px,
                min_sharpness=self.min_sharpness,
                max_yaw=self.max_yaw,
            ),
            max_photos=self.max_enroll_photos,
        )

    def models(self, embedding_dim: int) -> ModelConfig:
        return ModelConfig(
            profile=self.profile,
            cache=self.model_cache,
            embedding_dim=embedding_dim,
            model_dir=self.model_dir,
            single_file_config=self.sdxl_config_dir,
            faceid_adapter=self.faceid_adapter,
            faceid_variant=self.faceid_variant,
            image_encoder=self.clip_image_encoder,
            shortcut_scale=self.faceid_shortcut_scale,
            controlnet=self.instantid_controlnet,
            identitynet_scale=self.instantid_controlnet_scale,
            lora_scale=self.faceid_lora_scale,
            lora_fuse=self.faceid_lora_fuse,
            device=self.device,
            dtype=self.dtype,
            attention=self.attention,
            scheduler=self.scheduler,
            vae_tiling=self.vae_tiling,
            channels_last=self.channels_last,
            fuse_qkv=self.fuse_qkv,
            compile=self.compile,
            compile_mode=self.compile_mode,
        )

    def token_counter(self) -> ClipTokenCounter:
        """How every entry point counts a prompt's tokens: the profile's CLIP tokenizers,
        loaded alone, once per process (``imagine.tokens``)."""
        return token_counter(self.profile, self.model_dir, self.sdxl_config_dir)

    def generation_limits(self) -> GenerationLimits:
        return dataclasses.replace(
            GenerationLimits(),
            max_images=self.max_images,
            max_steps=self.max_steps,
            max_side=self.max_side,
            max_prompt_chars=self.max_prompt_chars,
        )

    def prompting(self) -> PromptingConfig:
        server = ServerConfig(
            base_url=self.openai_base_url,
            model=self.openai_model,
            api_key=self.openai_api_key,
            timeout=self.openai_timeout,
            retries=self.openai_retries,
            json_mode=self.openai_json_mode,
            stream=self.openai_stream,
        )
        guard = (
            dataclasses.replace(server, base_url=self.guard_base_url)
            if self.guard_base_url
            else None
        )
        return PromptingConfig(
            expander=self.expander,
            style=self.prompt_style,
            subject=self.prompt_subject,
            server=server,
            model_dir=self.llama_model_dir,
            device=self.device,
            max_new_tokens=self.llm_max_new_tokens,
            moderator=self.moderator,
            moderation_model=self.moderation_model,
            guard=guard,
            guard_model=self.guard_model,
            guard_policy=self.guard_policy,
            max_prompt_chars=self.max_prompt_chars,
            cache_size=self.expansion_cache_size,
        )

    def provenance(self) -> ProvenanceConfig:
        """The marking config. Makes the watermark key and the local C2PA chain under
        ``home`` when they are not configured and do not exist yet (the first start)."""
        cert, key, local = self.c2pa_cert, self.c2pa_key, False
        if cert is None and key is None:
            chain = local_chain(self.home)
            cert, key, local = chain.chain, chain.key, True
        elif cert is None or key is None:
            raise SettingsError(
                f"{PREFIX}C2PA_CERT and {PREFIX}C2PA_KEY go together: set both, or neither "
                "for the local chain"
            )
        return ProvenanceConfig(
            watermark_key=load_watermark_key(
                self.watermark_key, self.watermark_key_file, self.home
            ),
            c2pa_cert=cert,
            c2pa_key=key,
            c2pa_local=local,
            c2pa_alg=self.c2pa_alg,
            c2pa_tsa_url=self.c2pa_tsa_url,
            c2pa_trust_anchors=self.c2pa_trust_anchors,
            label=self.visible_label,
            label_text=self.label_text,
            limits=self.enrollment().limits,
        )

    def safety(self) -> SafetyConfig:
        try:
            overrides = parse_thresholds(self.safety_thresholds)
        except ValueError as exc:
            raise SettingsError(f"{PREFIX}SAFETY_THRESHOLDS: {exc}") from None
        return SafetyConfig(
            checker=self.safety_checker,
            thresholds=tuple(sorted({**DEFAULT_THRESHOLDS, **overrides}.items())),
        )


def _parse(name: str, raw: str, hint: Any) -> Any:
    """Convert an environment string to the field's type, or say which variable is wrong."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    try:
        if hint is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if hint in (int, float, str, Path):
            return hint(raw)
        if typing.get_origin(hint) is tuple:
            return tuple(part.strip() for part in raw.split(",") if part.strip())
    except ValueError as exc:
        raise SettingsError(f"{PREFIX}{name.upper()}={raw!r}: {exc}") from None
    raise TypeError(f"no parser for setting {name} of type {hint}")
