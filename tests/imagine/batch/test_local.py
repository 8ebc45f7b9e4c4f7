"""The local executor on the smoke profile: one enrollment per photo set, failures per item."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from imagine.batch.executor import ImageJob, ItemWork
from imagine.batch.local import LocalExecutor
from imagine.batch.manifest import ItemDefaults, read_manifest
from imagine.pipeline import PersonalizedPipeline
from imagine.postprocess import FaceSimilarityScorer
from imagine.provenance import ProvenanceConfig
from imagine.request import GenerationLimits
from imagine.runtime import Runtime
from imagine.safety import NoSafetyChecker, SafetyResult
from imagine.settings import Settings
from llm_prompting import ExpandedPrompt
from tests.photos import astronaut, group, hopper


class Refused(Exception):
    """Stands in for llm_prompting's PromptRejected: any error with a ``code``."""

    code = "prompt_rejected"


class RecordingSink:
    def __init__(self) -> None:
        self.images: dict[tuple[str, int], dict] = {}
        self.failures: dict[str, str] = {}
        self.stages: Counter[str] = Counter()

    def image(self, item_id, k, png, meta):
        assert png.startswith(b"\x89PNG")
        self.images[(item_id, k)] = meta

    def failed(self, item_id, code, message):
        self.failures[item_id] = code

    def timing(self, stage, seconds):
        self.stages[stage] += 1


LINES = [
    '{"id": "a", "photos": ["me.jpg"], "prompt": "me as an astronaut", "n": 2, "seed": 3}',
    '{"id": "b", "photos": ["copy.jpg"], "prompt": "me singing", "seed": 5}',
    '{"id": "c", "photos": ["hopper.jpg"], "prompt": "me in a lab", "seed": 9}',
    '{"id": "d", "photos": ["group.jpg"], "prompt": "us"}',
    '{"id": "e", "photos": ["group.jpg"], "prompt": "us again"}',
    '{"id": "f", "photos": ["me.jpg"], "prompt": "forbidden words"}',
]


@pytest.fixture
def work(tmp_path) -> list[ItemWork]:
    for name, data in (("me", astronaut()), ("copy", astronaut()), ("hopper", hopper())):
        (tmp_path / f"{name}.jpg").write_bytes(data)
    (tmp_path / "group.jpg").write_bytes(group())
    (tmp_path / "m.jsonl").write_text("\n".join(LINES))
    manifest = read_manifest(tmp_path / "m.jsonl", ItemDefaults(64, 64, 2), GenerationLimits())
    return [
        ItemWork(
            item,
            tuple(
                ImageJob(k, item.prompts[k // item.n], (item.seed or 0) + k % item.n)
                for k in range(item.image_count)
            ),
        )
        for item in manifest.items
    ]


class FlagsEverything:
    """An output checker that finds every image unsafe."""

    name = "flags-everything"

    def check(self, image):
        return SafetyResult(checker=self.name, scores={"EXPOSED": 0.99}, flagged=("EXPOSED",))


def executor(smoke, analyzer, expand, checker=None) -> LocalExecutor:
    settings = Settings(home=Path("unused"))
    pipeline = PersonalizedPipeline(
        smoke, expand=expand, scorer=FaceSimilarityScorer(analyzer), max_batch=4
    )
    checker = checker or NoSafetyChecker()
    marks = ProvenanceConfig(watermark_key=bytes(range(32)))  # no files: a key in memory
    runtime = Runtime(settings, analyzer, pipeline, checker, marks)
    return LocalExecutor(settings, runtime=runtime)


def moderate(prompt: str, style: str | None) -> ExpandedPrompt:
    if "forbidden" in prompt:
        raise Refused("your prompt was refused by moderation")
    return ExpandedPrompt(
        prompt=f"{prompt}, photo",
        negative_prompt="",
        style=style or "",
        added=("photo",),
        backend="test",
        model="test",
    )


def test_each_photo_set_is_enrolled_once_and_bad_items_fail_alone(smoke, dlib_analyzer, work):
    sink = RecordingSink()
    executor(smoke, dlib_analyzer, moderate).run(work, sink, lambda: False)
    assert sink.failures == {"d": "multiple_faces", "e": "multiple_faces", "f": "prompt_rejected"}
    assert sorted(sink.images) == [("a", 0), ("a", 1), ("b", 0), ("c", 0)]
    assert sink.stages["enroll"] == 3  # me.jpg (= copy.jpg by content), hopper.jpg, group.jpg
    meta = sink.images[("a", 1)]
    assert (meta["generation_id"], meta["index"], meta["seed"]) == ("a", 1, 4)
    assert (meta["prompt"], meta["expanded_prompt"]) == (
        "me as an astronaut",
        "me as an astronaut, photo",
    )
    assert (meta["size"], meta["steps"], meta["face_backend"]) == ("64x64", 2, "dlib")
    assert set(meta["timings"]) == {"expand", "encode", "denoise", "decode", "postprocess"}
    assert sink.images[("c", 0)]["prompt"] == "me in a lab"
    # Checked and marked like every stored image: the same sidecar fields as imagine generate.
    assert meta["safety"]["checker"] == "none" and meta["provenance"]["watermark_id"]
    assert len({m["provenance"]["watermark_id"] for m in sink.images.values()}) == 4


def test_an_image_the_output_check_withholds_fails_its_item_and_is_never_handed_over(
    smoke, dlib_analyzer, work
):
    sink = RecordingSink()
    executor(smoke, dlib_analyzer, moderate, FlagsEverything()).run(work[:3], sink, lambda: False)
    assert sink.images == {}
    assert sink.failures == {"a": "unsafe_output", "b": "unsafe_output", "c": "unsafe_output"}


def test_a_stop_request_ends_the_run_after_the_current_step_without_failing_items(
    smoke, dlib_analyzer, work
):
    stop = []

    def expand(prompt: str, style: str | None) -> ExpandedPrompt:
        if prompt == "me in a lab":
            stop.append(True)  # Ctrl-C while the first device batch is being filled
        return moderate(prompt, style)

    sink = RecordingSink()
    executor(smoke, dlib_analyzer, expand).run(work, sink, lambda: bool(stop))
    assert sink.images == {} and sink.failures == {}  # the batch in flight is dropped, not failed
    assert sink.stages["enroll"] == 2  # nothing after item c was started
