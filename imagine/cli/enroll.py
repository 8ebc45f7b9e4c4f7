"""``imagine enroll PHOTO... [--backend NAME] [--json]``: check photos and report the face found.

Nothing is written anywhere: the embedding stays in memory and is not printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from identity.analyzer import ANALYZERS
from identity.enrollment import IdentityProfile
from imagine.cli.output import emit_json
from imagine.enrollment import enroll_files
from imagine.settings import Settings

NAME = "enroll"
HELP = "Enroll a face from 1-5 photos and report what was found (nothing is stored)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("photos", nargs="+", metavar="PHOTO", type=Path, help="JPEG, PNG or WebP")
    parser.add_argument("--backend", choices=sorted(ANALYZERS), help="face analysis backend")
    parser.add_argument("--json", action="store_true", help="print JSON on stdout")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.backend:
        settings = settings.replace(face_backend=args.backend)
    profile = enroll_files(args.photos, settings)
    summary = profile.summary()
    for photo, path in zip(summary["photos"], args.photos, strict=True):
        photo["file"] = str(path)
    if args.json:
        emit_json(summary)
    else:
        print(describe(profile, args.photos))
    return 0


def describe(profile: IdentityProfile, paths: list[Path]) -> str:
    lines = [
        f"enrolled {len(profile.photos)} photo(s) with {profile.backend} "
        f"({profile.model_id}): one face each, {profile.embedding_dim}-d embedding"
    ]
    for path, photo in zip(paths, profile.photos, strict=True):
        q = photo.quality
        lines.append(
            f"  {path}: face {q.face_px} px, detection score {q.detection_score:.2f}, "
            f"sharpness {q.sharpness:.0f}, yaw {q.yaw:+.2f}, brightness {q.brightness:.0f}, "
            f"similarity to profile {photo.similarity:.3f}"
        )
    lines += [f"warning: {w}" for w in profile.warnings]
    return "\n".join(lines)
