"""``finalize``: what the same seed reproduces, and what each image's marks add to it."""

from __future__ import annotations

import numpy as np

from imagine.outputs import finalize
from imagine.provenance import ProvenanceConfig, verify, watermark_id
from imagine.safety import NoSafetyChecker
from tests.imagine.conftest import unit

MARKS = ProvenanceConfig(watermark_key=bytes(range(32)))  # a watermark key for these tests
SMALL = {"width": 64, "height": 64, "steps": 2}
# Sidecar fields that belong to one run, not to the image: its id, clock and stage times.
PER_RUN = ("generation_id", "created_at", "timings")


def marked(result, generation_id: str) -> list:
    return finalize(
        result,
        generation_id,
        checker=NoSafetyChecker(),
        provenance=MARKS,
        face_backend="dlib",
    )


def reproducible(meta: dict) -> dict:
    """The sidecar less what differs between runs by design."""
    kept = {k: v for k, v in meta.items() if k not in PER_RUN}
    # The payload, and the strength it took to read back (marking doubles it until it does).
    watermark = ("watermark_id", "watermark_strength")
    kept["provenance"] = {k: v for k, v in meta["provenance"].items() if k not in watermark}
    return kept


def test_same_seed_same_pixels_and_the_files_differ_only_by_their_watermark(pipeline):
    a = pipeline("me as an astronaut", unit(1), n=2, seed=7, **SMALL)
    b = pipeline("me as an astronaut", unit(1), n=2, seed=7, **SMALL)
    # The generated pixels, before any mark, are the same to the bit.
    for x, y in zip(a.images, b.images, strict=True):
        assert x.seed == y.seed
        assert np.array_equal(np.asarray(x.image), np.asarray(y.image))

    first, again = marked(a, "gen-a"), marked(b, "gen-b")
    for k, (x, y) in enumerate(zip(first, again, strict=True)):
        # Each file carries its own run's payload, so the files differ ...
        assert x.data != y.data
        assert verify(x.data, MARKS).matches(watermark_id(f"gen-a-{k}"))
        assert verify(y.data, MARKS).matches(watermark_id(f"gen-b-{k}"))
        # ... and the sidecars only by the run's id, clock, timings and that watermark.
        assert reproducible(x.meta) == reproducible(y.meta)
        assert x.meta["seed"] == 7 + k

    # Marked with the first run's ids, the second run's images are its files byte for byte:
    # the watermark payload is all that told them apart.
    assert [f.data for f in marked(b, "gen-a")] == [f.data for f in first]
