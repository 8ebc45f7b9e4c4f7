"""The service runs InstantID: enrollment seals the face's keypoints next to the embedding,
the worker draws them for IdentityNet; an identity without keypoints is told to re-enroll."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import update

from api.main import create_app
from api.tables import Identity
from tests.api.conftest import SMALL, auth, enroll, ready, wait_for
from tests.identity.insightface_pack import ASTRONAUT, write_pack


def test_instantid_through_the_service(make_services, tmp_path):
    root = write_pack(tmp_path / "insightface", [ASTRONAUT], (512, 512))
    services = make_services(
        face_backend="insightface",
        insightface_root=root,
        insightface_pack="tiny",
        faceid_variant="instantid",
    )
    with TestClient(create_app(services), client=("127.0.0.1", 50000)) as client:
        from api.auth import create_user

        with services.db.session() as session:
            key = create_user(session, "ada")[1]
        ready(client)
        assert client.get("/readyz").json()["details"]["adapters"]["variant"] == "instantid"
        identity = enroll(client, key)
        assert identity["embedding_dim"] == 512 and "keypoints" not in identity
        with services.db.session() as session:
            row = session.get(Identity, identity["id"])
            assert row is not None and row.keypoints_encrypted is not None
            assert len(row.keypoints_encrypted) == 12 + 5 * 2 * 4 + 16  # nonce, [5, 2] f32, tag

        body = {"identity_id": identity["id"], "prompt": "me as an astronaut", "seed": 1, **SMALL}
        r = client.post("/v1/generations", headers=auth(key), json=body)
        assert r.status_code == 202, r.text
        job = wait_for(client, key, r.json()["id"])
        assert job["status"] == "succeeded", job.get("error")
        meta = client.get(job["images"][0]["url"] + "/metadata", headers=auth(key)).json()
        assert meta["metadata"]["adapters"]["variant"] == "instantid"

        # An identity from before keypoints were stored (migration 0008): re-enroll.
        with services.db.session() as session:
            session.execute(
                update(Identity)
                .where(Identity.id == identity["id"])
                .values(keypoints_encrypted=None)
            )
        r = client.post("/v1/generations", headers=auth(key), json=body)
        assert r.status_code == 422
        assert r.json()["error"]["code"] == "missing_face_keypoints"
        assert "enroll again" in r.json()["error"]["message"]
