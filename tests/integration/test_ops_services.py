"""/readyz against the real services of scaled mode: Redis as the broker, an S3 server as the photo store."""

from __future__ import annotations

import os

import pytest

from portal import create_app
from portal.db import get_engine
from portal.storage import store_from_config
from tests.helpers import flushed_redis, service_missing
from tests.integration.s3_server import SeaweedS3, ServerFailed, find_weed

REDIS_URL = os.environ.get("PORTAL_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def make_app(app):
    made = []

    def make(**overrides):
        other = create_app({**{k: v for k, v in app.config.items() if k.isupper()}, **overrides})
        made.append(other)
        return other

    yield make
    for other in made:
        get_engine(other).dispose()


@pytest.fixture
def redis_url():
    with flushed_redis(REDIS_URL, flush=False):
        return REDIS_URL


@pytest.fixture(scope="module")
def s3_server():
    try:
        import boto3  # noqa: F401
    except ImportError:
        service_missing("boto3 not installed")
    weed = find_weed()
    if weed is None:
        service_missing("SeaweedFS (weed) not installed")
    server = SeaweedS3(weed, bucket="portal-ready")
    try:
        try:
            running = server.start()
        except ServerFailed as exc:
            pytest.fail(f"SeaweedFS did not start: {exc}", pytrace=False)
        yield running
    finally:
        server.stop()


@pytest.fixture
def s3_credentials(s3_server, monkeypatch, tmp_path):
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_readyz_pings_a_configured_broker(make_app, redis_url):
    body = make_app(BROKER_URL=redis_url).test_client().get("/readyz").get_json()
    assert body["status"] == "ready"
    assert body["checks"]["broker"]["state"] == "ok"


def test_readyz_heads_the_s3_bucket(make_app, s3_server, s3_credentials):
    s3 = dict(S3_ENDPOINT_URL=s3_server.endpoint_url, S3_REGION=s3_server.region)
    app = make_app(S3_BUCKET=s3_server.bucket, **s3)
    # The process makes its S3 client once (portal.storage.s3 keeps it), which on a slow, busy
    # machine can take most of the probes' 2 s: made first, so the probe times the HEAD itself.
    store_from_config(app.config).ping()
    ready = app.test_client().get("/readyz")
    assert ready.status_code == 200, ready.get_json()
    assert ready.get_json()["checks"]["photo_store"]["state"] == "ok"

    missing = make_app(S3_BUCKET="no-such-bucket-here", **s3).test_client().get("/readyz")
    assert missing.status_code == 503
    assert missing.get_json()["failing"] == ["photo_store"]
    assert "no-such-bucket" not in missing.get_data(as_text=True)


def test_readyz_with_wrong_s3_credentials_names_the_store_not_the_secret(
    make_app, s3_server, s3_credentials, monkeypatch
):
    from portal.storage import s3

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-value-123")
    monkeypatch.setattr(s3, "_clients", {})  # clients are kept per process: start a fresh one
    client = make_app(
        S3_BUCKET=s3_server.bucket, S3_ENDPOINT_URL=s3_server.endpoint_url, S3_REGION=s3_server.region
    ).test_client()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["failing"] == ["photo_store"]
    text = response.get_data(as_text=True)
    assert "wrong-secret" not in text and s3_server.access_key not in text and s3_server.endpoint_url not in text
