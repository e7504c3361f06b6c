"""The outbox: notifications written in the same transaction as the change that causes them.

Delivery is at least once; every message carries an ``event_id`` so a receiver
can drop duplicates.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from portal.adapters.webhooks import EVENTS as WEBHOOK_EVENTS
from portal.db.bulk import insert_rows
from portal.db.dialects import on_postgresql
from portal.db.models import OutboxMessage
from portal.services.work import defer

log = logging.getLogger("portal.outbox")

MAX_ATTEMPTS = 8
LEASE = timedelta(minutes=5)
"""How long a sender holds the messages it leased before another sender may take them."""


def _row(channel: str, topic: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A new message's columns; its event id is new too."""
    return {"event_id": str(uuid.uuid4()), "channel": channel, "topic": topic, "payload": payload}


def enqueue(session: Session, channel: str, topic: str, payload: dict[str, Any]) -> OutboxMessage:
    """Add a message to the outbox; the caller's commit makes it real."""
    message = OutboxMessage(**_row(channel, topic, payload))
    session.add(message)
    defer(session, "deliver_outbox")
    return message


def email_payload(to: str, template: str, locale: str, context: dict[str, Any]) -> dict[str, Any]:
    """What an email message carries (``enqueue_email``, ``enqueue_emails``)."""
    return {"to": to, "template": template, "locale": locale, "context": context}


def enqueue_email(session: Session, to: str, template: str, locale: str, context: dict[str, Any]) -> OutboxMessage:
    return enqueue(session, "email", template, email_payload(to, template, locale, context))


def enqueue_emails(session: Session, payloads: list[dict[str, Any]]) -> None:
    """Add many emails (``email_payload``s) with one INSERT and no objects: for batches such as
    the escalation sweep's; the caller's commit makes them real."""
    if not payloads:
        return
    insert_rows(session, OutboxMessage, [_row("email", payload["template"], payload) for payload in payloads])
    defer(session, "deliver_outbox")


def enqueue_webhook(session: Session, topic: str, data: dict[str, Any]) -> OutboxMessage:
    """Queue a webhook event (one of ``portal.adapters.webhooks.EVENTS``); its ``event_id`` is the event's id."""
    if topic not in WEBHOOK_EVENTS:
        raise ValueError(f"unknown webhook event {topic!r}")
    return enqueue(session, "webhook", topic, {"topic": topic, "data": data})


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(30 * 2 ** (attempts - 1), 3600))


def _claim(session: Session, now: datetime, batch: int, skip_channels: Collection[str]) -> list[int]:
    """Lease up to ``batch`` due messages to this sender and commit the lease.

    A leased message is not due again until ``LEASE`` has passed: a sender killed mid-send
    leaves at most the message it was sending to be sent again, once the lease runs out.
    """
    stmt = (
        select(OutboxMessage.id)
        .where(
            OutboxMessage.sent_at.is_(None), OutboxMessage.available_at <= now, OutboxMessage.attempts < MAX_ATTEMPTS
        )
        .order_by(OutboxMessage.id)
        .limit(batch)
    )
    if skip_channels:
        stmt = stmt.where(OutboxMessage.channel.not_in(list(skip_channels)))
    if on_postgresql(session):
        stmt = stmt.with_for_update(skip_locked=True)
    else:
        # SQLite has no row locks: take the write lock before reading, so two senders queue
        # instead of both leasing the same rows.
        session.execute(update(OutboxMessage).where(OutboxMessage.id == -1).values(attempts=OutboxMessage.attempts))
    ids = list(session.scalars(stmt))
    if ids:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids))
            .values(attempts=OutboxMessage.attempts + 1, available_at=now + LEASE)
            .execution_options(synchronize_session=False)
        )
    session.commit()
    return ids


def deliver_pending(
    session: Session,
    send: Callable[[OutboxMessage], None],
    now: datetime | None = None,
    *,
    skip_channels: Collection[str] = (),
    batch: int = 50,
    budget_seconds: float = 60.0,
) -> tuple[int, int]:
    """Send due messages, each committed on its own as soon as it is sent. Returns (sent, failed).

    Keeps leasing batches until nothing is due or ``budget_seconds`` have passed, so a backlog
    drains in one run. A failure is recorded with its error and retried later with backoff; after
    MAX_ATTEMPTS the message stays in the table, visible, and is not retried. Messages on
    ``skip_channels`` (a channel with no transport configured) are not selected at all: they stay
    pending, untouched, and are not failures.
    """
    now = now or datetime.now(UTC)
    deadline = time.monotonic() + budget_seconds
    sent = failed = 0
    while time.monotonic() < deadline:
        ids = _claim(session, now, batch, skip_channels)
        if not ids:
            break
        for position, message_id in enumerate(ids):
            if time.monotonic() >= deadline:
                # Out of time: hand the rest of the lease back so the next run sends them at once.
                session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id.in_(ids[position:]), OutboxMessage.sent_at.is_(None))
                    .values(attempts=OutboxMessage.attempts - 1, available_at=now)
                    .execution_options(synchronize_session=False)
                )
                session.commit()
                break
            message = session.get_one(OutboxMessage, message_id)
            try:
                send(message)
            except Exception as exc:  # any delivery failure is recorded and retried
                message.last_error = f"{type(exc).__name__}: {exc}"[:2000]
                message.available_at = now + backoff(message.attempts)
                failed += 1
                log.warning("outbox message %s (%s) failed: %s", message.event_id, message.topic, message.last_error)
            else:
                message.sent_at = datetime.now(UTC)
                message.last_error = None
                sent += 1
            session.commit()
    return sent, failed
