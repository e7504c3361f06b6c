"""Photo storage behind one small interface; the local folder is the default backend."""

from __future__ import annotations

import os
import secrets
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol


class StorageError(Exception):
    """The store could not save or read an object."""


class PhotoStore(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> None: ...
    def get(self, key: str) -> bytes: ...
    def delete(self, key: str) -> None: ...
    def ping(self) -> None: ...


def new_key(suffix: str = ".jpg") -> str:
    """A server-generated key; the shopper's file name never reaches storage."""
    now = datetime.now(UTC)
    return f"photos/{now:%Y/%m}/{secrets.token_hex(16)}{suffix}"


class LocalPhotoStore:
    """Photos in a folder outside ``static/``; writes are atomic (temp file, then rename)."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise StorageError("key escapes the photo folder")
        return path

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except OSError as exc:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            raise StorageError(str(exc)) from exc

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except OSError as exc:
            raise StorageError(str(exc)) from exc

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(str(exc)) from exc

    def ping(self) -> None:
        """Readiness: the folder exists (or can be made) and a file can really be written in it."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".ping-")
            os.close(fd)
            os.unlink(tmp)
        except OSError as exc:
            raise StorageError(f"photo folder not writable: {type(exc).__name__}") from exc


def store_from_config(config) -> PhotoStore:
    """An S3 bucket when ``S3_BUCKET`` is set, otherwise the local photo folder."""
    if config.get("S3_BUCKET"):
        from portal.storage.s3 import S3PhotoStore  # noqa: PLC0415 - boto3 is the optional s3 extra

        return S3PhotoStore(
            config["S3_BUCKET"],
            endpoint_url=config.get("S3_ENDPOINT_URL"),
            region=config.get("S3_REGION") or "us-east-1",
            prefix=config.get("S3_PREFIX") or "",
        )
    return LocalPhotoStore(config["PHOTO_PATH"])
