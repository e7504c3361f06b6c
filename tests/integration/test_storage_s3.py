"""Photo storage in an S3 bucket, against a real S3-compatible server (SeaweedFS on loopback)."""

from __future__ import annotations

import io
import re
import secrets
import time
import urllib.error
import urllib.request

import pytest
from sqlalchemy import select

from portal.config import load
from portal.db.models import Photo
from portal.storage import LocalPhotoStore, StorageError, new_key, store_from_config
from tests.helpers import form_for, jpeg, login_shopper, service_missing
from tests.integration.s3_server import SeaweedS3, ServerFailed, find_weed, free_ports


def require_boto3():
    try:
        import boto3  # noqa: F401
    except ImportError:
        service_missing("boto3 not installed")


@pytest.fixture(scope="session")
def s3_server():
    require_boto3()
    weed = find_weed()
    if weed is None:
        service_missing("SeaweedFS (weed) not installed")
    server = SeaweedS3(weed)
    try:
        try:
            running = server.start()
        except ServerFailed as exc:
            pytest.fail(f"SeaweedFS did not start: {exc}", pytrace=False)
        yield running
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """Credentials the boto3 way (placeholders here), and nothing from the developer's own AWS setup."""
    require_boto3()
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "placeholder-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "placeholder-secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def s3_credentials(aws_env, s3_server, monkeypatch):
    """The test server's key pair, as the application would find it in production."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)


@pytest.fixture
def prefix():
    """Each test works under its own prefix in the shared bucket."""
    return f"t-{secrets.token_hex(4)}/"


@pytest.fixture
def store(s3_server, s3_credentials, prefix):
    from portal.storage.s3 import S3PhotoStore

    return S3PhotoStore(s3_server.bucket, endpoint_url=s3_server.endpoint_url, region=s3_server.region, prefix=prefix)


def listed(s3_server, prefix: str) -> list[str]:
    client = s3_server.client()
    response = client.list_objects_v2(Bucket=s3_server.bucket, Prefix=prefix)
    return sorted(item["Key"] for item in response.get("Contents", []))


def test_put_get_delete_roundtrip(store, s3_server, prefix):
    data = jpeg()
    key = new_key(".jpg")
    store.put(key, data, "image/jpeg")
    assert store.get(key) == data
    head = s3_server.client().head_object(Bucket=s3_server.bucket, Key=prefix + key)
    assert head["ContentType"] == "image/jpeg"
    assert head["ContentLength"] == len(data)
    store.delete(key)
    assert listed(s3_server, prefix) == []
    with pytest.raises(StorageError):
        store.get(key)
    store.delete(key)  # deleting twice is not an error, as with the local folder


def test_content_type_is_the_one_given(store, s3_server, prefix):
    key = new_key(".png")
    store.put(key, b"\x89PNG\r\n\x1a\n-not-really", "image/png")
    assert s3_server.client().head_object(Bucket=s3_server.bucket, Key=prefix + key)["ContentType"] == "image/png"


def test_missing_key_is_a_storage_error(store):
    with pytest.raises(StorageError, match="no such photo"):
        store.get(new_key(".jpg"))


def test_keys_carry_the_prefix(s3_server, s3_credentials, prefix):
    from portal.storage.s3 import S3PhotoStore

    # The prefix is normalised: no leading slash, exactly one trailing slash.
    store = S3PhotoStore(s3_server.bucket, endpoint_url=s3_server.endpoint_url, prefix="/" + prefix.rstrip("/"))
    key = new_key(".jpg")
    store.put(key, b"photo", "image/jpeg")
    assert listed(s3_server, prefix) == [prefix + key]
    assert re.fullmatch(r"t-[0-9a-f]{8}/photos/\d{4}/\d{2}/[0-9a-f]{32}\.jpg", listed(s3_server, prefix)[0])
    assert store.get(key) == b"photo"
    unprefixed = S3PhotoStore(s3_server.bucket, endpoint_url=s3_server.endpoint_url)
    with pytest.raises(StorageError):
        unprefixed.get(key)


@pytest.mark.parametrize(
    "key", ["", "/photos/a.jpg", "../a.jpg", "photos/../../a.jpg", "photos//a.jpg", "photos/./a.jpg"]
)
def test_unsafe_keys_are_refused(aws_env, key):
    from portal.storage.s3 import S3PhotoStore

    (port,) = free_ports(1)
    store = S3PhotoStore("photos", endpoint_url=f"http://127.0.0.1:{port}", prefix="shop")
    for call in (
        lambda: store.put(key, b"x", "image/jpeg"),
        lambda: store.get(key),
        lambda: store.delete(key),
        lambda: store.presigned_url(key),
    ):
        with pytest.raises(StorageError, match="invalid photo key"):  # refused before any request is made
            call()


def test_presigned_url_works_then_expires(store, s3_server, prefix):
    data = jpeg((10, 20, 30))
    key = new_key(".jpg")
    store.put(key, data, "image/png")  # the address serves it as a JPEG whatever was stored
    unsigned = f"{s3_server.endpoint_url}/{s3_server.bucket}/{prefix}{key}"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(unsigned, timeout=5)
    assert refused.value.code == 403  # the bucket is not public: only signed requests get in
    refused.value.close()

    url = store.presigned_url(key, expires=1)
    signed_at = time.monotonic()
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "image/jpeg"
        assert response.read() == data

    time.sleep(max(0.0, 2.5 - (time.monotonic() - signed_at)))
    with pytest.raises(urllib.error.HTTPError) as expired:
        urllib.request.urlopen(url, timeout=5)
    assert expired.value.code == 403
    expired.value.close()


def test_unreachable_endpoint_fails_quickly(aws_env):
    from portal.storage.s3 import S3PhotoStore

    (port,) = free_ports(1)  # nothing listens there
    store = S3PhotoStore("photos", endpoint_url=f"http://127.0.0.1:{port}")
    for call in (
        lambda: store.put(new_key(), b"x", "image/jpeg"),
        lambda: store.get(new_key()),
        lambda: store.delete(new_key()),
    ):
        started = time.monotonic()
        with pytest.raises(StorageError, match="EndpointConnectionError"):
            call()
        assert time.monotonic() - started < 8  # three attempts with short back-off, no hang


def test_one_client_per_process(aws_env, monkeypatch):
    from portal.storage import s3

    first = s3.S3PhotoStore("photos", endpoint_url="http://127.0.0.1:9")
    second = s3.S3PhotoStore("other", endpoint_url="http://127.0.0.1:9")
    parent = first.client
    assert parent is first.client is second.client  # store_from_config runs per request: no new client each time
    monkeypatch.setattr(s3, "_clients_pid", -1)  # the cache was filled by another process, as after a fork
    child = first.client
    assert child is not parent
    assert second.client is child


def test_store_from_config_chooses_s3_when_a_bucket_is_set(aws_env, tmp_path, monkeypatch):
    from portal.storage.s3 import S3PhotoStore

    assert isinstance(store_from_config({"PHOTO_PATH": str(tmp_path)}), LocalPhotoStore)
    assert isinstance(store_from_config({"PHOTO_PATH": str(tmp_path), "S3_BUCKET": ""}), LocalPhotoStore)
    monkeypatch.setenv("PORTAL_S3_BUCKET", "shop-photos")
    monkeypatch.setenv("PORTAL_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("PORTAL_S3_PREFIX", "returns")
    monkeypatch.delenv("PORTAL_S3_REGION", raising=False)
    cfg = load({"INSTANCE_PATH": str(tmp_path / "instance")})
    assert (cfg["S3_BUCKET"], cfg["S3_ENDPOINT_URL"], cfg["S3_REGION"], cfg["S3_PREFIX"]) == (
        "shop-photos",
        "http://127.0.0.1:9",
        "us-east-1",
        "returns",
    )
    store = store_from_config(cfg)
    assert isinstance(store, S3PhotoStore)
    assert (store.bucket, store.endpoint_url, store.region, store.prefix) == (
        "shop-photos",
        "http://127.0.0.1:9",
        "us-east-1",
        "returns/",
    )


def test_shopper_photo_lands_in_the_bucket_and_is_served_back(
    app, client, order, session, s3_server, s3_credentials, prefix
):
    app.config.update(
        S3_BUCKET=s3_server.bucket, S3_ENDPOINT_URL=s3_server.endpoint_url, S3_REGION=s3_server.region, S3_PREFIX=prefix
    )
    assert login_shopper(client).status_code == 303
    photo = jpeg((0, 90, 0))
    data = form_for(
        client, **{"0": {"quantity": "1", "reason": "damaged", "comment": "torn seam", "outcome": "refund"}}
    )
    data["lines-0-photos"] = [(io.BytesIO(photo), "my holiday snap.jpg")]
    response = client.post("/order/request", data=data, content_type="multipart/form-data")
    assert response.status_code == 303
    rma = response.headers["Location"].rsplit("/", 1)[1]

    stored = session.scalars(select(Photo)).one()
    keys = listed(s3_server, prefix)
    assert prefix + stored.storage_key in keys
    assert all("holiday" not in k for k in keys)
    assert set(keys) <= {prefix + stored.storage_key, prefix + (stored.thumb_key or "")}
    in_bucket = s3_server.client().get_object(Bucket=s3_server.bucket, Key=prefix + stored.storage_key)
    assert in_bucket["ContentType"] == "image/jpeg"
    body = in_bucket["Body"].read()
    in_bucket["Body"].close()
    assert body[:3] == b"\xff\xd8\xff"
    # Nothing went to the local photo folder.
    local = LocalPhotoStore(app.config["PHOTO_PATH"]).root
    assert not local.exists() or not any(p.is_file() for p in local.rglob("*"))

    served = client.get(f"/requests/{rma}/photos/{stored.id}")
    assert served.status_code == 200
    assert served.headers["Content-Type"] == "image/jpeg"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert served.data == body


def test_retention_removes_a_finished_orders_photos_from_the_bucket(store, s3_server, prefix, app, client, session):
    from datetime import UTC, datetime, timedelta

    from portal.services.privacy import purge
    from tests.helpers import inspected

    req = inspected(app, client, session)
    req.status = "closed"  # finished (how it got there is not the point here)
    keys = [new_key(".jpg"), new_key(".jpg")]
    for key in keys:
        store.put(key, jpeg(), "image/jpeg")
    session.add(
        Photo(
            request_id=req.id,
            line_id=req.lines[0].id,
            storage_key=keys[0],
            thumb_key=keys[1],
            content_type="image/jpeg",
            width=640,
            height=480,
            size=100,
            sha256="f" * 64,
        )
    )
    session.commit()
    assert len(listed(s3_server, prefix)) == 2
    report = purge(session, store, 30, datetime.now(UTC) + timedelta(days=31))
    assert report.erased.photos == 1 and report.erased.photo_errors == 0
    assert listed(s3_server, prefix) == []
    with pytest.raises(StorageError):
        store.get(keys[0])
