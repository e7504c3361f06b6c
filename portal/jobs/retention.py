"""The retention job: on a timer, remove personal data of requests finished longer ago than
``PORTAL_RETENTION_DAYS`` (nothing while it is 0 / off). Each run does a bounded number of
batches, so a large backlog is worked off over several runs without holding the database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Flask

from portal.db import session_scope
from portal.services.audit import bind_client_address, unbind_client_address
from portal.services.privacy import (
    purge,
    retention_days,
    retry_photo_removals,
    scrub_sent_confirmations,
)
from portal.storage import store_from_config

# Every six hours is plenty for a setting counted in days.
EVERY_SECONDS = 6 * 3600.0
BATCH = 100
BATCHES_PER_RUN = 20


def retention_purge(app: Flask) -> dict[str, Any]:
    days = retention_days(app.config)
    store = store_from_config(app.config)
    token = bind_client_address("scheduler")
    try:
        with session_scope(app) as session:
            # Erasure confirmations lose their address once sent, whether retention is on or off.
            scrubbed = scrub_sent_confirmations(session)
            if days <= 0:
                return {"off": True, "confirmations_scrubbed": scrubbed}
            report = purge(session, store, days, datetime.now(UTC), batch=BATCH, max_batches=BATCHES_PER_RUN)
            retried = retry_photo_removals(session, store)
    finally:
        unbind_client_address(token)
    return {**report.erased.as_dict(), "photos_retried": retried, "confirmations_scrubbed": scrubbed}
