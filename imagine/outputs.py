"""The last steps for every generated image: safety check, provenance marks, atomic writes.

``check_and_mark`` checks one image and then marks it; its result is the only thing
the pipeline's callers (``imagine generate``, ``imagine batch``, the service)
may store. An unsafe image raises ``UnsafeOutput`` before any bytes exist.
``finalize`` does that for a whole generation and builds each sidecar.

Each image is ``<stem>.png`` plus ``<stem>.json`` with the same stem. Both are
written to a temporary file in the same folder, flushed and renamed into
place, the PNG first: a sidecar therefore only exists next to a complete
image, and Ctrl-C never leaves a half-written file under a real name.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from PIL import Image

from imagine import __version__
from imagine.pipeline import GeneratedImage, GenerationResult
from imagine.provenance import MarkedImage, ProvenanceConfig, mark
from imagine.safety import SafetyChecker, SafetyResult, UnsafeOutput, screen

SMOKE_NOTICE = "smoke profile: tiny random-weight models; this image is noise, not a likeness"


@contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A binary file written under ``.<name>.<random>.part`` and renamed to ``path`` on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: Path, data: bytes) -> None:
    with atomic_file(path) as f:
        f.write(data)


def is_temporary(path: Path) -> bool:
    """A leftover of ``atomic_file`` from a process that was killed mid-write."""
    return path.name.startswith(".") and path.name.endswith(".part")


def png_bytes(image: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def sidecar(
    result: GenerationResult,
    item: GeneratedImage,
    index: int,
    generation_id: str,
    face_backend: str,
) -> dict[str, Any]:
    """Everything needed to understand and reproduce one image; no biometric data."""
    text = result.text
    return {
        "generation_id": generation_id,
        "index": index,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "generator": f"imagine-me {__version__}",
        "prompt": result.prompt,
        "expanded_prompt": text.prompt,
        "negative_prompt": text.negative_prompt,
        "style": text.style,
        "added": list(text.added),
        "expander": text.backend,
        "expander_model": text.model,
        "seed": item.seed,
        "steps": result.steps,
        "size": f"{result.width}x{result.height}",
        "guidance_scale": result.guidance_scale,
        "adapter_scale": result.adapter_scale,
        "scheduler": result.scheduler,
        "profile": result.profile,
        "model_id": result.model_id,
        "adapter_id": result.adapter_id,
        "adapters": result.adapters,  # face adapter, variant, and the LoRAs applied
        "face_backend": face_backend,
        "identity_similarity": item.identity_score.similarity,
        "identity_similarity_note": item.identity_score.note,
        "timings": {stage: round(s, 4) for stage, s in result.timings.items()},
        "warnings": result.warnings,
        "notice": SMOKE_NOTICE if result.profile == "smoke" else None,
    }


@dataclass(frozen=True)
class FinishedImage:
    marked: MarkedImage
    safety: SafetyResult

    @property
    def data(self) -> bytes:
        return self.marked.data

    def summary(self) -> dict[str, Any]:
        return {"safety": self.safety.summary(), "provenance": self.marked.summary()}


def check_and_mark(
    image: Image.Image,
    generation_id: str,
    *,
    checker: SafetyChecker,
    provenance: ProvenanceConfig,
    fmt: str = "PNG",
) -> FinishedImage:
    """Check ``image``, then mark it; raises ``UnsafeOutput`` and returns nothing to store."""
    safety = screen(image, checker)
    return FinishedImage(mark(image, generation_id, provenance, fmt), safety)


@dataclass
class Finalized:
    """One generated image after the safety check and the provenance marks."""

    index: int
    item: GeneratedImage
    meta: dict[str, Any]  # the sidecar, with "safety" and "provenance"
    data: bytes | None  # the marked PNG; None when withheld
    withheld: str | None = None  # the error code when the image must not be stored


def finalize(
    result: GenerationResult,
    generation_id: str,
    *,
    checker: SafetyChecker,
    provenance: ProvenanceConfig,
    face_backend: str,
    notes: tuple[str, ...] = (),
    mark_ids: list[str] | None = None,
    before_each: Callable[[], None] | None = None,
) -> list[Finalized]:
    """Check and mark every image of ``result``. The watermark of image k carries
    ``mark_ids[k]`` (default ``<generation_id>-<k>``, the file stem). ``before_each`` runs
    before each image: a worker checks there for a cancel (it raises to stop)."""
    out = []
    for index, item in enumerate(result.images):
        if before_each is not None:
            before_each()
        meta = sidecar(result, item, index, generation_id, face_backend)
        meta["warnings"] = [*meta["warnings"], *notes]
        mark_id = mark_ids[index] if mark_ids else f"{generation_id}-{index}"
        try:
            finished = check_and_mark(item.image, mark_id, checker=checker, provenance=provenance)
        except UnsafeOutput as exc:
            meta["safety"] = exc.result.summary()
            out.append(Finalized(index, item, meta, None, exc.code))
            continue
        meta.update(finished.summary())
        out.append(Finalized(index, item, meta, finished.data))
    return out


def sidecar_bytes(meta: dict[str, Any]) -> bytes:
    return (json.dumps(meta, indent=2, ensure_ascii=False) + "\n").encode()


def write_image(out: Path, stem: str, png: bytes, meta: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``<stem>.png`` then ``<stem>.json`` into ``out``; returns both paths."""
    image_path, meta_path = out / f"{stem}.png", out / f"{stem}.json"
    atomic_write(image_path, png)
    atomic_write(meta_path, sidecar_bytes(meta))
    return image_path, meta_path
