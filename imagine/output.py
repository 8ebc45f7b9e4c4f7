"""The last step for every generated image: the safety check, then the provenance marks.

``finish`` is what the pipeline, the batch runner and the service call per
image; its result is the only thing they may write. An unsafe image raises
``UnsafeOutput`` before any bytes exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PIL import Image

from imagine.provenance import MarkedImage, ProvenanceConfig, mark
from imagine.safety import SafetyChecker, SafetyResult, screen


@dataclass(frozen=True)
class FinishedImage:
    marked: MarkedImage
    safety: SafetyResult

    @property
    def data(self) -> bytes:
        return self.marked.data

    def summary(self) -> dict[str, Any]:
        return {"safety": self.safety.summary(), "provenance": self.marked.summary()}


def finish(
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
