"""What every change to a return request shares: the guarded move with its event row, the order
lock, loading a request for a change, and cleaning up photos a failed change left behind."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from portal.db.locks import lock_rows
from portal.db.models import Order, RequestEvent, ReturnRequest
from portal.domain import lifecycle
from portal.domain.actors import Actor
from portal.domain.errors import Conflict, NotFound
from portal.domain.lifecycle import Status
from portal.domain.money import plain_amount
from portal.domain.survey import FINISHED
from portal.services.survey import schedule_survey
from portal.storage import PhotoStore, StorageError

log = logging.getLogger("portal.returns")


def record_event(
    request: ReturnRequest,
    actor: Actor,
    kind: str,
    from_status: str | None = None,
    to_status: str | None = None,
    note: str = "",
    at: datetime | None = None,
) -> None:
    """A row on the request's timeline. The note is for people; no decision reads it back."""
    event = RequestEvent(actor=actor, kind=kind, from_status=from_status, to_status=to_status, note=note)
    if at is not None:
        event.at = at
    request.events.append(event)


def move(request: ReturnRequest, target: Status, actor: Actor, note: str = "", at: datetime | None = None) -> None:
    """Guarded transition with its event row; a request that is now finished (refunded, exchanged,
    rejected) gets its satisfaction survey's due row. The caller commits."""
    lifecycle.check_transition(request.status, target)
    record_event(request, actor, "status", request.status, target.value, note, at)
    request.status = target.value
    session = object_session(request)
    if target in FINISHED and session is not None:
        schedule_survey(session, request, at)


def lock_for_change(session: Session, request: ReturnRequest, expected_status: str | None = None) -> None:
    """Re-read the request under a row lock; a stale page (status changed meanwhile) raises Conflict."""
    lock_rows(session, ReturnRequest, ReturnRequest.id == request.id)
    session.refresh(request)
    if expected_status is not None and request.status != expected_status:
        session.rollback()
        raise Conflict(current=request.status)


def lock_order(session: Session, order_id: int) -> None:
    """Serialise changes to one order's requests until the caller commits.

    PostgreSQL locks the order row; SQLite has no row locks, so a no-op update
    takes the database write lock before anything is read.
    """
    lock_rows(session, Order, Order.id == order_id)


def discard_photos(store: PhotoStore | None, keys: list[str]) -> None:
    """Remove photos stored for a change that was then rolled back (nothing half-written stays)."""
    if store is None:
        return
    for key in keys:
        try:
            store.delete(key)
        except StorageError:
            log.warning("could not remove photo %s after a failed change", key)


def get_request_for_order(session: Session, order_id: int, rma: str) -> ReturnRequest:
    """A request by RMA, only if it belongs to ``order_id`` (anything else is NotFound)."""
    request = session.scalars(
        select(ReturnRequest).where(ReturnRequest.rma == rma, ReturnRequest.order_id == order_id)
    ).one_or_none()
    if request is None:
        raise NotFound()
    return request


def shopper_items(request: ReturnRequest) -> list[dict[str, Any]]:
    """The accepted lines as an email lists them: quantity, product, variant, outcome and value
    (a plain amount; the email formats it in the shopper's language)."""
    currency = request.order.currency
    return [
        {
            "quantity": line.quantity,
            "product": line.order_line.product_name,
            "variant": line.order_line.variant,
            "outcome": line.outcome,
            "value": plain_amount(line.value, currency),
            "currency": currency,
        }
        for line in request.accepted_lines
    ]
