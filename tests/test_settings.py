from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from api.settings import ServiceSettings
from imagine.settings import Settings, SettingsError

README = Path(__file__).resolve().parents[1] / "README.md"


def test_defaults_need_no_environment():
    s = Settings.from_env({})
    assert s.face_backend == "dlib"
    assert s.max_upload_bytes == 10 * 1024 * 1024
    assert s.enrollment().limits.min_side == 256


def test_environment_overrides_defaults_and_flags_override_environment():
    env = {
        "IMAGINE_HOME": "/data/im",
        "IMAGINE_MAX_UPLOAD_BYTES": "2048",
        "IMAGINE_MIN_SHARPNESS": "9.5",
    }
    s = Settings.from_env(env, face_backend="insightface")
    assert s.home == Path("/data/im")
    assert s.enrollment().limits.max_bytes == 2048
    assert s.enrollment().thresholds.min_sharpness == 9.5
    assert s.face().backend == "insightface"


def test_bad_values_name_the_variable():
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"IMAGINE_MAX_UPLOAD_BYTES": "ten"})
    assert "IMAGINE_MAX_UPLOAD_BYTES" in str(err.value)
    with pytest.raises(SettingsError) as err:
        ServiceSettings.from_env({"IMAGINE_SQLITE_SYNCHRONOUS": "off"})
    assert "IMAGINE_SQLITE_SYNCHRONOUS" in str(err.value) and "'full'" in str(err.value)


def test_service_settings_extend_the_library_settings():
    env = {
        "IMAGINE_HOME": "/data/im",
        "IMAGINE_LOCAL_REGION": "US-CA",
        "IMAGINE_TRUSTED_PROXIES": "10.0.0.0/8, 2001:db8::/32",
        "IMAGINE_FORWARDED_HEADER": "Forwarded",
        "IMAGINE_GEO_MMDB": "a.mmdb,b.mmdb",
        "IMAGINE_ENROLL_REGIONS": "US,!US-IL",
        "IMAGINE_KEY_FILE": "/run/secrets/imagine.key",
    }
    s = ServiceSettings.from_env(env)
    assert s.key_file == Path("/run/secrets/imagine.key")
    assert ServiceSettings.from_env({}).key_file is None
    assert s.home == Path("/data/im") and s.face_backend == "dlib"
    assert [str(n) for n in s.trusted_networks()] == ["10.0.0.0/8", "2001:db8::/32"]
    assert s.forwarded_header == "forwarded"
    assert s.sqlite_synchronous == "normal"
    assert (
        ServiceSettings.from_env({"IMAGINE_SQLITE_SYNCHRONOUS": "FULL"}).sqlite_synchronous
        == "full"
    )
    region = s.region()
    assert region.local_region == "US-CA"
    assert region.geo.mmdb == (Path("a.mmdb"), Path("b.mmdb"))
    assert region.policy_overrides == (("enroll", ("US", "!US-IL")),)
    assert ServiceSettings.from_env({}).region().geo.resolver == "iptocc"


@pytest.mark.parametrize("cls", [Settings, ServiceSettings])
def test_every_setting_is_documented_in_the_readme(cls):
    text = README.read_text()
    missing = [
        f"IMAGINE_{f.name.upper()}"
        for f in dataclasses.fields(cls)
        if f"`IMAGINE_{f.name.upper()}`" not in text
    ]
    assert not missing, f"undocumented settings: {missing}"


def test_image_storage_is_one_url_with_the_older_folder_setting_kept():
    home = {"IMAGINE_HOME": "/data/im"}
    assert ServiceSettings.from_env(home).storage_location == "/data/im/images"
    older = ServiceSettings.from_env({**home, "IMAGINE_STORAGE_DIR": "/srv/images"})
    assert older.storage_location == "/srv/images" and older.images_dir == Path("/srv/images")
    s3 = ServiceSettings.from_env(
        {
            "IMAGINE_STORAGE_URL": "s3://bucket/prefix",
            "IMAGINE_S3_ENDPOINT_URL": "http://minio:9000",
            "IMAGINE_S3_PRESIGNED_REDIRECT": "true",
        }
    )
    assert s3.storage_location == "s3://bucket/prefix" and s3.s3_presigned_redirect
    assert s3.s3_endpoint_url == "http://minio:9000"
    bad = [
        ({"IMAGINE_STORAGE_URL": "/a", "IMAGINE_STORAGE_DIR": "/b"}, "IMAGINE_STORAGE_DIR"),
        ({"IMAGINE_STORAGE_URL": "gs://bucket"}, "IMAGINE_STORAGE_URL='gs://bucket'"),
        ({"IMAGINE_S3_PRESIGNED_REDIRECT": "true"}, "needs an s3://"),
    ]
    for env, said in bad:
        with pytest.raises(SettingsError) as err:
            ServiceSettings.from_env(env)
        assert said in str(err.value)
