"""Assemble the working parts from settings: face analyzer, prompt expander, pipeline.

Shared by ``imagine generate``, ``imagine batch`` and the service's worker, so
the three run exactly the same stages.
"""

from __future__ import annotations

from dataclasses import dataclass

from identity.analyzer import FaceAnalyzer, get_analyzer
from imagine.models import load_pipeline
from imagine.pipeline import PersonalizedPipeline
from imagine.postprocess import FaceSimilarityScorer
from imagine.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    analyzer: FaceAnalyzer
    pipeline: PersonalizedPipeline


def load_runtime(settings: Settings) -> Runtime:
    """Load models once; this is the slow part (seconds on smoke, a minute for SDXL)."""
    analyzer = get_analyzer(settings.face())
    loaded = load_pipeline(settings.models(analyzer.embedding_dim))
    pipeline = PersonalizedPipeline(
        loaded,
        scorer=FaceSimilarityScorer(analyzer),
        limits=settings.generation_limits(),
        max_batch=settings.max_batch,
        prompt_cache_size=settings.prompt_cache_size,
    )
    return Runtime(settings=settings, analyzer=analyzer, pipeline=pipeline)
