"""Assemble the working parts from settings: face analyzer, pipeline, output checker, marks.

Shared by ``imagine generate``, ``imagine batch`` and the service's worker, so
the three run exactly the same stages.
"""

from __future__ import annotations

from dataclasses import dataclass

from identity.analyzer import FaceAnalyzer, get_analyzer
from imagine.models.loading import load_pipeline
from imagine.pipeline import PersonalizedPipeline
from imagine.postprocess import FaceSimilarityScorer
from imagine.provenance import ProvenanceConfig
from imagine.safety import NoSafetyChecker, SafetyChecker, SafetyUnavailable, get_checker
from imagine.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    analyzer: FaceAnalyzer
    pipeline: PersonalizedPipeline
    checker: SafetyChecker
    provenance: ProvenanceConfig
    notes: tuple[str, ...] = ()  # what a user or operator must be told (e.g. checks off)


def load_checker(settings: Settings) -> tuple[SafetyChecker, tuple[str, ...]]:
    """The output checker. A missing one is fatal in production (``IMAGINE_PRODUCTION``);
    elsewhere the service runs without output checks and says so."""
    try:
        checker = get_checker(settings.safety())
    except SafetyUnavailable as exc:
        if settings.production:
            raise
        return NoSafetyChecker(), (f"output safety checks are OFF: {exc.message}",)
    if checker.name == "none":
        return checker, ("output safety checks are off (IMAGINE_SAFETY_CHECKER=none)",)
    return checker, ()


def load_runtime(settings: Settings, analyzer: FaceAnalyzer | None = None) -> Runtime:
    """Load models once; this is the slow part (seconds on smoke, a minute for SDXL)."""
    checker, notes = load_checker(settings)  # before the slow part: fail fast in production
    analyzer = analyzer or get_analyzer(settings.face())
    loaded = load_pipeline(settings.models(analyzer.embedding_dim))
    pipeline = PersonalizedPipeline(
        loaded,
        prompting=settings.prompting(),
        scorer=FaceSimilarityScorer(analyzer),
        limits=settings.generation_limits(),
        max_batch=settings.max_batch,
        prompt_cache_size=settings.prompt_cache_size,
    )
    return Runtime(settings, analyzer, pipeline, checker, settings.provenance(), notes)
