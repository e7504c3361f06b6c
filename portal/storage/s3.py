"""Photos in an S3-compatible bucket (AWS S3, MinIO, SeaweedFS, ...).

Credentials are found the usual boto3 way (``AWS_ACCESS_KEY_ID`` and
``AWS_SECRET_ACCESS_KEY``, a shared credentials file, an instance role); they
are never part of the portal's own configuration.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from portal.storage import StorageError

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:  # pragma: no cover - the "s3" extra is not installed
    boto3 = None

MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
PRESIGNED_CONTENT_TYPE = "image/jpeg"

# One client per (endpoint, region) and per process: creating a client is slow,
# store_from_config runs on every request, and a client must not cross a fork.
_clients: dict[tuple[str | None, str], Any] = {}
_clients_pid: int | None = None
_clients_lock = threading.Lock()


def _reset_lock_after_fork() -> None:
    global _clients_lock
    _clients_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_lock_after_fork)


def _make_client(endpoint_url: str | None, region: str):
    options: dict[str, Any] = {
        "retries": {"max_attempts": 3, "mode": "standard"},
        "connect_timeout": 3,
        "read_timeout": 10,
        "signature_version": "s3v4",
    }
    if endpoint_url:
        options["s3"] = {"addressing_style": "path"}
    # A session of its own: the default boto3 session is not safe to share between threads.
    session = boto3.session.Session()
    return session.client("s3", endpoint_url=endpoint_url or None, region_name=region, config=Config(**options))


def _client_for(endpoint_url: str | None, region: str):
    global _clients_pid
    with _clients_lock:
        pid = os.getpid()
        if _clients_pid != pid:
            _clients.clear()
            _clients_pid = pid
        key = (endpoint_url, region)
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = _make_client(endpoint_url, region)
        return client


def _short(action: str, exc: Exception) -> str:
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code") or "error"
        return f"S3 {action} failed: {code}"
    return f"S3 {action} failed: {type(exc).__name__}"


class S3PhotoStore:
    """Photos as objects under ``prefix`` in one bucket; keys come from ``new_key()``."""

    def __init__(self, bucket: str, *, endpoint_url: str | None = None, region: str = "us-east-1", prefix: str = ""):
        if boto3 is None:
            raise StorageError("S3 storage needs boto3 (install the 's3' extra)")
        if not bucket:
            raise StorageError("no S3 bucket configured")
        self.bucket = bucket
        self.endpoint_url = endpoint_url or None
        self.region = region or "us-east-1"
        prefix = (prefix or "").strip("/")
        self.prefix = f"{prefix}/" if prefix else ""

    @property
    def client(self):
        return _client_for(self.endpoint_url, self.region)

    def object_key(self, key: str) -> str:
        """The object's name in the bucket: the prefix, then the store key."""
        if not key or key.startswith("/") or any(part in ("", ".", "..") for part in key.split("/")):
            raise StorageError("invalid photo key")
        return self.prefix + key

    def put(self, key: str, data: bytes, content_type: str) -> None:
        name = self.object_key(key)
        try:
            self.client.put_object(Bucket=self.bucket, Key=name, Body=data, ContentType=content_type)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(_short("put", exc)) from exc

    def get(self, key: str) -> bytes:
        name = self.object_key(key)
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=name)["Body"]
            try:
                return body.read()
            finally:
                body.close()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in MISSING_CODES:
                raise StorageError("no such photo") from exc
            raise StorageError(_short("get", exc)) from exc
        except BotoCoreError as exc:
            raise StorageError(_short("get", exc)) from exc

    def delete(self, key: str) -> None:
        name = self.object_key(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=name)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(_short("delete", exc)) from exc

    def ping(self) -> None:
        """Readiness: the bucket exists and our credentials reach it (one HEAD request)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(_short("head_bucket", exc)) from exc

    def presigned_url(self, key: str, expires: int = 60) -> str:
        """A short-lived GET address for one photo, always served as a JPEG."""
        name = self.object_key(key)
        try:
            return self.client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": name, "ResponseContentType": PRESIGNED_CONTENT_TYPE},
                ExpiresIn=int(expires),
            )
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(_short("presign", exc)) from exc
