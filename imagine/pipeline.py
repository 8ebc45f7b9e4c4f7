"""``PersonalizedPipeline``: an identity embedding and a prompt in, likeness images out.

SDXL with IP-Adapter FaceID (Ye et al. 2023, arXiv:2308.06721): the face
embedding is projected to 4 extra cross-attention tokens that every
cross-attention layer attends to next to the text tokens, scaled by
``adapter_scale``. With FaceID Plus v2 those tokens come from a perceiver
resampler that also attends to CLIP ViT-H/14 features of the aligned face
crops (face structure), so the call takes the crops next to the embedding.
With InstantID (Wang et al. 2024, arXiv:2401.07519) a resampler makes 16
tokens of the embedding, and IdentityNet, a ControlNet that attends to those
tokens, reads the face's five keypoints drawn where the request places the face.
Read ``generate_batch``, the core every entry point runs, top to bottom; each
numbered step is one stage with its own timing (synchronised with the device).
``__call__`` is one request through it.
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
from imagine.face_keypoints import FacePlacement, control_image
from imagine.models.loading import LoadedPipeline
from imagine.postprocess import IdentityScore, IdentityScorer, rank_by_similarity
from imagine.request import GenerationLimits, GenerationSpec, InvalidArgument, check_seed
from imagine.tokens import ClipTokenCounter
from llm_prompting import ExpandedPrompt, PromptingConfig, expand
from llm_prompting.cache import LRUCache

ProgressFn = Callable[[int, int], None]  # (denoising steps done, steps in total)


class Cancelled(ImagineError):
    code = "cancelled"


ExpandFn = Callable[[str, str | None], ExpandedPrompt]


@dataclass
class GeneratedImage:
    image: Image.Image
    seed: int
    identity_score: IdentityScore  # how alike the face in the image is to the embedding


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
    adapters: dict[str, Any] = field(default_factory=dict)  # LoadedPipeline.adapters()
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    warnings: list[str] = field(default_factory=list)

    @property
    def seeds(self) -> list[int]:
        return [g.seed for g in self.images]


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt for one face inside ``generate_batch``; its prompt is already expanded."""

    prompt: str  # the user's words
    text: ExpandedPrompt  # what the model sees, from ``PersonalizedPipeline.expand``
    embedding: np.ndarray  # [D] face embedding
    seeds: tuple[int, ...]  # one image per seed, in this order
    face_crops: tuple[Image.Image, ...] = ()  # aligned crops; FaceID Plus v2 needs them
    keypoints: np.ndarray | None = None  # [5, 2] relative to the face box; InstantID needs them
    placement: FacePlacement = field(default_factory=FacePlacement)  # InstantID: face position


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
        # Text -> token positions in the longer of the two CLIP tokenizations.
        self.count_tokens = ClipTokenCounter((self.pipe.tokenizer, self.pipe.tokenizer_2))
        self.scorer = scorer
        self.limits = limits or GenerationLimits()
        self.max_batch = max_batch
        # Text-encoder outputs of repeated prompts, keyed on the exact text sent, the negative
        # prompt and guidance on/off (SDXL: about 0.6 MB of device memory per entry).
        self.prompt_cache: LRUCache[tuple] = LRUCache(prompt_cache_size)

    def __call__(
        self,
        prompt: str,
        embedding: np.ndarray,
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
        keypoints: np.ndarray | None = None,
        placement: FacePlacement | None = None,
        text: ExpandedPrompt | None = None,
        progress: ProgressFn | None = None,
        is_cancelled: Callable[[], bool] | None = None,
    ) -> GenerationResult:
        """One request: ``generate_batch`` of it alone, then the best ``n`` of its
        ``n * best_of`` candidates by identity similarity. ``face_crops``: the identity's
        aligned face crops (``IdentityProfile.crops``); FaceID Plus v2 needs at least one,
        plain FaceID ignores them. ``keypoints``: the identity's five face keypoints
        (``IdentityProfile.keypoints``), which InstantID draws at ``placement`` (centred by
        default). ``text``: the expansion, when the caller made it."""
        spec = GenerationSpec(prompt, n, seed, steps, width, height, style, adapter_scale, best_of)
        spec = self.check_inputs(spec, embedding, face_crops, keypoints)
        placement = (placement or FacePlacement()).checked()
        clock = time.perf_counter()
        text = self.expand(spec.prompt, style) if text is None else text
        expand_s = time.perf_counter() - clock
        base = secrets.randbelow(2**31) if seed is None else seed
        request = GenerationRequest(
            spec.prompt, text, embedding, spec.seeds(base), tuple(face_crops), keypoints, placement
        )
        (result,) = self.generate_batch(
            [request],
            steps=spec.steps,
            width=spec.width,
            height=spec.height,
            guidance_scale=guidance_scale,
            adapter_scale=spec.adapter_scale,
            progress=progress,
            is_cancelled=is_cancelled,
        )
        if best_of > 1:
            keep = rank_by_similarity([g.identity_score for g in result.images], n)
            result.images = [result.images[i] for i in keep]
        result.timings = {"expand": expand_s, **result.timings}
        return result

    def generate_batch(
        self,
        requests: Sequence[GenerationRequest],
        *,
        steps: int | None = None,
        width: int | None = None,
        height: int | None = None,
        guidance_scale: float | None = None,
        adapter_scale: float | None = None,
        progress: ProgressFn | None = None,
        is_cancelled: Callable[[], bool] | None = None,
    ) -> list[GenerationResult]:
        """Denoise several requests together: other prompts and faces, one size and step
        count. The core that every entry point runs (``__call__`` with one request, the
        service's worker and ``imagine batch`` with device batches across requests).

        Each request gets its own result with its images in seed order; the results share
        the call's ``timings``. Prompts come expanded, so a refused prompt fails its own
        item before it reaches a batch. ``is_cancelled`` is asked after every denoising
        step; True raises ``Cancelled``.
        """
        import torch

        defaults = self.loaded.defaults
        steps = defaults.steps if steps is None else steps
        width = defaults.width if width is None else width
        height = defaults.height if height is None else height
        guidance_scale = defaults.guidance_scale if guidance_scale is None else guidance_scale
        adapter_scale = defaults.adapter_scale if adapter_scale is None else adapter_scale
        guided = guidance_scale > 1.0
        pipe, device = self.pipe, self.loaded.device
        timings: dict[str, float] = {}
        clock = time.perf_counter()
        on_gpu = device == "cuda"

        def lap(stage: str) -> None:
            nonlocal clock
            if on_gpu:
                torch.cuda.synchronize()  # device work is asynchronous: charge it to its stage
            now = time.perf_counter()
            timings[stage] = timings.get(stage, 0.0) + now - clock
            clock = now

        # 1. Check inputs: each request as one image of its lowest seed, then its highest
        #    seed (a request's count of seeds is its caller's to bound: n * best_of).
        for r in requests:
            lowest = min(r.seeds, default=None)
            spec = GenerationSpec(r.prompt, 1, lowest, steps, width, height, None, adapter_scale)
            self.check_inputs(spec, r.embedding, r.face_crops, r.keypoints)
            check_seed(max(r.seeds, default=None), 1)

        # 2. Encode each distinct text once: (prompt, negative, pooled, negative pooled),
        #    [1, 77, C] and [1, P] each (bounded LRU across calls); and each request's face
        #    crops (Plus v2).
        def text_key(r: GenerationRequest) -> tuple[str, str]:
            return (r.text.prompt, r.text.negative_prompt)

        encoded = {text_key(r): self.encode(r.text, guided) for r in requests}
        crops = [self.encode_face_crops(r.face_crops) for r in requests]  # [2, 1, T, H] or None
        lap("encode")

        # 3. One row per image: (request index, seed), denoised max_batch rows at a time
        #    with per-row text and face embeds. A face's unconditional half is zeros, as in
        #    IP-Adapter FaceID's classifier-free guidance.
        #    InstantID's resampler reads the embedding as a sequence: [1, 1, 1, D] there.
        rows = [(i, seed) for i, r in enumerate(requests) for seed in r.seeds]
        instantid = self.loaded.faceid_variant == "instantid"
        faces = [
            torch.as_tensor(np.asarray(r.embedding, dtype=np.float32))
            .reshape((1, 1, 1, -1) if instantid else (1, 1, -1))
            .to(device=device, dtype=pipe.unet.dtype)
            for r in requests
        ]  # [1, 1, D] each ([1, 1, 1, D] for InstantID)
        # InstantID: each request's keypoints drawn where it wants the face, W x H RGB (step
        # 1 refused an InstantID request without keypoints, so this is one per request).
        controls = [
            control_image(r.keypoints, r.placement, width, height)
            for r in requests
            if instantid and r.keypoints is not None
        ]
        pipe.set_ip_adapter_scale(adapter_scale)

        total, done = len(rows) * steps, 0
        latents = []
        for start in range(0, len(rows), self.max_batch):
            chunk = rows[start : start + self.max_batch]

            def on_step(
                _pipe: Any, _i: int, _t: Any, tensors: dict, size: int = len(chunk)
            ) -> dict:
                nonlocal done
                done += size
                if progress is not None:
                    progress(done, total)
                if is_cancelled is not None and is_cancelled():
                    raise Cancelled(f"cancelled after {done} of {total} denoising steps")
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
            # harmless for n copies of one face, a blend of people across requests. Give
            # diffusers one face pair, then hand the UNet the per-row faces, row-aligned
            # with its [uncond; cond] latents, just before each forward.
            def row_faces(_unet: Any, args: tuple, kwargs: dict, rows: Any = id_embeds) -> Any:
                cond = kwargs["added_cond_kwargs"]
                kwargs["added_cond_kwargs"] = {**cond, "image_embeds": [rows]}
                return args, kwargs

            one_pair = id_embeds[:: len(chunk)]  # [2, 1, D] guided, [1, 1, D] not
            hooks = [pipe.unet.register_forward_pre_hook(row_faces, with_kwargs=True)]
            extra: dict[str, Any] = {}
            if instantid:
                # IdentityNet attends to the face tokens, not to the text (InstantID's
                # pipeline passes it prompt_image_emb): the same projection the UNet makes,
                # [rows, 16, C], swapped in for diffusers' text embeddings before each forward.
                projection = pipe.unet.encoder_hid_proj.image_projection_layers[0]
                with torch.inference_mode():
                    tokens = projection(id_embeds.flatten(1, 2))  # [rows, 16, C]

                def face_tokens(_net: Any, args: tuple, kwargs: dict, t: Any = tokens) -> Any:
                    return args, {**kwargs, "encoder_hidden_states": t}

                hooks.append(
                    pipe.controlnet.register_forward_pre_hook(face_tokens, with_kwargs=True)
                )
                extra = {
                    "image": [controls[i] for i, _ in chunk],
                    "controlnet_conditioning_scale": self.loaded.identitynet_scale,
                }
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
                        callback_on_step_end=on_step,
                        **extra,
                    )
            finally:
                for hook in hooks:
                    hook.remove()
            latents.append(out.images)  # [B, 4, H/8, W/8]
        lap("denoise")

        # 4. Decode latents to images.
        images = [img for batch in latents for img in self.decode(batch)]
        lap("decode")

        # 5. Post-process: identity similarity of each image to its own request's face.
        made = [
            GeneratedImage(img, seed, self.score(img, requests[i].embedding))
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
            adapters=self.loaded.adapters(),
            timings=timings,
            warnings=warnings,
        )

    def check_inputs(
        self,
        spec: GenerationSpec,
        embedding: np.ndarray,
        face_crops: Sequence[Image.Image] = (),
        keypoints: np.ndarray | None = None,
    ) -> GenerationSpec:
        """``spec`` resolved with this profile's defaults and checked (``GenerationSpec.checked``),
        plus what only a loaded pipeline knows: the embedding's size, the face crops and
        keypoints."""
        spec = spec.resolved(self.loaded.defaults).checked(self.limits)
        if self.loaded.faceid_variant == "instantid" and (
            keypoints is None or np.shape(keypoints) != (5, 2)
        ):
            raise InvalidArgument(
                f"keypoints: adapter {self.loaded.adapter_id} (InstantID) needs the identity's "
                "five face keypoints from the insightface backend (IMAGINE_FACE_BACKEND="
                f"insightface), got {None if keypoints is None else np.shape(keypoints)}; "
                "enroll the photos again with that backend",
                code="missing_face_keypoints",
            )
        if self.loaded.faceid_variant == "plusv2" and not face_crops:
            raise InvalidArgument(
                f"face_crops: adapter {self.loaded.adapter_id} (FaceID Plus v2) needs the "
                "identity's aligned face crops next to its embedding, got none",
                code="missing_face_crops",
            )
        shape = np.shape(embedding)
        if shape != (self.loaded.embedding_dim,):
            raise InvalidArgument(
                f"embedding must be a {self.loaded.embedding_dim}-d face embedding for adapter "
                f"{self.loaded.adapter_id}, got shape {shape}",
                code="embedding_mismatch",
            )
        if not np.all(np.isfinite(embedding)):
            raise InvalidArgument(
                "embedding contains NaN or infinite values", code="embedding_mismatch"
            )
        return spec

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
        """Moderate and expand with llm_prompting, budgeted with this pipeline's own tokenizers
        (the one rule of ``imagine.tokens``)."""
        return expand(prompt, style, self.prompting, count_tokens=self.count_tokens)

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

    def score(self, image: Image.Image, embedding: np.ndarray) -> IdentityScore:
        if self.scorer is None:
            return IdentityScore(None, "identity scoring is off")
        return self.scorer.score(image, embedding)
