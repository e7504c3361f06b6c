"""What every blueprint's views share: full page or htmx fragment, photos, safe redirects."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import abort, current_app, render_template, request

from portal.storage import StorageError, store_from_config


def is_htmx() -> bool:
    """True for htmx requests that want a fragment (boosted navigation wants the whole page)."""
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-Boosted") != "true"


def render_page_or_partial(full: str, fragment: str, /, *, http_status: int = 200, **context):
    """The one place that decides between a full page and an htmx fragment."""
    body = render_template(fragment if is_htmx() else full, **context)
    return body, http_status, {"Vary": "HX-Request"}


IMAGE_HEADERS = {
    "Content-Type": "image/jpeg",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, no-store",
}


def photo_bytes(key: str) -> bytes:
    """A stored photo's bytes, or 404 when the store no longer has it."""
    try:
        return store_from_config(current_app.config).get(key)
    except StorageError:
        abort(404)


def image_response(data: bytes):
    """Photos go out as JPEG with a fixed type, never sniffed, never cached."""
    return data, 200, IMAGE_HEADERS


def safe_next(target: str | None, default: str) -> str:
    """Only same-site relative paths; anything else goes to ``default``."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target
