"""Image files: keys, the copies derived from them, and what the orphan sweep removes."""

from __future__ import annotations

import os
import time

import pytest

from api.erasure import sweep_orphans
from api.storage import FileStorage, MissingObject, base_key, variant_key


def test_a_variant_lives_beside_its_key_and_goes_with_it(tmp_path):
    storage = FileStorage(tmp_path)
    key = storage.new_key()
    labelled = variant_key(key, "labelled")
    assert labelled.endswith(".labelled.png") and base_key(labelled) == base_key(key) == key
    storage.put(key, b"image")
    storage.put(labelled, b"labelled image")
    assert storage.keys() == {key}
    storage.delete(key)
    assert storage.keys() == set() and not storage.exists(labelled)
    with pytest.raises(MissingObject):
        storage.get(key)


def test_the_orphan_sweep_removes_old_files_without_rows_and_their_variants(services):
    storage = services.storage
    orphan, young = storage.new_key(), storage.new_key()
    storage.put(variant_key(orphan, "labelled"), b"left behind by a crash")
    storage.put(young, b"a worker may be about to commit this")
    hour_ago = time.time() - 3700
    os.utime(storage.path(variant_key(orphan, "labelled")), (hour_ago, hour_ago))
    with services.db.session() as session:
        assert sweep_orphans(session, storage) == 1
    assert storage.keys() == {young}
