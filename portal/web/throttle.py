"""Attempt limits that hold under concurrency.

Each attempt is counted *before* it is checked (one atomic increment in the limiter's
storage: memory, or Redis when ``RATELIMIT_STORAGE_URI`` points at it), so concurrent
requests cannot all pass the check before any of them is counted. An attempt that turns
out fine (the right details) is handed back, so only failures use up the allowance.

While the shared storage (Redis) cannot be reached, attempts are counted in this process
instead: limits still hold, per process, and the shopper or staff member gets an answer rather
than an error. Counting goes back to the shared storage by itself once it answers again.
"""

from __future__ import annotations

import logging
import threading
import time

from flask import current_app
from limits import RateLimitItem, errors, parse
from limits.storage import MemoryStorage
from limits.strategies import RateLimiter

from portal.extensions import limiter


class Throttled(Exception):
    """Too many attempts; ``retry_after`` seconds until the window resets."""

    def __init__(self, retry_after: int, hint: str | None = None) -> None:
        super().__init__(f"too many attempts, retry after {retry_after}s")
        self.retry_after = retry_after
        self.hint = hint  # which advice the 429 page adds, e.g. "lookup_order"


log = logging.getLogger("portal.throttle")
_fallback: RateLimiter | None = None
_fallback_lock = threading.Lock()


def _store_errors() -> tuple[type[BaseException], ...]:
    """What the shared storage raises when it cannot be reached (Redis: its connection errors)."""
    base = getattr(limiter.storage, "base_exceptions", ())
    return (errors.StorageError, *(base if isinstance(base, tuple) else (base,)))


def _local(exc: BaseException) -> RateLimiter:
    """The in-process limiter of the same strategy, used while the shared storage is unreachable."""
    global _fallback
    log.warning("rate-limit storage unreachable (%s): counting attempts in this process", type(exc).__name__)
    with _fallback_lock:
        if _fallback is None:
            _fallback = type(limiter.limiter)(MemoryStorage())
        return _fallback


def _enabled() -> bool:
    return bool(current_app.config.get("RATELIMIT_ENABLED", True)) and limiter.enabled


def _item(limit: str) -> RateLimitItem:
    return parse(limit)


def count_attempt(scope: str, key: str, limit: str) -> bool:
    """Count one attempt against ``limit`` for (``scope``, ``key``); False once the allowance is spent."""
    if not _enabled():
        return True
    try:
        return bool(limiter.limiter.hit(_item(limit), scope, key))
    except _store_errors() as exc:
        return bool(_local(exc).hit(_item(limit), scope, key))


def forgive(scope: str, key: str, limit: str) -> None:
    """Hand back an attempt counted with ``count_attempt`` (it succeeded)."""
    if not _enabled():
        return
    item = _item(limit)
    try:
        limiter.storage.incr(item.key_for(scope, key), item.get_expiry(), amount=-1)
    except _store_errors() as exc:
        _local(exc).storage.incr(item.key_for(scope, key), item.get_expiry(), amount=-1)


def retry_after(scope: str, key: str, limit: str) -> int:
    """Seconds until the window of (``scope``, ``key``) resets (at least 1)."""
    if not _enabled():
        return 1
    try:
        stats = limiter.limiter.get_window_stats(_item(limit), scope, key)
    except _store_errors() as exc:
        stats = _local(exc).get_window_stats(_item(limit), scope, key)
    return max(int(stats.reset_time - time.time()), 1)
