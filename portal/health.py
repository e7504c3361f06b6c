"""Readiness: can this process reach what it needs (database, broker, photo store)?

Each check runs on its own daemon thread and the whole answer is bounded by one deadline, so a
hung connection makes the probe fail fast instead of hanging it. Failures are reported by the
kind of error only: no addresses, user names or passwords reach the answer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text

from portal.storage import store_from_config

TIMEOUT = 2.0  # seconds for all checks together


@dataclass
class Check:
    name: str
    state: str = "timeout"  # ok | failed | timeout | not configured
    error: str | None = None
    seconds: float | None = None

    def as_dict(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"state": self.state}
        if self.error:
            answer["error"] = self.error
        if self.seconds is not None:
            answer["ms"] = round(self.seconds * 1000, 1)
        return answer


def ping_database(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def ping_broker(url: str, timeout: float) -> None:
    import redis  # noqa: PLC0415 - the optional "redis" extra, needed only when a broker is configured

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    finally:
        client.close()


def _run(check: Check, probe: Callable[[], None]) -> None:
    started = time.monotonic()
    try:
        probe()
    except Exception as exc:  # a probe's failure is the answer, never an error page
        check.state, check.error = "failed", type(exc).__name__
    else:
        check.state = "ok"
    check.seconds = time.monotonic() - started


def readiness(engine: Engine, config: Mapping[str, Any], timeout: float = TIMEOUT) -> tuple[bool, list[Check]]:
    """Run every check at once; ready when each one answered ok within ``timeout``."""
    probes: list[tuple[Check, Callable[[], None] | None]] = [
        (Check("database"), lambda: ping_database(engine)),
        (Check("photo_store"), lambda: store_from_config(config).ping()),
    ]
    broker = config.get("BROKER_URL")
    probes.append((Check("broker"), (lambda: ping_broker(broker, timeout / 2)) if broker else None))
    running: list[tuple[Check, threading.Thread]] = []
    checks: list[Check] = []
    for check, probe in probes:
        if probe is None:
            check.state = "not configured"
            checks.append(check)
            continue
        thread = threading.Thread(target=_run, args=(check, probe), daemon=True, name=f"portal-ready-{check.name}")
        thread.start()
        running.append((check, thread))
    deadline = time.monotonic() + timeout
    for check, thread in running:
        thread.join(max(deadline - time.monotonic(), 0))
        # A probe still running is reported as timed out; it finishes (or not) on its own.
        checks.append(Check(check.name) if thread.is_alive() else check)
    order = [check.name for check, _ in probes]
    checks.sort(key=lambda c: order.index(c.name))
    return all(c.state in ("ok", "not configured") for c in checks), checks
