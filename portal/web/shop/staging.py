"""Photos kept for a shopper between pages: chosen once, they survive "Check what is possible",
Back and a refused submit, until the request is filed or the shopper removes them.

The cleaned photo and its thumbnail go to the photo store under ``staging/<order>/<id>``; the
shopper's session lists them per order line (id, file name, type), so only that session can
see or use them. Filing copies them into the request and drops the staged copies.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from flask import session

from portal.storage import PhotoStore, StorageError
from portal.vision.intake import CleanPhoto

SESSION_KEY = "staged_photos"


def _key(order_id: int, photo_id: str, thumb: bool = False) -> str:
    return f"staging/{order_id}/{photo_id}{'-t' if thumb else ''}.img"


def _all(order_id: int) -> dict[str, list[dict[str, Any]]]:
    data = session.get(SESSION_KEY)
    if not isinstance(data, dict) or data.get("order") != order_id:
        return {}
    lines = data.get("lines")
    return lines if isinstance(lines, dict) else {}


def _save(order_id: int, lines: dict[str, list[dict[str, Any]]]) -> None:
    session[SESSION_KEY] = {"order": order_id, "lines": {k: v for k, v in lines.items() if v}}


def staged(order_id: int) -> dict[str, list[dict[str, Any]]]:
    """line_id -> the photos kept for it, each ``{"id", "name", "type"}``."""
    return _all(order_id)


def count(order_id: int, line_id: str) -> int:
    return len(_all(order_id).get(line_id, []))


def stage(store: PhotoStore, order_id: int, line_id: str, photo: CleanPhoto, name: str) -> dict[str, Any]:
    """Keep one cleaned photo for a line (raises StorageError when the store is down)."""
    photo_id = secrets.token_hex(8)
    store.put(_key(order_id, photo_id), photo.data, photo.content_type)
    if photo.thumbnail:
        store.put(_key(order_id, photo_id, thumb=True), photo.thumbnail, photo.content_type)
    entry = {
        "id": photo_id,
        "name": name[-60:],
        "type": photo.content_type,
        "w": photo.width,
        "h": photo.height,
        "sha": photo.sha256,
    }
    lines = _all(order_id)
    lines.setdefault(line_id, []).append(entry)
    _save(order_id, lines)
    return entry


def unstage(store: PhotoStore, order_id: int, line_id: str, photo_ids: set[str]) -> None:
    lines = _all(order_id)
    kept = []
    for entry in lines.get(line_id, []):
        if entry["id"] in photo_ids:
            _drop(store, order_id, entry["id"])
        else:
            kept.append(entry)
    lines[line_id] = kept
    _save(order_id, lines)


def load(store: PhotoStore, order_id: int, line_id: str) -> list[CleanPhoto]:
    """The kept photos of a line, ready to file (a photo whose copy is gone is left out)."""
    photos = []
    for entry in _all(order_id).get(line_id, []):
        try:
            data = store.get(_key(order_id, entry["id"]))
        except (KeyError, FileNotFoundError, StorageError):
            continue
        try:
            thumbnail = store.get(_key(order_id, entry["id"], thumb=True))
        except (KeyError, FileNotFoundError, StorageError):
            thumbnail = b""
        photos.append(
            CleanPhoto(
                data=data,
                width=int(entry.get("w") or 0),
                height=int(entry.get("h") or 0),
                sha256=str(entry.get("sha") or hashlib.sha256(data).hexdigest()),
                thumbnail=thumbnail,
                content_type=str(entry.get("type") or "image/jpeg"),
            )
        )
    return photos


def thumbnail(store: PhotoStore, order_id: int, photo_id: str) -> tuple[bytes, str] | None:
    """A kept photo's thumbnail for this session's order, or None."""
    for entries in _all(order_id).values():
        for entry in entries:
            if entry["id"] == photo_id:
                try:
                    return store.get(_key(order_id, photo_id, thumb=True)), str(entry.get("type") or "image/jpeg")
                except (KeyError, FileNotFoundError, StorageError):
                    return None
    return None


def clear(store: PhotoStore, order_id: int) -> None:
    """Drop every kept photo (after filing)."""
    for entries in _all(order_id).values():
        for entry in entries:
            _drop(store, order_id, entry["id"])
    session.pop(SESSION_KEY, None)


def _drop(store: PhotoStore, order_id: int, photo_id: str) -> None:
    for thumb in (False, True):
        try:
            store.delete(_key(order_id, photo_id, thumb))
        except (KeyError, FileNotFoundError, StorageError):
            pass
