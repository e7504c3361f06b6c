"""Getting the parcel back: book the pickup (pickup code and label), and follow the carrier's events."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.adapters.carriers import Carrier, PickupRequest
from portal.db.locks import lock_rows
from portal.db.models import CarrierEvent, ReturnRequest
from portal.domain.actors import SYSTEM, Actor
from portal.domain.codes import CodeError, new_pickup_code, parse_pickup_code
from portal.domain.errors import Conflict, NotFound
from portal.domain.lifecycle import Status
from portal.domain.text import N_
from portal.domain.tracking import MOVING, TrackingEvent
from portal.services.exchanges import exchanges_ready, reserve_exchange_stock
from portal.services.outbox import enqueue_webhook
from portal.services.timeline import move, record_event


class UnknownPickup(NotFound):
    """No request has this pickup code (or the code's check character is wrong)."""

    default = N_("No parcel with that pickup code.")


class PickupCancelled(Conflict):
    """The return behind this pickup code was cancelled: the code no longer works."""

    default = N_("This return was cancelled; its pickup code no longer works.")


class DuplicateEvent(Conflict):
    """This carrier event was already recorded."""

    default = N_("This tracking event was already recorded.")


def issue_label(
    session: Session,
    request: ReturnRequest,
    carrier: Carrier,
    actor: Actor = SYSTEM,
    at: datetime | None = None,
    instant_exchange: bool = False,
) -> str | None:
    """Book the pickup and move an approved request to "label issued" (no commit).

    Returnless refunds need no label. The pickup code is unique: a collision
    (50 random bits, so practically never) draws again.
    """
    if not request.pickup_code:
        reserve_exchange_stock(session, request, actor)
        if instant_exchange:
            exchanges_ready(session, request, actor, instant=True)
    if request.returnless or request.pickup_code:
        return request.pickup_code
    for _ in range(5):
        code = new_pickup_code()
        if session.scalar(select(ReturnRequest.id).where(ReturnRequest.pickup_code == code)) is None:
            break
    order = request.order
    booking = carrier.request_pickup(
        PickupRequest(request.rma, (order.customer_name, order.customer_postcode or ""), ("Returns warehouse",)), code
    )
    request.pickup_code, request.carrier = booking.pickup_code, booking.carrier
    request.label_issued_at = at or datetime.now(UTC)
    move(request, Status.LABEL_ISSUED, actor, f"pickup booked with {booking.carrier}", at=at)
    return request.pickup_code


def record_tracking_event(session: Session, event: TrackingEvent, carrier_name: str) -> ReturnRequest:
    """Record a carrier event on the request's timeline; the first movement puts it "in transit".

    Unknown codes and replayed event ids raise without writing anything.
    """
    try:
        code = parse_pickup_code(event.pickup_code, accept_legacy=True)
    except CodeError:
        raise UnknownPickup() from None
    lock_rows(session, ReturnRequest, ReturnRequest.pickup_code == code)
    request = session.scalars(
        select(ReturnRequest).where(ReturnRequest.pickup_code == code).execution_options(populate_existing=True)
    ).one_or_none()
    if request is None:
        session.rollback()
        raise UnknownPickup()
    if request.status == Status.CANCELLED.value:
        session.rollback()
        raise PickupCancelled()
    if session.scalar(select(CarrierEvent.id).where(CarrierEvent.event_id == event.event_id)) is not None:
        session.rollback()
        raise DuplicateEvent()
    session.add(
        CarrierEvent(
            event_id=event.event_id,
            request_id=request.id,
            carrier=carrier_name,
            kind=event.kind,
            at=event.at,
            location=event.location,
        )
    )
    note = f"{carrier_name}: {event.kind}" + (f" at {event.location}" if event.location else "")
    actor = Actor.carrier(carrier_name)
    if event.kind in MOVING and request.status == Status.LABEL_ISSUED.value:
        move(request, Status.IN_TRANSIT, actor, note, at=event.at)
        enqueue_webhook(
            session,
            "return.in_transit",
            {"rma": request.rma, "order_number": request.order.order_number, "pickup_code": code},
        )
    else:
        record_event(request, actor, "tracking", note=note, at=event.at)
    try:
        session.commit()
    except IntegrityError:  # the same event id raced in from a second delivery
        session.rollback()
        raise DuplicateEvent() from None
    return request
