"""Image storage: one contract, run against both stores (a folder, and a bucket on a real
S3-protocol server), then what each store adds: the S3 layout, listing page by page,
and the clear errors of a bucket that is missing or unreachable."""

from __future__ import annotations

import os
import time

import pytest

from api.erasure import sweep_orphans
from api.errors import ApiError
from api.s3_storage import S3Storage
from api.storage import (
    FileStorage,
    MissingObject,
    Storage,
    StorageUnavailable,
    base_key,
    is_key,
    open_storage,
    variant_key,
)
from imagine.settings import SettingsError

HOUR_LATER = 3700.0


@pytest.fixture(params=["file", "s3"])
def store(request, tmp_path) -> Storage:
    if request.param == "file":
        return open_storage(f"file://{tmp_path / 'images'}")
    bucket = request.getfixturevalue("s3_bucket")
    return open_storage(bucket.url, s3_endpoint_url=bucket.endpoint_url)


def test_put_then_get_gives_the_bytes_and_a_missing_key_is_a_404(store):
    key = store.new_key()
    assert is_key(key) and key.endswith(".png") and not store.exists(key)
    store.put(key, b"first")
    store.put(key, b"second")  # a rewrite replaces the bytes
    assert store.exists(key) and store.get(key) == b"second"
    with pytest.raises(MissingObject) as missing:
        store.get(store.new_key())
    assert missing.value.status == 404 and missing.value.code == "not_found"


def test_a_variant_lives_beside_its_key_and_goes_with_it(store):
    key = store.new_key()
    labelled = variant_key(key, "labelled")
    assert labelled.endswith(".labelled.png") and base_key(labelled) == base_key(key) == key
    store.put(key, b"image")
    store.put(labelled, b"labelled image")
    assert store.keys() == {key} and store.get(labelled) == b"labelled image"
    store.delete(key)
    assert store.keys() == set() and not store.exists(labelled) and not store.exists(key)
    with pytest.raises(MissingObject):
        store.get(labelled)
    store.delete(key)  # deleting what is gone is no error


def test_keys_counts_an_orphan_variant_as_its_key_and_ignores_foreign_objects(store):
    whole, orphaned = store.new_key(), store.new_key()
    store.put(whole, b"image")
    store.put(variant_key(orphaned, "labelled"), b"its image was deleted by a crash")
    store.put("zz/notes.txt", b"not ours: never listed, so never swept")
    assert store.keys() == {whole, orphaned}
    store.delete(orphaned)
    assert store.keys() == {whole} and store.get("zz/notes.txt")


def test_age_is_that_of_the_newest_of_a_key_and_its_variants(store):
    key, orphaned = store.new_key(), store.new_key()
    assert store.age_seconds(key) == float("inf")
    store.put(key, b"image")
    store.put(variant_key(orphaned, "labelled"), b"variant only")
    # S3 stamps whole seconds on the server's clock, here the same machine's
    for k in (key, orphaned):
        assert -2 < store.age_seconds(k) < 60
        assert store.age_seconds(k, now=time.time() + HOUR_LATER) > 3600


def test_the_orphan_sweep_removes_old_objects_without_rows_and_their_variants(store, services):
    orphan = store.new_key()
    store.put(orphan, b"left behind by a crash")
    store.put(variant_key(orphan, "labelled"), b"and its labelled copy")
    with services.db.session() as session:
        assert sweep_orphans(session, store) == 0  # young: a worker may be about to commit it
        assert sweep_orphans(session, store, now=time.time() + HOUR_LATER) == 1
    assert store.keys() == set() and not store.exists(variant_key(orphan, "labelled"))


def test_a_file_store_sweeps_by_the_files_own_times(services):
    storage = services.storage
    assert isinstance(storage, FileStorage)
    orphan, young = storage.new_key(), storage.new_key()
    storage.put(variant_key(orphan, "labelled"), b"left behind by a crash")
    storage.put(young, b"a worker may be about to commit this")
    hour_ago = time.time() - HOUR_LATER
    os.utime(storage.path(variant_key(orphan, "labelled")), (hour_ago, hour_ago))
    with services.db.session() as session:
        assert sweep_orphans(session, storage) == 1
    assert storage.keys() == {young}


def test_storage_urls_name_a_folder_or_a_bucket(tmp_path):
    assert isinstance(open_storage(str(tmp_path / "a")), FileStorage)
    by_url = open_storage(f"file://{tmp_path / 'b'}")
    assert isinstance(by_url, FileStorage) and by_url.root == tmp_path / "b"
    for bad in ("ftp://host/images", "file://elsewhere/images", "s3:///images"):
        with pytest.raises(SettingsError) as err:
            open_storage(bad)
        assert bad in str(err.value) and err.value.code == "invalid_setting"


def test_s3_keeps_the_file_layout_under_the_prefix(s3_bucket):
    store = open_storage(
        f"s3://{s3_bucket.name}/tenant/images/", s3_endpoint_url=s3_bucket.endpoint_url
    )
    key = store.new_key()
    store.put(key, b"image")
    store.put(variant_key(key, "labelled"), b"labelled")
    s3_bucket.client.put_object(
        Bucket=s3_bucket.name, Key="elsewhere/ab/" + "0" * 30 + ".png", Body=b""
    )
    assert s3_bucket.objects() == sorted(
        [
            "elsewhere/ab/" + "0" * 30 + ".png",
            f"tenant/images/{key}",
            f"tenant/images/{variant_key(key, 'labelled')}",
        ]
    )
    head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=f"tenant/images/{key}")
    assert head["ContentType"] == "image/png"
    assert store.keys() == {key}  # the prefix bounds what is listed, and so what is swept


def test_s3_lists_keys_page_by_page(s3_bucket):
    store = S3Storage(s3_bucket.url, endpoint_url=s3_bucket.endpoint_url, page_size=2)
    keys = {store.new_key() for _ in range(5)}
    for key in keys:
        store.put(key, b"image")
    assert store.keys() == keys


def test_a_missing_bucket_is_a_clear_setting_error_naming_the_url(s3_bucket):
    url = f"s3://{s3_bucket.name}-missing/images"
    with pytest.raises(SettingsError) as err:
        open_storage(url, s3_endpoint_url=s3_bucket.endpoint_url)
    assert url in str(err.value) and "does not exist" in str(err.value)


def test_an_unreachable_endpoint_is_a_clear_setting_error(s3_bucket):
    with pytest.raises(SettingsError) as err:
        open_storage(s3_bucket.url, s3_endpoint_url="http://127.0.0.1:9")
    assert s3_bucket.url in str(err.value) and "http://127.0.0.1:9" in str(err.value)


def test_a_bucket_gone_under_a_running_service_is_a_503_not_a_404(s3_bucket):
    store = open_storage(s3_bucket.url, s3_endpoint_url=s3_bucket.endpoint_url)
    s3_bucket.client.delete_bucket(Bucket=s3_bucket.name)
    with pytest.raises(StorageUnavailable) as err:
        store.get(store.new_key())
    assert isinstance(err.value, ApiError) and err.value.status == 503


def test_only_a_bucket_hands_out_presigned_urls(store):
    key = store.new_key()
    store.put(key, b"image")
    url = store.presigned_url(key, 60, "imagine-x.png")
    assert (url is None) == isinstance(store, FileStorage)
