"""The shopper's return request: check it, open it, follow it, cancel it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, aliased

from portal.domain.actors import POLICY, SHOPPER, SYSTEM, Actor, ActorKind
from portal.db.models import Order, Photo, RequestEvent, ReturnLine, ReturnRequest, Variant
from portal.domain import lifecycle
from portal.domain.codes import new_rma
from portal.domain.lifecycle import Status
from portal.domain.policy import Decision, LineChoice, LineDecision, LineFacts, OrderFacts, Policy, Verdict, decide, precheck_line
from portal.domain.reasons import responsibility_of
from portal.services import Conflict, NotFound
from portal.services.outbox import enqueue_email, enqueue_webhook
from portal.services.tickets import open_ticket, ticket_for
from portal.storage import PhotoStore, StorageError, new_key
from portal.vision.intake import CleanPhoto

log = logging.getLogger("portal.returns")

RELEASED = [s.value for s in lifecycle.RELEASED]


# Rules staff may override for a shopper (goodwill); the others protect stock and arithmetic.
OVERRIDABLE_RULES = frozenset({"window", "delivered", "excluded_category", "final_sale", "gift", "photos"})


def blocking_rules(decision: Decision) -> list[str]:
    """Names of the failed rules that make the decision not eligible."""
    failed = [r for r in decision.trace if not r.passed and r.effect == Verdict.NOT_ELIGIBLE]
    failed += [r for line in decision.lines for r in line.trace if not r.passed and r.effect == Verdict.NOT_ELIGIBLE]
    return sorted({r.rule for r in failed})


class ReturnNotAllowed(Exception):
    """The policy says no (or the choice is incomplete); the decision says why."""

    def __init__(self, decision: Decision):
        super().__init__(decision.verdict)
        self.decision = decision


@dataclass
class LineRequest:
    line_id: str
    quantity: int
    reason: str | None
    sub_reason: str | None = None
    comment: str = ""
    outcome: str | None = None
    exchange_sku: str | None = None
    photos: list[CleanPhoto] = field(default_factory=list)

    def choice(self) -> LineChoice:
        return LineChoice(
            line_id=self.line_id,
            quantity=self.quantity,
            reason=self.reason,
            sub_reason=self.sub_reason,
            outcome=self.outcome,
            exchange_sku=self.exchange_sku,
            photo_count=len(self.photos),
        )


# --- facts the policy needs -------------------------------------------------

def requested_units(session: Session, order: Order, before: datetime | None = None, exclude_request_id: int | None = None) -> dict[int, int]:
    """Units of each order line already held by requests that were not cancelled or rejected."""
    stmt = (
        select(ReturnLine.order_line_id, func.sum(ReturnLine.quantity))
        .join(ReturnRequest, ReturnRequest.id == ReturnLine.request_id)
        .where(ReturnRequest.order_id == order.id, ReturnRequest.status.not_in(RELEASED))
        .where((ReturnLine.staff_decision.is_(None)) | (ReturnLine.staff_decision != "rejected"))
        .group_by(ReturnLine.order_line_id)
    )
    if before is not None:
        stmt = stmt.where(ReturnRequest.created_at < before)
    if exclude_request_id is not None:
        stmt = stmt.where(ReturnRequest.id != exclude_request_id)
    return {line_id: int(total) for line_id, total in session.execute(stmt)}


def exchange_options(session: Session, skus: list[str]) -> dict[str, frozenset[str]]:
    """For each SKU, the in-stock SKUs of the other variants of its product (one query for all)."""
    base, other = aliased(Variant), aliased(Variant)
    rows = session.execute(
        select(base.sku, other.sku)
        .join(other, (other.product_id == base.product_id) & (other.sku != base.sku))
        .where(base.sku.in_(skus), other.stock - other.reserved > 0)
    )
    found: dict[str, set[str]] = {}
    for sku, option in rows:
        found.setdefault(sku, set()).add(option)
    return {sku: frozenset(found.get(sku, ())) for sku in skus}


def customer_recent_returns(session: Session, email: str | None, now: datetime, days: int, exclude_request_id: int | None = None) -> int:
    if not email:
        return 0
    stmt = select(func.count(ReturnRequest.id)).where(
        ReturnRequest.customer_email == email,
        ReturnRequest.created_at >= now - timedelta(days=days),
        ReturnRequest.created_at < now,
        ReturnRequest.status != Status.CANCELLED.value,
    )
    if exclude_request_id is not None:
        stmt = stmt.where(ReturnRequest.id != exclude_request_id)
    return int(session.scalar(stmt) or 0)


def order_facts(session: Session, order: Order, policy: Policy, now: datetime, exclude_request_id: int | None = None, before: datetime | None = None) -> OrderFacts:
    held = requested_units(session, order, before=before, exclude_request_id=exclude_request_id)
    options = exchange_options(session, [line.sku for line in order.lines])
    lines = tuple(
        LineFacts(
            line_id=line.line_id,
            sku=line.sku,
            product_name=line.product_name,
            category=line.category,
            quantity=line.quantity,
            unit_price=line.unit_price,
            discount=line.discount,
            tax=line.tax,
            final_sale=line.final_sale,
            already_requested=held.get(line.id, 0),
            exchange_options=options[line.sku],
        )
        for line in order.lines
    )
    return OrderFacts(
        order_number=order.order_number,
        currency=order.currency,
        delivered_at=order.delivered_at,
        gift=order.gift,
        lines=lines,
        customer_recent_returns=customer_recent_returns(
            session, order.customer_email, now, policy.frequent_returner_days, exclude_request_id
        ),
    )


def precheck_order(session: Session, order: Order, policy: Policy, now: datetime, facts: OrderFacts | None = None) -> dict[str, LineDecision]:
    """What each line of the order allows before the shopper chooses anything."""
    facts = facts or order_facts(session, order, policy, now)
    return {line.line_id: precheck_line(policy, facts, line.line_id, now) for line in facts.lines}


def check_return(session: Session, order: Order, lines: list[LineRequest], policy: Policy, now: datetime) -> Decision:
    """The policy decision for a choice, without saving anything."""
    facts = order_facts(session, order, policy, now)
    return decide(policy, facts, [line.choice() for line in lines if line.quantity > 0], now)


# --- use cases ------------------------------------------------------------

def _event(request: ReturnRequest, actor: Actor, kind: str, from_status: str | None, to_status: str | None, note: str = "", at: datetime | None = None) -> None:
    event = RequestEvent(actor=actor, kind=kind, from_status=from_status, to_status=to_status, note=note)
    if at is not None:
        event.at = at
    request.events.append(event)


def move(request: ReturnRequest, target: Status, actor: Actor, note: str = "", at: datetime | None = None) -> None:
    """Guarded transition with its event row; the caller commits."""
    lifecycle.check_transition(request.status, target)
    _event(request, actor, "status", request.status, target.value, note, at)
    request.status = target.value


def discard_photos(store: PhotoStore | None, keys: list[str]) -> None:
    """Remove photos stored for a change that was then rolled back (nothing half-written stays)."""
    for key in keys:
        try:
            store.delete(key)
        except StorageError:
            log.warning("could not remove photo %s after a failed change", key)


def lock_order(session: Session, order_id: int) -> None:
    """Serialise changes to one order's requests until the caller commits.

    PostgreSQL locks the order row; SQLite has no row locks, so a no-op update
    takes the database write lock before anything is read.
    """
    if session.get_bind().dialect.name == "sqlite":
        session.execute(update(Order).where(Order.id == order_id).values(id=Order.id))
    else:
        session.execute(select(Order.id).where(Order.id == order_id).with_for_update())


def open_return(
    session: Session,
    order: Order,
    lines: list[LineRequest],
    policy: Policy,
    now: datetime,
    locale: str,
    store: PhotoStore,
    actor: Actor = SHOPPER,
    override_reason: str | None = None,
    carrier=None,
) -> ReturnRequest:
    """Open a return request if the policy allows it.

    The decision is made again here under a lock on the order, so two tabs
    cannot both claim the last unit; it is stored with the request and never
    recomputed. Photos are stored first and removed again if the request cannot
    be saved, so nothing is left half-written. Raises ReturnNotAllowed.
    """
    lock_order(session, order.id)
    chosen = [line for line in lines if line.quantity > 0]
    decision = check_return(session, order, chosen, policy, now)
    overridden: list[str] = []
    if decision.verdict == Verdict.NOT_ELIGIBLE:
        blocking = blocking_rules(decision)
        if not (override_reason and override_reason.strip()) or not blocking or set(blocking) - OVERRIDABLE_RULES:
            session.rollback()
            raise ReturnNotAllowed(decision)
        overridden = blocking

    by_line_id = {line.line_id: line for line in order.lines}
    stored: list[str] = []
    try:
        request = ReturnRequest(
            rma=new_rma(),
            order=order,
            status=Status.SUBMITTED.value,
            locale=locale,
            verdict=Verdict.NEEDS_REVIEW.value if overridden else decision.verdict.value,
            decision={**decision.to_dict(), **({"override": {"by": str(actor), "reason": override_reason.strip()[:2000], "rules": overridden}} if overridden else {})},
            policy_version=decision.policy_version,
            value=decision.value,
            returnless=decision.returnless,
            customer_email=order.customer_email,
            created_at=now,
        )
        session.add(request)
        _event(request, actor, "submitted", None, Status.SUBMITTED.value, at=now)
        seen: set[str] = set()
        line_decisions = {d.line_id: d for d in decision.lines}
        for item in chosen:
            line_decision = line_decisions[item.line_id]
            rline = ReturnLine(
                order_line=by_line_id[item.line_id],
                quantity=item.quantity,
                reason=item.reason or "",
                sub_reason=item.sub_reason,
                responsibility=responsibility_of(item.reason) if item.reason else "customer",
                comment=item.comment.strip()[:2000],
                outcome=item.outcome or "refund",
                exchange_sku=item.exchange_sku if item.outcome == "exchange" else None,
                verdict=line_decision.verdict.value,
                value=line_decision.value,
            )
            request.lines.append(rline)
            for photo in item.photos:
                if photo.sha256 in seen:
                    continue
                seen.add(photo.sha256)
                key = new_key(".jpg")
                store.put(key, photo.data, photo.content_type)
                stored.append(key)
                thumb_key = None
                if photo.thumbnail:
                    thumb_key = key[: -len(".jpg")] + "-thumb.jpg"
                    store.put(thumb_key, photo.thumbnail, photo.content_type)
                    stored.append(thumb_key)
                request.photos.append(
                    Photo(
                        line=rline,
                        storage_key=key,
                        content_type=photo.content_type,
                        width=photo.width,
                        height=photo.height,
                        size=len(photo.data),
                        sha256=photo.sha256,
                        thumb_key=thumb_key,
                    )
                )
        if overridden:
            _event(request, actor, "override", None, None, f"policy overridden ({', '.join(overridden)}): {override_reason.strip()[:2000]}", at=now)
            move(request, Status.PENDING_REVIEW, actor, "opened by staff with a policy override", at=now)
        elif decision.auto_approve:
            move(request, Status.APPROVED, POLICY, f"auto-approved under policy {decision.policy_version}", at=now)
            if carrier is not None:
                issue_label(session, request, carrier, POLICY, at=now, instant_exchange=policy.instant_exchange)
        else:
            move(request, Status.PENDING_REVIEW, POLICY, f"{decision.verdict.value} under policy {decision.policy_version}", at=now)
        if request.status in (Status.APPROVED.value, Status.LABEL_ISSUED.value):
            enqueue_webhook(session, "return.approved", {"rma": request.rma, "order_number": order.order_number, "status": request.status,
                                                        "pickup_code": request.pickup_code, "reason": None})
        if order.customer_email:
            if request.status in (Status.APPROVED.value, Status.LABEL_ISSUED.value):
                enqueue_email(session, order.customer_email, "return_approved", locale,
                              {"rma": request.rma, "pickup_code": request.pickup_code, "returnless": request.returnless,
                               "order_number": order.order_number})
            else:
                enqueue_email(session, order.customer_email, "return_submitted", locale, {"rma": request.rma})
        session.flush()
        open_ticket(session, request)
        session.commit()
    except Exception:
        session.rollback()
        discard_photos(store, stored)
        raise
    log.info("return %s opened for order %s: %s", request.rma, order.order_number, request.status)
    return request


def get_request_for_order(session: Session, order_id: int, rma: str) -> ReturnRequest:
    """A request by RMA, only if it belongs to ``order_id`` (anything else is NotFound)."""
    request = session.scalars(
        select(ReturnRequest).where(ReturnRequest.rma == rma, ReturnRequest.order_id == order_id)
    ).one_or_none()
    if request is None:
        raise NotFound(rma)
    return request


def cancel_return(session: Session, request: ReturnRequest, actor: Actor, expected_status: str | None = None) -> ReturnRequest:
    """Cancel while nothing has shipped. A stale form (status changed meanwhile) raises Conflict."""
    session.refresh(request, with_for_update=True)
    if expected_status is not None and request.status != expected_status:
        session.rollback()
        raise Conflict(request.status)
    if Status(request.status) not in lifecycle.CANCELLABLE:
        session.rollback()
        raise lifecycle.IllegalTransition(request.status, Status.CANCELLED.value)
    move(request, Status.CANCELLED, actor, "cancelled by the shopper" if actor.kind is ActorKind.SHOPPER else "cancelled")
    release_exchange_stock(session, request, actor)
    if request.order.customer_email:
        enqueue_email(session, request.order.customer_email, "return_cancelled", request.locale, {"rma": request.rma})
    session.commit()
    return request




def _close_ticket(session: Session, request: ReturnRequest, actor: Actor, note: str) -> None:
    from portal.db.models import TicketEvent

    ticket = ticket_for(session, request)
    if ticket is None:
        return
    from portal.services.sla import stop_ticket_clocks

    now = datetime.now(timezone.utc)
    ticket.first_response_at = ticket.first_response_at or now
    if ticket.status != "closed":
        ticket.status, ticket.closed_at = "closed", now
    ticket.events.append(TicketEvent(actor=actor, kind="decided", note=note))
    stop_ticket_clocks(session, ticket, now, actor, ("first_response", "resolution"), "decided")


def _review(session: Session, request: ReturnRequest, actor: Actor, target: Status, expected_status: str | None, note: str, template: str, context: dict,
            carrier=None, instant_exchange: bool = False) -> ReturnRequest:
    session.refresh(request, with_for_update=True)
    if expected_status is not None and request.status != expected_status:
        session.rollback()
        raise Conflict(request.status)
    move(request, target, actor, note)
    if target == Status.REJECTED:
        release_exchange_stock(session, request, actor)
    if target == Status.APPROVED and carrier is not None:
        issue_label(session, request, carrier, actor, instant_exchange=instant_exchange)
        context = {**context, "pickup_code": request.pickup_code, "returnless": request.returnless,
                   "order_number": request.order.order_number}
    _close_ticket(session, request, actor, f"{target.value}: {note}".strip(": "))
    if request.order.customer_email:
        enqueue_email(session, request.order.customer_email, template, request.locale, {"rma": request.rma, **context})
    enqueue_webhook(session, "return.approved" if target == Status.APPROVED else "return.rejected",
                   {"rma": request.rma, "order_number": request.order.order_number, "status": request.status,
                    "pickup_code": request.pickup_code, "reason": note if target == Status.REJECTED else None})
    session.commit()
    log.info("return %s %s by %s", request.rma, target.value, actor)
    return request


def approve_return(session: Session, request: ReturnRequest, actor: Actor, expected_status: str | None = None, note: str = "",
                   line_ids: set[int] | None = None, carrier=None, instant_exchange: bool = False) -> ReturnRequest:
    """Approve a request under review, or only the lines in ``line_ids`` (the others are not accepted,
    with ``note`` as the reason the shopper sees, and their units are released).

    A stale page (someone acted first) raises Conflict; an illegal move IllegalTransition.
    """
    if line_ids is not None:
        chosen = {line.id for line in request.lines} & set(line_ids)
        if not chosen:
            raise ValueError("approve at least one line, or reject the request")
        partial = chosen != {line.id for line in request.lines}
        if partial and not note.strip():
            raise ValueError("say why the other lines are not accepted")
        for line in request.lines:
            line.staff_decision = "approved" if line.id in chosen else "rejected"
            line.staff_note = None if line.id in chosen else note.strip()[:2000]
    return _review(session, request, actor, Status.APPROVED, expected_status, note, "return_approved", {}, carrier, instant_exchange)


def reject_return(session: Session, request: ReturnRequest, actor: Actor, reason: str, expected_status: str | None = None) -> ReturnRequest:
    """Reject with a reason the shopper sees. Releases the units for another request."""
    reason = reason.strip()
    if not reason:
        raise ValueError("a rejection needs a reason for the shopper")
    return _review(session, request, actor, Status.REJECTED, expected_status, reason, "return_rejected", {"reason": reason})


def ask_shopper(session: Session, request: ReturnRequest, actor: Actor, question: str, expected_status: str | None = None) -> ReturnRequest:
    """Ask the shopper for more information: counts as the first response, pauses the resolution clock."""
    from portal.db.models import TicketEvent
    from portal.services.sla import pause_ticket_clocks, stop_ticket_clocks

    question = (question or "").strip()
    if not question:
        raise ValueError("a question needs text")
    session.refresh(request, with_for_update=True)
    if expected_status is not None and request.status != expected_status:
        session.rollback()
        raise Conflict(request.status)
    move(request, Status.AWAITING_SHOPPER, actor, question[:2000])
    now = datetime.now(timezone.utc)
    ticket = ticket_for(session, request)
    if ticket is not None:
        ticket.status = "waiting"
        ticket.first_response_at = ticket.first_response_at or now
        ticket.events.append(TicketEvent(actor=actor, kind="asked", note=question[:2000]))
        stop_ticket_clocks(session, ticket, now, actor, ("first_response",), "asked the shopper")
        pause_ticket_clocks(session, ticket, now, actor)
    if request.order.customer_email:
        enqueue_email(session, request.order.customer_email, "return_question", request.locale, {"rma": request.rma, "question": question})
    session.commit()
    return request


def answer_question(session: Session, request: ReturnRequest, answer: str) -> ReturnRequest:
    """The shopper's answer: back to review, clocks resume with the time they had left."""
    from portal.db.models import TicketEvent
    from portal.services.sla import resume_ticket_clocks
    from portal.services.tickets import assign_ticket

    answer = (answer or "").strip()
    if not answer:
        raise ValueError("an answer needs text")
    session.refresh(request, with_for_update=True)
    if request.status != Status.AWAITING_SHOPPER.value:
        session.rollback()
        raise Conflict(request.status)
    move(request, Status.PENDING_REVIEW, SHOPPER, answer[:2000])
    ticket = ticket_for(session, request)
    if ticket is not None:
        ticket.status = "open"
        ticket.events.append(TicketEvent(actor=SHOPPER, kind="answered", note=answer[:2000]))
        resume_ticket_clocks(session, ticket, datetime.now(timezone.utc), SHOPPER)
        if ticket.assignee_id is None:
            assign_ticket(session, ticket)
    session.commit()
    return request


def issue_label(session: Session, request: ReturnRequest, carrier, actor: Actor = SYSTEM, at: datetime | None = None,
                instant_exchange: bool = False) -> str | None:
    """Book the pickup and move an approved request to "label issued" (no commit).

    Returnless refunds need no label. The pickup code is unique: a collision
    (50 random bits, so practically never) draws again.
    """
    from portal.adapters.carriers import PickupRequest
    from portal.domain.codes import new_pickup_code

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
    request.label_issued_at = at or datetime.now(timezone.utc)
    move(request, Status.LABEL_ISSUED, actor, f"pickup booked with {booking.carrier}", at=at)
    return request.pickup_code


class UnknownPickup(Exception):
    """No request has this pickup code (or the code's check character is wrong)."""


class DuplicateEvent(Exception):
    """This carrier event was already recorded."""


def record_tracking_event(session: Session, event, carrier_name: str) -> ReturnRequest:
    """Record a carrier event on the request's timeline; the first movement puts it "in transit".

    Unknown codes and replayed event ids raise without writing anything.
    """
    from sqlalchemy.exc import IntegrityError as _IntegrityError

    from portal.db.models import CarrierEvent
    from portal.domain.codes import CodeError, parse_pickup_code
    from portal.domain.tracking import MOVING

    try:
        code = parse_pickup_code(event.pickup_code)
    except CodeError:
        raise UnknownPickup(event.pickup_code) from None
    request = session.scalars(select(ReturnRequest).where(ReturnRequest.pickup_code == code).with_for_update()).one_or_none()
    if request is None:
        session.rollback()
        raise UnknownPickup(code)
    if session.scalar(select(CarrierEvent.id).where(CarrierEvent.event_id == event.event_id)) is not None:
        session.rollback()
        raise DuplicateEvent(event.event_id)
    session.add(CarrierEvent(event_id=event.event_id, request_id=request.id, carrier=carrier_name, kind=event.kind, at=event.at,
                             location=event.location))
    note = f"{carrier_name}: {event.kind}" + (f" at {event.location}" if event.location else "")
    if event.kind in MOVING and request.status == Status.LABEL_ISSUED.value:
        move(request, Status.IN_TRANSIT, Actor.carrier(carrier_name), note, at=event.at)
        enqueue_webhook(session, "return.in_transit", {"rma": request.rma, "order_number": request.order.order_number, "pickup_code": code})
    else:
        _event(request, Actor.carrier(carrier_name), "tracking", None, None, note, at=event.at)
    try:
        session.commit()
    except _IntegrityError:  # the same event id raced in from a second delivery
        session.rollback()
        raise DuplicateEvent(event.event_id) from None
    return request




class ParcelNotFound(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason  # "mistyped" | "unknown"


def find_parcel(session: Session, scanned: str) -> ReturnRequest:
    """The request behind a scanned or typed pickup code or RMA number.

    A code whose check character is wrong is reported as mistyped before any lookup.
    """
    from portal.domain.codes import CodeError, looks_like_pickup_code, looks_like_rma, parse_pickup_code, parse_rma

    text = (scanned or "").strip()[:64]
    try:
        if looks_like_pickup_code(text):
            stmt = select(ReturnRequest).where(ReturnRequest.pickup_code == parse_pickup_code(text))
        elif looks_like_rma(text):
            stmt = select(ReturnRequest).where(ReturnRequest.rma == parse_rma(text))
        else:
            raise ParcelNotFound("unknown")
    except CodeError:
        raise ParcelNotFound("mistyped") from None
    request = session.scalars(stmt).one_or_none()
    if request is None:
        raise ParcelNotFound("unknown")
    return request


RECEIVABLE = (Status.LABEL_ISSUED.value, Status.IN_TRANSIT.value)


def receive_parcel(session: Session, request: ReturnRequest, staff_id: int, lines, findings, expected_status: str | None = None,
                   photos: dict[int, list[CleanPhoto]] | None = None, store: PhotoStore | None = None) -> ReturnRequest:
    """Record what arrived: quantities, grades, dispositions, discrepancies. Never refunds anything.

    The grade and wear confirmation go beside the photos' wear scores (the classifier's
    ground truth). Discrepancies reopen the request's ticket for an agent. A parcel
    already received, or a stale page, raises Conflict.
    """
    from portal.db.models import ReceiptLine
    from portal.domain.receiving import WORN_GRADES, check_receipt

    session.refresh(request, with_for_update=True)
    if request.status not in RECEIVABLE or (expected_status is not None and request.status != expected_status):
        session.rollback()
        raise Conflict(request.status)
    expected = {line.id: line.quantity for line in request.lines if line.staff_decision != "rejected"}
    all_findings = check_receipt(expected, lines, findings)
    now = datetime.now(timezone.utc)
    by_id = {line.id: line for line in request.lines}
    for item in lines:
        session.add(ReceiptLine(request_id=request.id, return_line_id=item.line_id, quantity=item.quantity, grade=item.grade or "-",
                                wear_confirmed=item.wear_confirmed, disposition=item.disposition or "-", note=item.note[:2000],
                                received_by=staff_id, received_at=now))
        if item.quantity:
            by_id[item.line_id].grade = item.grade
            by_id[item.line_id].wear_confirmed = item.wear_confirmed or item.grade in WORN_GRADES
    stored: list[str] = []
    try:
        for line_id, items in (photos or {}).items():
            for photo in items:
                key = new_key(".jpg")
                store.put(key, photo.data, photo.content_type)
                stored.append(key)
                # Warehouse photos document what arrived; the wear report compares the shopper's photos with the grade.
                session.add(Photo(request_id=request.id, line_id=line_id, storage_key=key, content_type=photo.content_type,
                                  width=photo.width, height=photo.height, size=len(photo.data), sha256=f"wh-{photo.sha256}"[:64],
                                  source="warehouse", score_state="not_scored", score_note="warehouse photo"))
        session.flush()
        _record_receipt(session, request, staff_id, now, lines, all_findings, by_id)
    except Exception:
        session.rollback()
        discard_photos(store, stored)
        raise
    log.info("parcel %s received by staff %s: %s", request.rma, staff_id, request.status)
    return request


def _record_receipt(session: Session, request: ReturnRequest, staff_id: int, now: datetime, lines, all_findings, by_id) -> None:
    actor = Actor.staff(staff_id)
    from portal.db.models import Discrepancy, TicketEvent
    from portal.services.tickets import assign_ticket

    move(request, Status.RECEIVED, actor, f"{sum(i.quantity for i in lines)} unit(s) received", at=now)
    for finding in all_findings:
        session.add(Discrepancy(request_id=request.id, return_line_id=finding.line_id, kind=finding.kind, quantity=finding.quantity,
                                note=finding.note[:2000], responsibility=finding.responsibility, created_by=staff_id))
    if all_findings:
        move(request, Status.DISCREPANCY, actor, "; ".join(f"{f.kind} ({f.quantity})" for f in all_findings), at=now)
        ticket = ticket_for(session, request)
        if ticket is not None:
            ticket.status, ticket.closed_at = "open", None
            ticket.priority = "high" if ticket.priority in ("low", "normal") else ticket.priority
            session.add(TicketEvent(ticket_id=ticket.id, actor=actor, kind="reopened",
                                    note="warehouse discrepancy: " + "; ".join(f"{f.kind} x{f.quantity} {f.note}".strip() for f in all_findings)))
            if ticket.assignee_id is None:
                session.flush()
                assign_ticket(session, ticket)
    else:
        move(request, Status.INSPECTED, actor, "graded", at=now)
        exchanges_ready(session, request, actor)
    enqueue_webhook(session, "return.received", {"rma": request.rma, "order_number": request.order.order_number, "status": request.status,
                                                "lines": [{"sku": by_id[i.line_id].order_line.sku, "quantity": i.quantity, "grade": i.grade,
                                                           "disposition": i.disposition} for i in lines],
                                                "discrepancies": [f.kind for f in all_findings]})
    if request.order.customer_email:
        enqueue_email(session, request.order.customer_email, "return_received", request.locale, {"rma": request.rma})
    session.commit()


# --- exchanges ------------------------------------------------------------------------

def _exchange_lines(request: ReturnRequest):
    return [line for line in request.lines if line.outcome == "exchange" and line.exchange_sku and line.staff_decision != "rejected"]


def reserve_exchange_stock(session: Session, request: ReturnRequest, actor: Actor) -> None:
    """On approval, hold the replacement variants (no commit). Out of stock is recorded, not hidden."""
    for line in _exchange_lines(request):
        variant = session.scalars(select(Variant).where(Variant.sku == line.exchange_sku).with_for_update()).one_or_none()
        if variant is None or variant.stock - variant.reserved < line.quantity:
            _event(request, actor, "exchange", None, None, f"{line.exchange_sku}: not enough stock to reserve {line.quantity}")
            continue
        variant.reserved += line.quantity
        _event(request, actor, "exchange", None, None, f"reserved {line.quantity} x {line.exchange_sku}")


def release_exchange_stock(session: Session, request: ReturnRequest, actor: Actor) -> None:
    """On rejection or cancellation, give the held variants back (no commit)."""
    for line in _exchange_lines(request):
        if not any(e.kind == "exchange" and e.note == f"reserved {line.quantity} x {line.exchange_sku}" for e in request.events):
            continue
        variant = session.scalars(select(Variant).where(Variant.sku == line.exchange_sku).with_for_update()).one_or_none()
        if variant is not None:
            variant.reserved = max(variant.reserved - line.quantity, 0)
            _event(request, actor, "exchange", None, None, f"released {line.quantity} x {line.exchange_sku}")


def exchange_difference(session: Session, line: ReturnLine, units: int) -> Decimal | None:
    """What was paid for ``units`` of the line minus the replacement's price: positive is refunded,
    negative is owed by the shopper. None when the replacement has no price of its own."""
    from portal.domain.money import line_paid_per_unit, round_money

    if line.outcome != "exchange" or not line.exchange_sku or units <= 0:
        return None
    price = session.scalar(select(Variant.price).where(Variant.sku == line.exchange_sku))
    if price is None:
        return None
    ol = line.order_line
    currency = line.request.order.currency
    paid = line_paid_per_unit(ol.unit_price, ol.quantity, ol.discount, ol.tax, currency)
    return round_money((paid - price) * units, currency)


def _already_shipped(request: ReturnRequest) -> bool:
    return any(e.kind == "exchange" and e.note.startswith("ready to ship") for e in request.events)


def exchanges_ready(session: Session, request: ReturnRequest, actor: Actor, instant: bool = False) -> list[dict]:
    """Release exchange lines to ship (no commit): after inspection those received as grade A or B,
    or, with the policy's instant exchange, all of them at approval. Never twice."""
    if _already_shipped(request):
        if all(line.outcome == "exchange" for line in request.lines if line.staff_decision != "rejected") and request.status == Status.INSPECTED.value:
            move(request, Status.EXCHANGED, actor, "exchange already shipped at approval")
        return []
    ready = []
    for line in _exchange_lines(request):
        if instant or line.grade in ("A", "B"):
            ready.append({"sku": line.exchange_sku, "quantity": line.quantity, "returned_sku": line.order_line.sku})
            variant = session.scalars(select(Variant).where(Variant.sku == line.exchange_sku).with_for_update()).one_or_none()
            if variant is not None:  # the held unit leaves the shelf
                variant.stock = max(variant.stock - line.quantity, 0)
                variant.reserved = max(variant.reserved - line.quantity, 0)
    if ready:
        enqueue_webhook(session, "exchange.ready", {"rma": request.rma, "order_number": request.order.order_number, "ship": ready})
        _event(request, actor, "exchange", None, None, "ready to ship: " + ", ".join(f"{r['quantity']} x {r['sku']}" for r in ready))
        settled = not any(exchange_difference(session, line, line.quantity) for line in _exchange_lines(request))
        if not instant and settled and all(line.outcome == "exchange" for line in request.lines if line.staff_decision != "rejected"):
            move(request, Status.EXCHANGED, actor, "exchange released to ship")
        # With a price difference the request stays inspected: finance refunds it or records it as owed.
    return ready
