"""``imagine generate``: photos and a prompt in, PNGs with JSON sidecars out."""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path

from imagine.cli.output import emit_json, fail
from imagine.cli.progress import ProgressBar
from imagine.enrollment import enroll_files
from imagine.face_keypoints import FacePlacement
from imagine.models.config import PROFILES, SCHEDULERS
from imagine.outputs import SMOKE_NOTICE, finalize, write_image
from imagine.request import parse_size
from imagine.settings import Settings
from llm_prompting import check_prompt

NAME = "generate"
HELP = "Generate likeness images from your photos and a prompt."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--photo",
        action="append",
        required=True,
        type=Path,
        metavar="PHOTO",
        help="a photo of you (repeat for up to 5)",
    )
    parser.add_argument("--prompt", required=True, help='e.g. "me as an astronaut on Mars"')
    parser.add_argument("--n", type=int, default=1, help="number of images (default 1)")
    parser.add_argument("--seed", type=int, help="seed of the first image; image k uses seed+k")
    parser.add_argument("--steps", type=int, help="denoising steps (profile default)")
    parser.add_argument("--size", help="WxH, multiples of 8 (profile default)")
    parser.add_argument("--style", help="style preset for the prompt expander")
    add_model_arguments(parser)
    parser.add_argument("--adapter-scale", type=float, help="face adapter strength, 0-2")
    parser.add_argument(
        "--face-at",
        type=FacePlacement.parse,
        metavar="X,Y[,SIZE]",
        help="InstantID: where the face goes, as fractions of the image (default 0.5,0.5,0.5: "
        "centred, its box half the shorter side)",
    )
    parser.add_argument("--out", type=Path, default=Path("imagine-output"), help="output folder")
    parser.add_argument("--json", action="store_true", help="print JSON on stdout")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The model flags ``generate`` and ``batch`` share; they override ``IMAGINE_*``."""
    parser.add_argument("--profile", choices=PROFILES, help="model profile (default: smoke)")
    parser.add_argument("--model-dir", type=Path, help="sdxl: diffusers folder or checkpoint")
    parser.add_argument("--scheduler", choices=SCHEDULERS, help="sampler (default: euler)")


MODEL_FLAGS = ("profile", "model_dir", "scheduler")


def with_model_arguments(settings: Settings, args: argparse.Namespace) -> Settings:
    flags = {name: getattr(args, name) for name in MODEL_FLAGS}
    return settings.replace(**{k: v for k, v in flags.items() if v is not None})


def run(args: argparse.Namespace, settings: Settings) -> int:
    from imagine.runtime import load_runtime

    settings = with_model_arguments(settings, args)
    width, height = parse_size(args.size) if args.size else (None, None)
    prompt = check_prompt(args.prompt, settings.max_prompt_chars)  # before photos and models
    profile = enroll_files(args.photo, settings)  # bad photos fail before models load

    runtime = load_runtime(settings)
    bar = ProgressBar("generating", "steps")
    result = runtime.pipeline(
        prompt,
        profile.embedding,
        n=args.n,
        seed=args.seed,
        steps=args.steps,
        width=width,
        height=height,
        style=args.style,
        adapter_scale=args.adapter_scale,
        face_crops=profile.crops,  # FaceID Plus v2 reads them; kept in memory only
        keypoints=profile.keypoints,  # InstantID draws them (at --face-at)
        placement=args.face_at,
        progress=bar.update,
    )

    generation_id = secrets.token_hex(6)
    written, withheld = [], []
    for done in finalize(
        result,
        generation_id,
        checker=runtime.checker,
        provenance=runtime.provenance,
        face_backend=profile.backend,
        notes=runtime.notes,
    ):
        if done.data is None:
            withheld.append({"index": done.index, "seed": done.item.seed, "code": done.withheld})
            print(
                f"warning: image {done.index} (seed {done.item.seed}) was withheld: it did not "
                "pass the output safety check",
                file=sys.stderr,
            )
            continue
        image_path, meta_path = write_image(
            args.out, f"{generation_id}-{done.index}", done.data, done.meta
        )
        written.append(
            {
                "image": str(image_path),
                "sidecar": str(meta_path),
                "seed": done.item.seed,
                "identity_similarity": done.item.identity_score.similarity,
            }
        )

    if not written:
        return fail(
            "unsafe_output", "every image was withheld by the output safety check", args.json
        )
    if args.json:
        emit_json(
            {
                "generation_id": generation_id,
                "profile": result.profile,
                "expanded_prompt": result.text.prompt,
                "images": written,
                "withheld": withheld,
                "warnings": [*result.warnings, *runtime.notes],
                "timings": result.timings,
            }
        )
    else:
        for w in written:
            print(f"{w['image']}  seed {w['seed']}")
    for note in runtime.notes:
        print(f"note: {note}", file=sys.stderr)
    if result.profile == "smoke":
        print(f"note: {SMOKE_NOTICE}", file=sys.stderr)
    return 0
