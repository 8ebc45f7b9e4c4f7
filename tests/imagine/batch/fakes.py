"""A fake ``Executor`` for runner tests: solid-colour PNGs instead of a diffusion model."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image

from imagine.batch.executor import ItemWork, Sink
from imagine.batch.manifest import ItemDefaults, Manifest, read_manifest
from imagine.request import GenerationLimits


class PaintingExecutor:
    """Paints one flat PNG per job; refuses prompts containing "forbidden" like a moderator."""

    name = "painting"
    notes = ("paintings, not photos",)

    def __init__(self) -> None:
        self.made: list[tuple[str, int, int]] = []  # (item id, k, seed) in order

    def run(self, work: Sequence[ItemWork], sink: Sink, should_stop: Callable[[], bool]) -> None:
        sink.timing("load", 0.01)
        for w in work:
            for job in w.jobs:
                if should_stop():
                    return
                if "forbidden" in job.prompt:
                    sink.failed(w.item.id, "prompt_rejected", f"refused: {job.prompt}")
                    break
                buf = io.BytesIO()
                Image.new("RGB", (32, 32), (job.seed % 256, job.k * 40 % 256, 90)).save(buf, "PNG")
                meta = {"prompt": job.prompt, "seed": job.seed, "index": job.k}
                meta |= {"identity_similarity": None, "identity_similarity_note": "painted"}
                sink.image(w.item.id, job.k, buf.getvalue(), meta)
                self.made.append((w.item.id, job.k, job.seed))


def write_manifest(folder: Path, lines: list[object]) -> Manifest:
    """Lines as JSON (strings are written as they are); photos are dummy files in ``folder``."""
    photo = folder / "me.jpg"
    if not photo.exists():
        photo.write_bytes(b"not decoded by the fake executor")
    path = folder / "manifest.jsonl"
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return read_manifest(path, ItemDefaults(width=64, height=64, steps=2), GenerationLimits())
