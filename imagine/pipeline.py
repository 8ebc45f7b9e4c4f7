"""``PersonalizedPipeline``: an identity embedding and a prompt in, likeness images out.

SDXL with IP-Adapter FaceID (Ye et al. 2023, arXiv:2308.06721): the face
embedding is projected to 4 extra cross-attention tokens that every
cross-attention layer attends to next to the text tokens, scaled by
``adapter_scale``. With FaceID Plus v2 those tokens come from a perceiver
resampler that also attends to CLIP ViT-H/14 features of the aligned face
crops (face structure), so the call takes the crops next to the embedding.
Read ``__call__`` top to bottom; each numbered step is one stage with its own
timing.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from imagine.errors import ImagineError
from imagine.models import LoadedPipeline
from imagine.postprocess import IdentityScore, IdentityScorer, rank_by_similarity
from llm_prompting import ExpandedPrompt, PromptingConfig, check_prompt, expand
from llm_prompting.cache import LRUCache

ProgressFn = Callable[[int, int], None]  # (denoising steps done, steps in total)


class InvalidArgument(ImagineError, ValueError):
    """A generation argument out of bounds; the message names it and repeats the value."""

    code = "invalid_argument"


class Cancelled(ImagineError):
    code = "cancelled"


@dataclass(frozen=True)
class GenerationLimits:
    max_images: int = 8  # n per request
    max_steps: int = 100
    min_side: int = 64
    max_side: int = 2048
    side_multiple: int = 8  # the VAE downsamples by 8
    max_best_of: int = 4
    max_prompt_chars: int = PromptingConfig.max_prompt_chars  # after check_prompt's NFC


ExpandFn = Callable[[str, str | None], ExpandedPrompt]


@dataclass
class GeneratedImage:
    image: Image.Image
    seed: int
    identity: IdentityScore


@dataclass
class GenerationResult:
    images: list[GeneratedImage]
    prompt: str  # the user's words
    text: ExpandedPrompt  # what the model saw
    steps: int
    width: int
    height: int
    guidance_scale: float
    adapter_scale: float
    scheduler: str
    profile: str
    model_id: str
    adapter_id: str
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    warnings: list[str] = field(default_factory=list)

    @property
    def seeds(self) -> list[int]:
        return [g.seed for g in self.images]


def check_request(
    lim: GenerationLimits,
    prompt: str,
    n: int,
    seed: int | None,
    steps: int,
    width: int,
    height: int,
    best_of: int = 1,
    adapter_scale: float = 0.8,
) -> str:
    """Validate a generation request and return its prompt as ``check_prompt`` normalises it
    (store and use that one). ``InvalidArgument`` names the argument and the bad value; a
    prompt can also fail with ``check_prompt``'s errors (``prompt_too_long``, ...).

    Shared by the pipeline, the service, which checks before queueing, and batch manifests.
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidArgument("prompt must be a non-empty string", code="invalid_prompt")
    prompt = check_prompt(prompt, lim.max_prompt_chars)
    if not 1 <= n <= lim.max_images:
        raise InvalidArgument(f"n must be 1-{lim.max_images}, got {n!r}", code="invalid_n")
    if not 1 <= steps <= lim.max_steps:
        raise InvalidArgument(
            f"steps must be 1-{lim.max_steps}, got {steps!r}", code="invalid_steps"
        )
    for name, side in (("width", width), ("height", height)):
        if not lim.min_side <= side <= lim.max_side or side % lim.side_multiple:
            raise InvalidArgument(
                f"{name} must be a multiple of {lim.side_multiple} in "
                f"{lim.min_side}-{lim.max_side}, got {side!r}",
                code="invalid_size",
            )
    if not 1 <= best_of <= lim.max_best_of:
        raise InvalidArgument(
            f"best_of must be 1-{lim.max_best_of}, got {best_of!r}", code="invalid_best_of"
        )
    check_seed(seed, n * best_of)  # n and best_of are known good here
    if not 0.0 <= adapter_scale <= 2.0:
        raise InvalidArgument(
            f"adapter_scale must be 0-2, got {adapter_scale!r}", code="invalid_adapter_scale"
        )
    return prompt


class InvalidSize(ImagineError):
    code = "invalid_size"


def parse_size(text: str, name: str = "--size") -> tuple[int, int]:
    """``"WxH"`` -> (W, H); ``check_request`` checks the bounds. ``name`` is what the user typed.

    Shared by ``imagine generate``/``imagine batch`` (``--size``) and batch manifests (``size``).
    """
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise InvalidSize(f"{name} must look like 1024x1024, got {text!r}")
    return int(parts[0]), int(parts[1])


SEED_LIMIT = 2**32  # seeds are uint32: every entry point accepts exactly these


def check_seed(seed: int | None, count: int) -> None:
    """Image k of a request uses ``seed + k``: every one of the ``count`` seeds must be a
    valid seed, or the last images could not be asked for again by their own seed."""
    if seed is None:
        return
    highest = SEED_LIMIT - count
    if not 0 <= seed <= highest:
        raise InvalidArgument(
            f"seed must be 0-{highest}: image k uses seed + k, and the last of {count} "
            f"must stay below 2**32; got {seed!r}",
            code="invalid_seed",
        )


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt for one face inside ``generate_batch``; its prompt is already expanded."""

    prompt: str  # the user's words
    text: ExpandedPrompt  # what the model sees, from ``PersonalizedPipeline.expand``
    identity: np.ndarray  # [D] face embedding
    seeds: tuple[int, ...]  # one image per seed, in this order
    face_crops: tuple[Image.Image, ...] = ()  # aligned crops; FaceID Plus v2 needs them


class PersonalizedPipeline:
    def __init__(
        self,
        loaded: LoadedPipeline,
        *,
        prompting: PromptingConfig | None = None,
        expand: ExpandFn | None = None,
        scorer: IdentityScorer | None = None,
        limits: GenerationLimits | None = None,
        max_batch: int = 4,
        prompt_cache_size: int = 64,
    ):
        self.loaded = loaded
        self.pipe = loaded.pipe
        self.prompting = prompting or PromptingConfig()
        self.expand = expand or self.expand_prompt
        self.scorer = scorer
        self.limits = limits or GenerationLimits()
        self.max_batch = max_batch
        # Text-encoder outputs of repeated prompts, keyed on the exact text sent, the negative
        # prompt and guidance on/off (SDXL: about 0.6 MB of device memory per entry).
        self.prompt_cache: LRUCache[tuple] = LRUCache(prompt_cache_size)

    def __call__(
        self,
        prompt: str,
        identity: np.ndarray,
        *,
        n: int = 1,
        seed: int | None = None,
        steps: int | None = None,
        width: int | None = None,
        height: int | None = None,
        style: str | None = None,
        guidance_scale: float | None = None,
        adapter_scale: float | None = None,
        best_of: int = 1,
        face_crops: Sequence[Image.Image] = (),
        text: ExpandedPrompt | None = None,
        progress: ProgressFn | None = None,
        is_cancelled: Callable[[], bool] | None = None,
    ) -> GenerationResult:
        """``face_crops``: the identity's aligned face crops (``IdentityProfile.crops``);
        FaceID Plus v2 needs at least one, plain FaceID ignores them."""
        import torch

        defaults = self.loaded.defaults
        steps = defaults.steps if steps is None else steps
        width = defaults.width if width is None else width
        height = defaults.height if height is None else height
        guidance_scale = defaults.guidance_scale if guidance_scale is None else guidance_scale
        adapter_scale = defaults.adapter_scale if adapter_scale is None else adapter_scale
        timings: dict[str, float] = {}
        clock = time.perf_counter()
        on_gpu = self.loaded.device == "cuda"

        def lap(stage: str) -> None:
            nonlocal clock
            if on_gpu:
                torch.cuda.synchronize()  # device work is asynchronous: charge it to its stage
            now = time.perf_counter()
            timings[stage] = timings.get(stage, 0.0) + now - clock
            clock = now

        # 1. Check inputs; the prompt comes back normalised (NFC, one line).
        prompt = self.check_inputs(
            prompt, identity, n, seed, steps, width, height, best_of, adapter_scale, face_crops
        )
        base_seed = secrets.randbelow(2**31) if seed is None else seed
        seeds = [base_seed + k for k in range(n * best_of)]

        # 2. Expand the prompt (unless the caller already did, as the service does at submission).
        text = self.expand(prompt, style) if text is None else text
        lap("expand")

        # 3. Encode the prompt once; every batch reuses it, and so does a later
        #    request with the same text (bounded LRU).
        pipe, device = self.pipe, self.loaded.device
        guided = guidance_scale > 1.0
        embeds = self.encode(text, guided)
        lap("encode")

        # 4. Identity embeds: the face, plus zeros as the unconditional half of
        #    classifier-free guidance (as in IP-Adapter FaceID). One pair per call:
        #    diffusers repeats it for each image of a batch, as it does ``prompt``'s.
        #    Plus v2 also encodes the face crops with CLIP.
        face = torch.as_tensor(np.asarray(identity, dtype=np.float32)).reshape(1, 1, -1)
        face = face.to(device=device, dtype=pipe.unet.dtype)  # [1, 1, D]
        id_embeds = torch.cat([torch.zeros_like(face), face]) if guided else face  # [2, 1, D]
        crops = self.encode_face_crops(face_crops)  # [2, 1, T, H] or None
        pipe.set_ip_adapter_scale(adapter_scale)
        lap("encode")

        # 5. Denoise in batches of up to max_batch images, one seeded generator per image.
        total = len(seeds) * steps
        done = 0
        latents = []
        for start in range(0, len(seeds), self.max_batch):
            batch = seeds[start : start + self.max_batch]
            size = len(batch)

            def on_step(_pipe: Any, _i: int, _t: Any, tensors: dict, size: int = size) -> dict:
                nonlocal done
                done += size
                if progress is not None:
                    progress(done, total)
                if is_cancelled is not None and is_cancelled():
                    raise Cancelled(f"cancelled after {done} of {total} denoising steps")
                return tensors

            with torch.inference_mode(), self.face_structure([crops] * size, guided):
                out = pipe(
                    prompt_embeds=embeds[0].expand(size, -1, -1),
                    negative_prompt_embeds=embeds[1].expand(size, -1, -1) if guided else None,
                    pooled_prompt_embeds=embeds[2].expand(size, -1),
                    negative_pooled_prompt_embeds=embeds[3].expand(size, -1) if guided else None,
                    ip_adapter_image_embeds=[id_embeds],
                    num_inference_steps=steps,
                    width=width,
                    height=height,
                    guidance_scale=guidance_scale,
                    generator=[torch.Generator("cpu").manual_seed(s) for s in batch],
                    output_type="latent",
                    callback_on_step_end=on_step,
                )
            latents.append(out.images)  # [B, 4, H/8, W/8]
        lap("denoise")

        # 6. Decode latents to images.
        images = [img for batch in latents for img in self.decode(batch)]
        lap("decode")

        # 7. Post-process: identity similarity, then keep the best n of n * best_of.
        scores = [self.score(img, identity) for img in images]
        keep = rank_by_similarity(scores, n) if best_of > 1 else list(range(n))
        lap("postprocess")

        kept = [GeneratedImage(images[i], seeds[i], scores[i]) for i in keep]
        return self._result(
            prompt, text, kept, timings, steps, width, height, guidance_scale, adapter_scale
        )

    def generate_batch(
        self,
        requests: Sequence[GenerationRequest],
        *,
        steps: int | None = None,
        width: int | None = None,
        height: int | None = None,
        progress: ProgressFn | None = None,
        is_cancelled: Callable[[], bool] | None = None,
    ) -> list[GenerationResult]:
        """Denoise several requests together: other prompts and faces, one size and step count.

        ``imagine batch`` fills device batches across manifest items with this.
        Each request gets its own result with its images in seed order, as
        ``__call__`` would give it (n = len(seeds), best_of = 1); the results
        share the call's ``timings``. Prompts come expanded, so a refused prompt
        fails its own item before it reaches a batch.
        """
        import torch

        defaults = self.loaded.defaults
        steps = defaults.steps if steps is None else steps
        width = defaults.width if width is None else width
        height = defaults.height if height is None else height
        guidance_scale, adapter_scale = defaults.guidance_scale, defaults.adapter_scale
        guided = guidance_scale > 1.0
        pipe, device = self.pipe, self.loaded.device
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[stage] = now - clock
            clock = now

        # 1. Check inputs.
        for r in requests:
            self.check_inputs(
                r.prompt,
                r.identity,
                len(r.seeds),
                min(r.seeds, default=None),
                steps,
                width,
                height,
                1,
                adapter_scale,
                r.face_crops,
            )

        # 2. Encode each distinct text once: (prompt, negative, pooled, negative pooled),
        #    [1, 77, C] and [1, P] each; and each request's face crops (Plus v2).
        def text_key(r: GenerationRequest) -> tuple[str, str]:
            return (r.text.prompt, r.text.negative_prompt)

        encoded = {text_key(r): self.encode(r.text, guided) for r in requests}
        crops = [self.encode_face_crops(r.face_crops) for r in requests]  # [2, 1, T, H] or None
        lap("encode")

        # 3. One row per image: (request index, seed), denoised max_batch rows at a time
        #    with per-row text and face embeds.
        rows = [(i, seed) for i, r in enumerate(requests) for seed in r.seeds]
        faces = [
            torch.as_tensor(np.asarray(r.identity, dtype=np.float32))
            .reshape(1, 1, -1)
            .to(device=device, dtype=pipe.unet.dtype)
            for r in requests
        ]  # [1, 1, D] each
        pipe.set_ip_adapter_scale(adapter_scale)

        total, done = len(rows) * steps, 0
        latents = []
        for start in range(0, len(rows), self.max_batch):
            chunk = rows[start : start + self.max_batch]

            def stop_if_cancelled(
                _pipe: Any, _i: int, _t: Any, tensors: dict, size: int = len(chunk)
            ) -> dict:
                nonlocal done
                done += size
                if progress is not None:
                    progress(done, total)
                if is_cancelled is not None and is_cancelled():
                    raise Cancelled("cancelled between denoising steps")
                return tensors

            parts = [encoded[text_key(requests[i])] for i, _ in chunk]
            # [B, 77, C], [B, 77, C], [B, P], [B, P]; the negatives are None without guidance.
            prompt_embeds, negative_embeds, pooled_embeds, negative_pooled_embeds = (
                None if parts[0][j] is None else torch.cat([p[j] for p in parts]) for j in range(4)
            )
            id_embeds = torch.cat([faces[i] for i, _ in chunk])  # [B, 1, D]
            if guided:
                id_embeds = torch.cat([torch.zeros_like(id_embeds), id_embeds])  # [2B, 1, D]

            # diffusers repeats ``ip_adapter_image_embeds`` for every image of the batch
            # (prepare_ip_adapter_image_embeds), so each image would attend to all B faces:
            # harmless for n copies of one face (__call__), a blend of people here. Give
            # diffusers one face pair, then hand the UNet the per-row faces, row-aligned
            # with its [uncond; cond] latents, just before each forward.
            def row_faces(_unet: Any, args: tuple, kwargs: dict, rows: Any = id_embeds) -> Any:
                cond = kwargs["added_cond_kwargs"]
                kwargs["added_cond_kwargs"] = {**cond, "image_embeds": [rows]}
                return args, kwargs

            one_pair = id_embeds[:: len(chunk)]  # [2, 1, D] guided, [1, 1, D] not
            hook = pipe.unet.register_forward_pre_hook(row_faces, with_kwargs=True)
            try:
                with (
                    torch.inference_mode(),
                    self.face_structure([crops[i] for i, _ in chunk], guided),
                ):
                    out = pipe(
                        prompt_embeds=prompt_embeds,
                        negative_prompt_embeds=negative_embeds,
                        pooled_prompt_embeds=pooled_embeds,
                        negative_pooled_prompt_embeds=negative_pooled_embeds,
                        ip_adapter_image_embeds=[one_pair],
                        num_inference_steps=steps,
                        width=width,
                        height=height,
                        guidance_scale=guidance_scale,
                        generator=[torch.Generator("cpu").manual_seed(s) for _, s in chunk],
                        output_type="latent",
                        callback_on_step_end=stop_if_cancelled,
                    )
            finally:
                hook.remove()
            latents.append(out.images)  # [B, 4, H/8, W/8]
        lap("denoise")

        # 4. Decode latents to images.
        images = [img for batch in latents for img in self.decode(batch)]
        lap("decode")

        # 5. Post-process: identity similarity of each image to its own request's face.
        made = [
            GeneratedImage(img, seed, self.score(img, requests[i].identity))
            for img, (i, seed) in zip(images, rows, strict=True)
        ]
        lap("postprocess")

        ends = itertools.accumulate(len(r.seeds) for r in requests)
        shared = (steps, width, height, guidance_scale, adapter_scale)
        return [
            self._result(r.prompt, r.text, made[end - len(r.seeds) : end], dict(timings), *shared)
            for r, end in zip(requests, ends, strict=True)
        ]

    def _result(
        self,
        prompt: str,
        text: ExpandedPrompt,
        images: list[GeneratedImage],
        timings: dict[str, float],
        steps: int,
        width: int,
        height: int,
        guidance_scale: float,
        adapter_scale: float,
    ) -> GenerationResult:
        warnings = list(text.warnings)
        if self.loaded.defaults.is_noise:
            warnings.append("smoke profile: tiny random-weight models; these images are noise")
        return GenerationResult(
            images=images,
            prompt=prompt,
            text=text,
            steps=steps,
            width=width,
            height=height,
            guidance_scale=guidance_scale,
            adapter_scale=adapter_scale,
            scheduler=self.loaded.scheduler,
            profile=self.loaded.profile,
            model_id=self.loaded.model_id,
            adapter_id=self.loaded.adapter_id,
            timings=timings,
            warnings=warnings,
        )

    def check_inputs(
        self,
        prompt: str,
        identity: np.ndarray,
        n: int,
        seed: int | None,
        steps: int,
        width: int,
        height: int,
        best_of: int,
        adapter_scale: float,
        face_crops: Sequence[Image.Image] = (),
    ) -> str:
        """``check_request`` plus what only a loaded pipeline knows; the normalised prompt."""
        prompt = check_request(
            self.limits, prompt, n, seed, steps, width, height, best_of, adapter_scale
        )
        if self.loaded.faceid_variant == "plusv2" and not face_crops:
            raise InvalidArgument(
                f"face_crops: adapter {self.loaded.adapter_id} (FaceID Plus v2) needs the "
                "identity's aligned face crops next to its embedding, got none",
                code="missing_face_crops",
            )
        shape = np.shape(identity)
        if shape != (self.loaded.embedding_dim,):
            raise InvalidArgument(
                f"identity must be a {self.loaded.embedding_dim}-d embedding for adapter "
                f"{self.loaded.adapter_id}, got shape {shape}",
                code="embedding_mismatch",
            )
        if not np.all(np.isfinite(identity)):
            raise InvalidArgument(
                "identity contains NaN or infinite values", code="embedding_mismatch"
            )
        return prompt

    def encode(self, text: ExpandedPrompt, guided: bool) -> tuple[Any, ...]:
        """Text-encoder outputs: prompt [1, 77, C], negative [1, 77, C], pooled [1, P],
        negative pooled [1, P] (the negatives None without guidance). Repeated prompts
        come from a bounded LRU cache keyed on the exact text sent."""
        import torch

        key = (text.prompt, text.negative_prompt, guided)
        embeds = self.prompt_cache.get(key)
        if embeds is None:
            with torch.inference_mode():
                embeds = self.pipe.encode_prompt(
                    prompt=text.prompt,
                    device=self.loaded.device,
                    num_images_per_prompt=1,
                    do_classifier_free_guidance=guided,
                    negative_prompt=text.negative_prompt or None,
                )
            self.prompt_cache.put(key, embeds)
        return embeds

    def encode_face_crops(self, crops: Sequence[Image.Image]) -> Any:
        """FaceID Plus v2's face-structure input: the CLIP image encoder's penultimate
        hidden states of the aligned crops, averaged over the crops (as enrollment
        averages their embeddings), with those of a blank image (all zeros after
        normalisation) as the unconditional half, as IP-Adapter's demo does.

        [2, 1, T, H]: uncond, cond (ViT-H/14: T = 257 tokens, H = 1280). None for plain FaceID.
        """
        if self.loaded.faceid_variant != "plusv2":
            return None
        import torch

        with torch.inference_mode():
            (embeds,) = self.pipe.prepare_ip_adapter_image_embeds(
                [list(crops)], None, self.loaded.device, 1, True
            )  # [2, K, T, H] for K crops
        return embeds.mean(dim=1, keepdim=True)

    @contextmanager
    def face_structure(self, rows: Sequence[Any], guided: bool) -> Iterator[None]:
        """Give a Plus v2 projection its face-crop features for one denoising call.

        diffusers reads them from the projection layer (``clip_embeds``), not from
        the call, so they are set here row-aligned with the UNet's batch,
        [uncond rows; cond rows] when guided, and cleared afterwards. ``rows``
        holds one ``encode_face_crops`` result per image. No-op for plain FaceID.
        """
        if self.loaded.faceid_variant != "plusv2":
            yield
            return
        import torch

        projection = self.pipe.unet.encoder_hid_proj.image_projection_layers[0]
        cond = torch.cat([r[1:] for r in rows])  # [B, 1, T, H]
        uncond = torch.cat([r[:1] for r in rows])
        projection.clip_embeds = torch.cat([uncond, cond]) if guided else cond
        try:
            yield
        finally:
            projection.clip_embeds = None

    def expand_prompt(self, prompt: str, style: str | None) -> ExpandedPrompt:
        """Moderate and expand with llm_prompting, budgeted with this pipeline's own tokenizers."""
        return expand(prompt, style, self.prompting, count_tokens=self.count_tokens)

    def count_tokens(self, text: str) -> int:
        """Token positions ``text`` takes in the longer of the two CLIP tokenizations."""
        return max(
            len(tok(text, truncation=False).input_ids)
            for tok in (self.pipe.tokenizer, self.pipe.tokenizer_2)
        )

    def decode(self, latents: Any) -> list[Image.Image]:
        """[B, 4, h, w] latents -> B RGB images, through the VAE in its own dtype."""
        import torch

        vae = self.pipe.vae
        with torch.inference_mode():
            latents = latents.to(vae.dtype) / vae.config.scaling_factor
            pixels = vae.decode(latents, return_dict=False)[0]  # [B, 3, H, W] in [-1, 1]
            # To 8 bits on the device: a quarter of the bytes to copy, no float work on
            # the CPU. diffusers' postprocess arithmetic, in fp32, rounding half to even.
            rgb = ((pixels.float() / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
            arrays = rgb.permute(0, 2, 3, 1).contiguous().cpu().numpy()  # [B, H, W, 3]
        return [Image.fromarray(a) for a in arrays]

    def score(self, image: Image.Image, identity: np.ndarray) -> IdentityScore:
        if self.scorer is None:
            return IdentityScore(None, "identity scoring is off")
        return self.scorer.score(image, identity)
