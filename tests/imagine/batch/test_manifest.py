"""The manifest: each line validated on its own, with its number and a stable code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagine.batch.manifest import ItemDefaults, ManifestError, read_manifest
from imagine.request import GenerationLimits

DEFAULTS = ItemDefaults(width=64, height=64, steps=2)


@pytest.fixture
def folder(tmp_path) -> Path:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "me.jpg").write_bytes(b"photo of me")
    (tmp_path / "photos" / "copy.jpg").write_bytes(b"photo of me")
    (tmp_path / "photos" / "you.jpg").write_bytes(b"photo of you")
    return tmp_path


def manifest(folder: Path, *lines: object):
    path = folder / "m.jsonl"
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return read_manifest(path, DEFAULTS, GenerationLimits())


def test_valid_lines_get_defaults_and_paths_relative_to_the_manifest(folder):
    m = manifest(
        folder,
        {"photos": ["photos/me.jpg"], "prompt": "me"},
        "",
        {
            "id": "styles",
            "photos": [str(folder / "photos" / "you.jpg")],
            "prompts": ["a", "b"],
            "n": 3,
            "seed": 5,
            "size": "96x64",
            "steps": 4,
            "style": "watercolor",
        },
    )
    assert not m.invalid
    first, second = m.items
    assert (first.id, first.line, first.n, first.seed) == ("line-0001", 1, 1, None)
    assert (first.width, first.height, first.steps) == (64, 64, 2)
    assert first.photos == ((folder / "photos" / "me.jpg").resolve(),)
    assert (second.id, second.line, second.prompts, second.style) == (
        "styles",
        3,
        ("a", "b"),
        "watercolor",
    )
    assert (second.width, second.height, second.steps, second.image_count) == (96, 64, 4, 6)
    assert m.image_count == 7


def test_the_same_photo_content_shares_one_enrollment_key(folder):
    a, b, c = manifest(
        folder,
        {"photos": ["photos/me.jpg"], "prompt": "x"},
        {"photos": ["photos/copy.jpg"], "prompt": "y"},
        {"photos": ["photos/you.jpg"], "prompt": "z"},
    ).items
    assert a.photo_key == b.photo_key != c.photo_key


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ('{"photos": ["photos/me.jpg"], "prompt": "x"', "invalid_json"),
        ("[1, 2]", "invalid_item"),
        ({"photos": ["photos/me.jpg"], "prompt": "x", "nn": 2}, "invalid_item"),
        ({"photos": ["photos/me.jpg"]}, "missing_prompt"),
        ({"photos": ["photos/me.jpg"], "prompt": "  "}, "invalid_prompt"),
        ({"photos": ["photos/me.jpg"], "prompts": []}, "invalid_prompt"),
        ({"photos": ["photos/me.jpg"], "prompt": "me\u0000"}, "invalid_prompt"),
        ({"photos": ["photos/me.jpg"], "prompts": ["me", "me \u202eevil"]}, "invalid_prompt"),
        ({"photos": ["photos/me.jpg"], "prompt": "x" * 501}, "prompt_too_long"),
        ({"photos": ["photos/me.jpg"], "prompt": "x", "prompts": ["y"]}, "invalid_item"),
        ({"prompt": "x"}, "missing_photos"),
        ({"photos": "photos/me.jpg", "prompt": "x"}, "invalid_photos"),
        ({"photos": ["photos/nobody.jpg"], "prompt": "x"}, "file_not_found"),
        ({"photos": ["photos/me.jpg"] * 6, "prompt": "x"}, "too_many_photos"),
        ({"identity_id": "idn_1", "prompt": "x"}, "needs_server"),
        ({"photos": ["photos/me.jpg"], "prompt": "x", "size": "100x100"}, "invalid_size"),
        ({"photos": ["photos/me.jpg"], "prompt": "x", "size": "big"}, "invalid_size"),
        ({"photos": ["photos/me.jpg"], "prompt": "x", "size": 64}, "invalid_size"),
        ({"photos": ["photos/me.jpg"], "prompt": "x", "steps": 0}, "invalid_steps"),
        ({"photos": ["photos/me.jpg"], "prompt": "x", "steps": "4"}, "invalid_steps"),
        ({"photos": ["photos/me.jpg"], "prompt": "x", "n": 9}, "invalid_n"),
        ({"photos": ["photos/me.jpg"], "prompt": "x", "n": True}, "invalid_n"),
        ({"photos": ["photos/me.jpg"], "prompt": "x", "seed": -1}, "invalid_seed"),
        ({"photos": ["photos/me.jpg"], "prompt": "x", "seed": 2**32 - 1, "n": 2}, "invalid_seed"),
        ({"photos": ["photos/me.jpg"], "prompt": "x", "style": 3}, "invalid_style"),
        ({"id": "../etc", "photos": ["photos/me.jpg"], "prompt": "x"}, "invalid_id"),
        ({"id": "report.html", "photos": ["photos/me.jpg"], "prompt": "x"}, "invalid_id"),
    ],
)
def test_a_bad_line_is_reported_with_its_number_and_the_rest_still_run(folder, line, code):
    good = {"photos": ["photos/me.jpg"], "prompt": "me"}
    m = manifest(folder, good, line, good)
    assert [item.line for item in m.items] == [1, 3]
    (bad,) = m.invalid
    assert (bad.line, bad.code) == (2, code)
    assert bad.message


def test_prompts_are_kept_normalised_and_a_bad_character_is_named(folder):
    m = manifest(
        folder,
        {"photos": ["photos/me.jpg"], "prompts": ["me as an e\u0301lf\nin a forest"]},
        {"photos": ["photos/me.jpg"], "prompt": "me as a \u001b[31mred pirate"},
    )
    assert m.items[0].prompts == ("me as an \u00e9lf in a forest",)
    (bad,) = m.invalid
    assert (bad.line, bad.code) == (2, "invalid_prompt") and "U+001B" in bad.message


def test_ids_must_be_unique(folder):
    line = {"id": "me", "photos": ["photos/me.jpg"], "prompt": "x"}
    m = manifest(folder, line, line)
    assert [i.line for i in m.items] == [1]
    assert [(b.line, b.code, b.id) for b in m.invalid] == [(2, "duplicate_id", "me")]


def test_a_missing_or_empty_manifest_is_a_user_error(folder):
    with pytest.raises(ManifestError) as err:
        read_manifest(folder / "nope.jsonl", DEFAULTS, GenerationLimits())
    assert err.value.code == "file_not_found"
    (folder / "empty.jsonl").write_text("\n  \n")
    with pytest.raises(ManifestError) as err:
        read_manifest(folder / "empty.jsonl", DEFAULTS, GenerationLimits())
    assert err.value.code == "empty_manifest"
