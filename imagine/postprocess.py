"""Post-processing hooks run on every generated image: identity similarity and best-of-k.

Each hook is a small protocol so the service and tests can plug in their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from PIL import Image

from identity.analyzer import FaceAnalyzer
from identity.enrollment import embed_largest_face, similarity


@dataclass(frozen=True)
class IdentityScore:
    similarity: float | None  # cosine similarity to the reference, None when not measurable
    note: str | None = None  # why it is None


class IdentityScorer(Protocol):
    def score(self, image: Image.Image, reference: np.ndarray) -> IdentityScore: ...


class FaceSimilarityScorer:
    """Cosine similarity of the largest face in the output to the enrolled embedding.

    The analyzer must be the one that made the reference (same backend, same
    embedding space).
    """

    def __init__(self, analyzer: FaceAnalyzer):
        self.analyzer = analyzer

    def score(self, image: Image.Image, reference: np.ndarray) -> IdentityScore:
        pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
        embedding = embed_largest_face(pixels, self.analyzer)
        if embedding is None:
            return IdentityScore(None, "no face found in the generated image")
        if embedding.shape != reference.shape:
            return IdentityScore(None, "the reference comes from another face backend")
        return IdentityScore(similarity(embedding, reference))


def rank_by_similarity(scores: list[IdentityScore], keep: int) -> list[int]:
    """Indices of the ``keep`` best candidates, most similar first; unscored ones last, in order."""
    order = sorted(
        range(len(scores)),
        key=lambda i: (scores[i].similarity is None, -(scores[i].similarity or 0.0), i),
    )
    return order[:keep]
