"""Attempt limits that hold under concurrency.

Each attempt is counted *before* it is checked (one atomic increment in the limiter's
storage: memory, or Redis when ``RATELIMIT_STORAGE_URI`` points at it), so concurrent
requests cannot all pass the check before any of them is counted. An attempt that turns
out fine (the right details) is handed back, so only failures use up the allowance.
"""

from __future__ import annotations

import time

from flask import current_app
from limits import RateLimitItem, parse

from portal.extensions import limiter


class Throttled(Exception):
    """Too many attempts; ``retry_after`` seconds until the window resets."""

    def __init__(self, retry_after: int, hint: str | None = None) -> None:
        super().__init__(f"too many attempts, retry after {retry_after}s")
        self.retry_after = retry_after
        self.hint = hint  # which advice the 429 page adds, e.g. "lookup_order"


def _enabled() -> bool:
    return bool(current_app.config.get("RATELIMIT_ENABLED", True)) and limiter.enabled


def _item(limit: str) -> RateLimitItem:
    return parse(limit)


def count_attempt(scope: str, key: str, limit: str) -> bool:
    """Count one attempt against ``limit`` for (``scope``, ``key``); False once the allowance is spent."""
    if not _enabled():
        return True
    return bool(limiter.limiter.hit(_item(limit), scope, key))


def forgive(scope: str, key: str, limit: str) -> None:
    """Hand back an attempt counted with ``count_attempt`` (it succeeded)."""
    if not _enabled():
        return
    item = _item(limit)
    limiter.storage.incr(item.key_for(scope, key), item.get_expiry(), amount=-1)


def retry_after(scope: str, key: str, limit: str) -> int:
    """Seconds until the window of (``scope``, ``key``) resets (at least 1)."""
    if not _enabled():
        return 1
    stats = limiter.limiter.get_window_stats(_item(limit), scope, key)
    return max(int(stats.reset_time - time.time()), 1)
