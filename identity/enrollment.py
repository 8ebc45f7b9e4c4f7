"""Enrollment: 1-5 photos of one person in, an ``IdentityProfile`` out.

Each photo is ingested, must show exactly one usable face, and is embedded; the
photos must agree with each other (every pair at or above the backend's match
threshold), and the profile embedding is the normalised mean. The raw photos
are not kept: the profile holds only the embedding, aligned face crops and
quality figures.

More photos of the person can join a stored profile later (``extend``): each must match
it, and the result is the profile ``enroll`` would have made of all the photos together.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from identity.analyzer import DetectedFace, FaceAnalyzer, l2_normalize
from identity.errors import (
    IdentityError,
    IdentityMismatch,
    InvalidImage,
    NotSameFace,
    TooManyPhotos,
)
from identity.ingest import IngestLimits, load_photo
from identity.quality import (
    QUALITY_CROP,
    FaceQuality,
    QualityThresholds,
    check,
    measure,
    select_face,
)


@dataclass(frozen=True)
class EnrollmentConfig:
    limits: IngestLimits = field(default_factory=IngestLimits)
    thresholds: QualityThresholds = field(default_factory=QualityThresholds)
    max_photos: int = 5
    crop_size: int = 224  # aligned crop kept for FaceID Plus-style adapters and previews


@dataclass(frozen=True)
class EnrolledPhoto:
    quality: FaceQuality
    similarity: float  # cosine similarity of this photo's face to the profile embedding


@dataclass(frozen=True)
class IdentityProfile:
    embedding: np.ndarray = field(repr=False)  # [D] float32, L2-normalised mean
    backend: str
    model_id: str
    match_threshold: float
    photos: tuple[EnrolledPhoto, ...]
    crops: tuple[Image.Image, ...] = field(repr=False)  # aligned faces, crop_size² RGB
    warnings: tuple[str, ...] = ()  # what the user should know, e.g. a face found on padding
    # [5, 2] float32: insightface's five keypoints (eyes, nose tip, mouth corners) relative
    # to the face box, (point - box centre) / box's longer side, averaged over the photos;
    # what InstantID draws as its control image. None for backends of another layout.
    keypoints: np.ndarray | None = field(default=None, repr=False)
    # [N, D] float32: each photo's own embedding, in memory only (never stored or shown);
    # what ``match_stored`` compares with a stored profile. None for a camera capture.
    photo_embeddings: np.ndarray | None = field(default=None, repr=False)
    # The length of the photos' mean embedding before it was normalised, in (0, 1]: with
    # the photo count it gives back their sum, so that photos added later weigh as if
    # enrolled together (``StoredProfile``). 1.0 for a camera capture, which counts as one.
    mean_length: float = 1.0

    @property
    def embedding_dim(self) -> int:
        return int(self.embedding.shape[0])

    def summary(self) -> dict:
        """What a user may see: no embedding, no crops."""
        return {
            "faces_found": len(self.photos),
            "embedding_dim": self.embedding_dim,
            "backend": self.backend,
            "model_id": self.model_id,
            "match_threshold": self.match_threshold,
            "warnings": list(self.warnings),
            "photos": [
                {**p.quality.to_dict(), "similarity_to_profile": round(p.similarity, 4)}
                for p in self.photos
            ],
        }


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings from the same backend, in [-1, 1].

    Same person when at or above the backend's ``match_threshold`` (dlib 0.91,
    insightface ArcFace 0.30; see the README).
    """
    a, b = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    if a.shape != b.shape:
        raise ValueError(f"embeddings differ in size: {a.shape} vs {b.shape}")
    return float(np.dot(l2_normalize(a), l2_normalize(b)))


def enroll(
    photos: Sequence[bytes], analyzer: FaceAnalyzer, config: EnrollmentConfig | None = None
) -> IdentityProfile:
    """Enroll one person from ``photos`` (encoded image bytes); raises ``IdentityError``."""
    config = config or EnrollmentConfig()
    if not photos:
        raise InvalidImage("at least one photo is needed")
    if len(photos) > config.max_photos:
        raise TooManyPhotos(f"{len(photos)} photos were sent; at most {config.max_photos} are used")

    embeddings, qualities, crops, warnings, keypoints = [], [], [], [], []
    for index, data in enumerate(photos):
        try:
            embedding, quality, crop, face = analyze_photo(data, analyzer, config)
        except IdentityError as exc:
            if len(photos) > 1:
                exc.message = f"photo {index + 1}: {exc.message}"
                exc.args = (exc.message,)
            exc.photo = index
            raise
        embeddings.append(embedding)
        qualities.append(quality)
        crops.append(crop)
        keypoints.append(face_keypoints(face))
        if face.padded:
            warnings.append(
                f"photo {index + 1}: the face fills the frame; it was found only on a copy "
                "padded with a margin. A photo with some space around the face detects "
                "more reliably"
            )

    for (i, a), (j, b) in itertools.combinations(enumerate(embeddings), 2):
        score = float(np.dot(a, b))
        if score < analyzer.match_threshold:
            raise IdentityMismatch(
                f"photos {i + 1} and {j + 1} do not show the same person "
                f"(similarity {score:.3f}, threshold {analyzer.match_threshold})",
                photo=j,
            )

    mean = np.mean(embeddings, axis=0)  # [D], length under 1 unless the photos agree exactly
    profile_embedding = l2_normalize(mean)
    return IdentityProfile(
        embedding=profile_embedding,
        backend=analyzer.name,
        model_id=analyzer.model_id,
        match_threshold=analyzer.match_threshold,
        photos=tuple(
            EnrolledPhoto(quality=q, similarity=float(np.dot(e, profile_embedding)))
            for q, e in zip(qualities, embeddings, strict=True)
        ),
        crops=tuple(crops),
        warnings=tuple(warnings),
        keypoints=np.mean(keypoints, axis=0)
        if analyzer.landmark_layout == "insightface-5"
        else None,
        photo_embeddings=np.stack(embeddings),
        mean_length=float(np.linalg.norm(mean)),
    )


@dataclass(frozen=True)
class StoredProfile:
    """What a stored identity keeps of its photos' faces: enough to add photos to it."""

    embedding: np.ndarray = field(repr=False)  # [D] float32, L2-normalised mean
    photos: int  # how many photos it is the mean of (a camera capture counts as one)
    mean_length: float = 1.0  # IdentityProfile.mean_length
    keypoints: np.ndarray | None = field(default=None, repr=False)  # [5, 2] mean, or None


def match_stored(
    stored: StoredProfile, added: IdentityProfile, threshold: float
) -> tuple[float, ...]:
    """Each added photo's similarity to the stored profile; ``NotSameFace`` naming the first
    photo below ``threshold`` (the backend's match threshold) unless every one reaches it."""
    assert added.photo_embeddings is not None, "a profile from enroll(), with its photos"
    scores = tuple(similarity(stored.embedding, e) for e in added.photo_embeddings)
    for index, score in enumerate(scores):
        if score < threshold:
            where = f"photo {index + 1}: " if len(scores) > 1 else ""
            raise NotSameFace(
                f"{where}this is not the face this identity holds (similarity {score:.3f}, "
                f"threshold {threshold}); add photos of the same person only",
                photo=index,
                similarity=score,
            )
    return scores


def extend(stored: StoredProfile, added: IdentityProfile) -> IdentityProfile:
    """``stored`` with ``added``'s photos (check them with ``match_stored`` first): the
    profile ``enroll`` would make of all the photos together. The stored photos' summed
    embedding comes back from their mean, count and mean length; keypoints are weighted
    by photos likewise. Its ``photos`` are the added ones, scored against the new embedding.
    """
    assert added.photo_embeddings is not None, "a profile from enroll(), with its photos"
    count = stored.photos + len(added.photos)
    total = stored.embedding * (stored.mean_length * stored.photos)  # [D], the stored sum
    mean = (total + added.photo_embeddings.sum(axis=0)) / count  # [D]
    embedding = l2_normalize(mean)
    keypoints = added.keypoints
    if keypoints is not None and stored.keypoints is not None:  # else: the added photos'
        keypoints = (stored.keypoints * stored.photos + keypoints * len(added.photos)) / count
    return dataclasses.replace(
        added,
        embedding=embedding,
        photos=tuple(
            EnrolledPhoto(p.quality, float(np.dot(e, embedding)))
            for p, e in zip(added.photos, added.photo_embeddings, strict=True)
        ),
        keypoints=None if keypoints is None else keypoints.astype(np.float32),
        mean_length=float(np.linalg.norm(mean)),
    )


def face_keypoints(face: DetectedFace) -> np.ndarray:
    """[K, 2] float32: ``face.landmarks`` relative to its box, (point - centre) / longer side."""
    x0, y0, x1, y1 = face.box
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2], np.float32)
    side = max(x1 - x0, y1 - y0, 1e-6)
    return ((np.asarray(face.landmarks, np.float32) - centre) / side).astype(np.float32)


def analyze_photo(
    data: bytes, analyzer: FaceAnalyzer, config: EnrollmentConfig
) -> tuple[np.ndarray, FaceQuality, Image.Image, DetectedFace]:
    """One enrollment photo: its embedding [D], quality figures, aligned crop and the face."""
    pixels = load_photo(data, config.limits).array()
    face, detected = select_face(analyzer.detect(pixels), analyzer, config.thresholds)
    small = analyzer.align(pixels, face, QUALITY_CROP)
    quality = measure(pixels, face, small, detected)
    check(quality, config.thresholds)
    crop = Image.fromarray(analyzer.align(pixels, face, config.crop_size), "RGB")
    return analyzer.embed(pixels, face), quality, crop, face


def embed_largest_face(image: np.ndarray, analyzer: FaceAnalyzer) -> np.ndarray | None:
    """[D] embedding of the largest real face in ``image`` ([H, W, 3] uint8), or None.

    Used to score generated images against a profile; no quality gates apply.
    """
    faces = [f for f in analyzer.detect(image) if f.score >= analyzer.min_detection_score]
    if not faces:
        return None
    return analyzer.embed(image, max(faces, key=lambda f: f.size))
