"""The main path a client takes, end to end through HTTP, on the smoke profile."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from api.storage import variant_key
from api.tables import ImageRow
from imagine.provenance import verify, watermark_id
from tests.api.conftest import SMALL, auth, enroll, ready, wait_for
from tests.photos import astronaut_reframed


def test_enroll_generate_fetch_delete(client, services, user_key):
    key = user_key("alice")
    ready(client)
    identity = enroll(client, key)
    assert identity["embedding_dim"] == 128 and identity["backend"] == "dlib"
    assert "embedding" not in identity and "embedding_encrypted" not in identity
    assert identity["photos"][0]["face_px"] > 80

    r = client.post(
        "/v1/generations",
        headers=auth(key),
        json={
            "identity_id": identity["id"],
            "prompt": "me as an astronaut",
            "n": 2,
            "seed": 7,
            **SMALL,
        },
    )
    assert r.status_code == 202, r.text
    job = wait_for(client, key, r.json()["id"])
    assert job["status"] == "succeeded", job
    assert job["progress"] == 1.0 and job["profile_is_noise"] is True
    assert [img["seed"] for img in job["images"]] == [7, 8]
    image = job["images"][0]
    assert image["prompt"] == "me as an astronaut" and image["profile_is_noise"] is True
    png = client.get(image["url"], headers=auth(key))
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.headers["x-content-type-options"] == "nosniff"
    assert png.headers["content-security-policy"] == "default-src 'none'"
    assert "content-disposition" not in png.headers
    saved = client.get(image["url"], params={"download": "true"}, headers=auth(key))
    # Downloads carry the visible label over the stored, already watermarked pixels.
    stored = np.asarray(Image.open(io.BytesIO(png.content)), dtype=int)
    labelled = np.asarray(Image.open(io.BytesIO(saved.content)), dtype=int)
    # The label's box and text change pixels by more than 40; marking the copy again, by
    # less (as in tests/imagine/test_provenance.py). On a 64 px image the label spans the
    # bottom rows; the top half keeps only the new watermark.
    label = np.abs(stored - labelled).max(axis=2) > 40
    h = label.shape[0]
    assert label[3 * h // 4 :].mean() > 0.1 and label[: h // 2].mean() < 0.01
    findings = verify(saved.content, services.marks)
    assert findings.ai_generated and findings.matches(watermark_id(image["id"]))
    assert (
        saved.headers["content-disposition"] == f'attachment; filename="imagine-{image["id"]}.png"'
    )
    meta = client.get(image["url"] + "/metadata", headers=auth(key)).json()["metadata"]
    assert meta["seed"] == 7 and meta["prompt"] == "me as an astronaut"

    gallery = client.get("/v1/gallery", headers=auth(key)).json()
    assert {i["id"] for i in gallery["items"]} == {i["id"] for i in job["images"]}
    assert {i["identity_id"] for i in gallery["items"]} == {identity["id"]}
    # filtered by the identity it was made from: another one (the same face, reframed: a
    # personal account holds one face) has none yet
    other = enroll(client, key, [astronaut_reframed()])
    for face, expected in ((identity["id"], 2), (other["id"], 0)):
        page = client.get("/v1/gallery", params={"identity_id": face}, headers=auth(key)).json()
        assert len(page["items"]) == expected

    assert client.delete(f"/v1/identities/{identity['id']}", headers=auth(key)).status_code == 204
    assert client.get("/v1/gallery", headers=auth(key)).json()["items"] == []
    assert client.get(image["url"], headers=auth(key)).status_code == 404


def _one_image(client, key: str) -> dict:
    ready(client)
    identity = enroll(client, key)
    r = client.post(
        "/v1/generations",
        headers=auth(key),
        json={"identity_id": identity["id"], "prompt": "me as an astronaut", **SMALL},
    )
    job = wait_for(client, key, r.json()["id"])
    assert job["status"] == "succeeded", job
    return job["images"][0]


def _stored_path(services, image_id: str, variant: str | None = None):
    with services.db.session() as s:
        key = s.get(ImageRow, image_id).storage_key
    return services.storage.path(variant_key(key, variant) if variant else key)


def test_an_image_whose_file_vanished_is_a_404_not_a_500(client, services, user_key):
    """A read that found the row while a DELETE removed the file (a probe saw 5 of 160
    concurrent reads answer 500) says the image is gone."""
    key = user_key("alice")
    image = _one_image(client, key)
    _stored_path(services, image["id"]).unlink()
    for params in ({}, {"download": "true"}):
        r = client.get(image["url"], params=params, headers=auth(key))
        assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found"), params


def test_the_labelled_download_is_rendered_once_kept_and_deleted_with_its_image(
    client, services, user_key
):
    key = user_key("alice")
    image = _one_image(client, key)
    first = client.get(image["url"], params={"download": "true"}, headers=auth(key))
    stored, kept = (
        _stored_path(services, image["id"]),
        _stored_path(services, image["id"], "labelled"),
    )
    assert kept.read_bytes() == first.content
    rendered_at = kept.stat().st_mtime_ns
    again = client.get(image["url"], params={"download": "true"}, headers=auth(key))
    assert again.content == first.content and kept.stat().st_mtime_ns == rendered_at
    assert client.delete(image["url"], headers=auth(key)).status_code == 204
    assert not kept.exists() and not stored.exists()
