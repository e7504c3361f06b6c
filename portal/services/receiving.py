"""The warehouse: find the parcel behind a scan, record what arrived. Never refunds anything."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.db.models import CarrierClaim, Discrepancy, Photo, ReceiptLine, ReturnLine, ReturnRequest, TicketEvent
from portal.domain.actors import Actor
from portal.domain.codes import (
    CodeError,
    looks_like_pickup_code,
    looks_like_rma,
    parse_for_lookup,
    parse_pickup_code,
    parse_rma,
)
from portal.domain.errors import Conflict, InvalidInput, NotFound
from portal.domain.lifecycle import Status
from portal.domain.money import round_money
from portal.domain.receiving import (
    WORN_GRADES,
    Finding,
    ReceivedLine,
    ScanOutcome,
    check_receipt,
    check_refusal,
    scan_outcome,
)
from portal.domain.states import LineDecision, ScoreState
from portal.domain.text import N_
from portal.services.exchanges import exchanges_ready, release_exchange_stock
from portal.services.outbox import enqueue_email, enqueue_webhook
from portal.services.sla import notify_staff, reopen_ticket_clocks
from portal.services.tickets import assign_ticket, close_request_ticket, reopen_ticket, ticket_for
from portal.services.timeline import discard_photos, lock_for_change, move, record_event
from portal.storage import PhotoStore, new_key
from portal.vision.intake import CleanPhoto

log = logging.getLogger("portal.receiving")

RECEIVABLE = (Status.LABEL_ISSUED.value, Status.IN_TRANSIT.value)


class ParcelNotFound(NotFound):
    """Nothing matches the scan. ``reason`` is "mistyped" (the check character is wrong) or "unknown"."""

    def __init__(self, reason: str):
        super().__init__(
            N_("That code has a typing mistake.") if reason == "mistyped" else N_("No parcel with that code.")
        )
        self.reason = reason


def find_parcel(session: Session, scanned: str) -> ReturnRequest:
    """The request behind a scanned or typed pickup code or RMA number.

    A code whose check character is wrong is reported as mistyped before any lookup.
    """
    text = (scanned or "").strip()[:64]
    try:
        if looks_like_pickup_code(text):
            code, current_check = parse_for_lookup(parse_pickup_code, text)
            stmt = select(ReturnRequest).where(ReturnRequest.pickup_code == code)
        elif looks_like_rma(text):
            rma, current_check = parse_for_lookup(parse_rma, text)
            stmt = select(ReturnRequest).where(ReturnRequest.rma == rma)
        else:
            raise ParcelNotFound("unknown")
    except CodeError:
        raise ParcelNotFound("mistyped") from None
    request = session.scalars(stmt).one_or_none()
    if request is None:
        # Passing only the old check and not an old code: a typing mistake in a current one.
        raise ParcelNotFound("unknown" if current_check else "mistyped")
    return request


def scan_result(request: ReturnRequest) -> ScanOutcome:
    """What the warehouse should do with the parcel behind a scan: receive it, or why not."""
    received = any(event.to_status == Status.RECEIVED.value for event in request.events)
    return scan_outcome(request.status, request.returnless, received)


def receive_parcel(
    session: Session,
    request: ReturnRequest,
    staff_id: int,
    lines: Sequence[ReceivedLine],
    findings: Sequence[Finding],
    expected_status: str | None = None,
    photos: dict[int, list[CleanPhoto]] | None = None,
    store: PhotoStore | None = None,
) -> ReturnRequest:
    """Record what arrived: quantities, grades, dispositions, discrepancies. Never refunds anything.

    The grade and wear confirmation go beside the photos' wear scores (the classifier's
    ground truth). Discrepancies reopen the request's ticket for an agent. A parcel
    already received, or a stale page, raises Conflict; input that does not add up
    raises ReceiptError (nothing is saved either way).
    """
    lock_for_change(session, request, expected_status)
    if request.status not in RECEIVABLE:
        session.rollback()
        raise Conflict(current=request.status)
    expected = {line.id: line.quantity for line in request.accepted_lines}
    try:
        all_findings = check_receipt(expected, lines, findings)
    except Exception:
        session.rollback()
        raise
    now = datetime.now(UTC)
    by_id = {line.id: line for line in request.lines}
    for item in lines:
        session.add(
            ReceiptLine(
                request_id=request.id,
                return_line_id=item.line_id,
                quantity=item.quantity,
                grade=item.grade or "-",
                wear_confirmed=item.wear_confirmed,
                disposition=item.disposition or "-",
                note=item.note[:2000],
                received_by=staff_id,
                received_at=now,
            )
        )
        if item.quantity:
            by_id[item.line_id].grade = item.grade
            by_id[item.line_id].wear_confirmed = item.wear_confirmed or item.grade in WORN_GRADES
    stored: list[str] = []
    try:
        for line_id, items in (photos or {}).items():
            for photo in items:
                if store is None:
                    raise RuntimeError("warehouse photos need a photo store")
                key = new_key(".jpg")
                store.put(key, photo.data, photo.content_type)
                stored.append(key)
                # Warehouse photos document what arrived; the wear report compares the shopper's photos with the grade.
                session.add(
                    Photo(
                        request_id=request.id,
                        line_id=line_id,
                        storage_key=key,
                        content_type=photo.content_type,
                        width=photo.width,
                        height=photo.height,
                        size=len(photo.data),
                        sha256=f"wh-{photo.sha256}"[:64],
                        source="warehouse",
                        score_state=ScoreState.NOT_SCORED.value,
                        score_note="warehouse photo",
                    )
                )
        session.flush()
        _record_receipt(session, request, staff_id, now, lines, all_findings, by_id)
        session.commit()
    except Exception:
        session.rollback()
        discard_photos(store, stored)
        raise
    log.info("parcel %s received by staff %s: %s", request.rma, staff_id, request.status)
    return request


def _record_receipt(
    session: Session,
    request: ReturnRequest,
    staff_id: int,
    now: datetime,
    lines: Sequence[ReceivedLine],
    all_findings: list[Finding],
    by_id: dict[int, ReturnLine],
) -> None:
    actor = Actor.staff(staff_id)
    move(request, Status.RECEIVED, actor, f"{sum(i.quantity for i in lines)} unit(s) received", at=now)
    for finding in all_findings:
        session.add(
            Discrepancy(
                request_id=request.id,
                return_line_id=finding.line_id,
                kind=finding.kind,
                quantity=finding.quantity,
                note=finding.note[:2000],
                responsibility=finding.responsibility,
                created_by=staff_id,
            )
        )
    if all_findings:
        summary = "; ".join(f"{f.kind} x{f.quantity} {f.note}".strip() for f in all_findings)
        move(request, Status.DISCREPANCY, actor, "; ".join(f"{f.kind} ({f.quantity})" for f in all_findings), at=now)
        _claim_damage_in_transit(session, request, all_findings, actor)
        ticket = ticket_for(session, request)
        if ticket is not None:
            # The agent's work starts again: open, higher priority, a running clock with its
            # escalation ladder, and whoever has the ticket is told.
            reopen_ticket(ticket, raise_priority=True)
            session.add(
                TicketEvent(ticket_id=ticket.id, actor=actor, kind="reopened", note="warehouse discrepancy: " + summary)
            )
            session.flush()
            if ticket.assignee_id is None:
                assign_ticket(session, ticket)
            reopen_ticket_clocks(session, ticket, now, actor, "warehouse discrepancy")
            session.flush()
            session.refresh(ticket)
            notify_staff(
                session,
                ticket.assignee,
                ticket,
                "discrepancy",
                f"{request.rma}: the warehouse found a discrepancy ({summary}). Decide what to accept.",
            )
    else:
        move(request, Status.INSPECTED, actor, "graded", at=now)
        exchanges_ready(session, request, actor)
    enqueue_webhook(
        session,
        "return.received",
        {
            "rma": request.rma,
            "order_number": request.order.order_number,
            "status": request.status,
            "lines": [
                {
                    "sku": by_id[i.line_id].order_line.sku,
                    "quantity": i.quantity,
                    "grade": i.grade,
                    "disposition": i.disposition,
                }
                for i in lines
            ],
            "discrepancies": [f.kind for f in all_findings],
        },
    )
    if request.order.customer_email:
        enqueue_email(session, request.order.customer_email, "return_received", request.locale, {"rma": request.rma})


def _claim_damage_in_transit(
    session: Session, request: ReturnRequest, findings: Sequence[Finding], actor: Actor
) -> CarrierClaim | None:
    """Units damaged on the way back are the carrier's responsibility: record a claim against it for
    what they were worth (no commit)."""
    damaged = [f for f in findings if f.responsibility == "logistics"]
    if not damaged:
        return None
    by_id = {line.id: line for line in request.lines}
    units = sum(f.quantity for f in damaged)
    amount = sum(
        (
            round_money(by_id[f.line_id].value / by_id[f.line_id].quantity * f.quantity, request.order.currency)
            for f in damaged
            if f.line_id in by_id and by_id[f.line_id].quantity
        ),
        Decimal(0),
    )
    claim = CarrierClaim(
        request_id=request.id,
        carrier=request.carrier or "unknown",
        pickup_code=request.pickup_code,
        units=units,
        amount=amount,
        currency=request.order.currency,
        note="; ".join(f"{f.kind} x{f.quantity} {f.note}".strip() for f in damaged)[:2000],
        status="open",
    )
    session.add(claim)
    record_event(request, actor, "carrier_claim", note=f"claim against {claim.carrier}: {units} unit(s), {amount}")
    return claim


def _settle_discrepancy(session: Session, request: ReturnRequest, actor: Actor, note: str) -> None:
    """The agent decided: the findings are resolved and the ticket closes with its clocks (no commit)."""
    now = datetime.now(UTC)
    for row in session.scalars(
        select(Discrepancy).where(Discrepancy.request_id == request.id, Discrepancy.resolved_at.is_(None))
    ):
        row.resolved_at = now
    close_request_ticket(session, request, actor, note)


def accept_what_arrived(
    session: Session, request: ReturnRequest, actor: Actor, note: str = "", expected_status: str | None = None
) -> ReturnRequest:
    """Settle a warehouse discrepancy by accepting what arrived.

    The request becomes inspected for the units received (the warehouse receipt), so finance's
    refund preview covers those and nothing that did not come back. A stale page raises Conflict.
    """
    lock_for_change(session, request, expected_status)
    if request.status != Status.DISCREPANCY:
        session.rollback()
        raise Conflict(current=request.status)
    why = (note or "").strip()[:2000]
    move(request, Status.INSPECTED, actor, why or "accepted what arrived")
    exchanges_ready(session, request, actor)
    ticket = ticket_for(session, request)
    if ticket is not None:
        session.add(
            TicketEvent(ticket_id=ticket.id, actor=actor, kind="discrepancy", note=why or "accepted what arrived")
        )
    _settle_discrepancy(session, request, actor, "discrepancy: accepted what arrived")
    session.commit()
    log.info("discrepancy on %s settled: what arrived accepted", request.rma)
    return request


def refuse_items(
    session: Session,
    request: ReturnRequest,
    actor: Actor,
    line_ids: set[int],
    reason: str,
    fate: str,
    expected_status: str | None = None,
) -> ReturnRequest:
    """Settle a warehouse discrepancy by refusing some items: the shopper is told why and what happens
    to them, and they are not refunded (nor their replacement shipped). The rest goes on as
    inspected; when nothing is left the request closes. Bad input raises InvalidInput, a stale
    page Conflict; nothing is saved then.
    """
    reason = (reason or "").strip()
    lock_for_change(session, request, expected_status)
    if request.status != Status.DISCREPANCY:
        session.rollback()
        raise Conflict(current=request.status)
    try:
        check_refusal(set(line_ids), {line.id for line in request.accepted_lines}, reason, fate)
    except InvalidInput:
        session.rollback()
        raise
    refused = [line for line in request.lines if line.id in line_ids]
    for line in refused:
        line.staff_decision = LineDecision.REJECTED.value
        line.staff_note = reason[:2000]
        line.refused_fate = fate
    release_exchange_stock(session, request, actor, lines=refused)
    items = ", ".join(f"{line.quantity} x {line.order_line.sku}" for line in refused)
    if request.accepted_lines:
        move(request, Status.INSPECTED, actor, f"refused {items}: {reason}"[:2000])
        exchanges_ready(session, request, actor)
    else:
        move(request, Status.CLOSED, actor, f"refused {items}: {reason}"[:2000])
    _settle_discrepancy(session, request, actor, f"discrepancy: refused {items}")
    if request.order.customer_email:
        enqueue_email(
            session,
            request.order.customer_email,
            "return_items_refused",
            request.locale,
            {
                "rma": request.rma,
                "reason": reason,
                "fate": fate,
                "items": [
                    {
                        "quantity": line.quantity,
                        "product": line.order_line.product_name,
                        "variant": line.order_line.variant,
                    }
                    for line in refused
                ],
                "rest_continues": bool(request.accepted_lines),
            },
        )
    session.commit()
    log.info("discrepancy on %s settled: refused %s", request.rma, items)
    return request


@dataclass(frozen=True)
class Arrival:
    """One line as the agent weighs a discrepancy: what was expected beside what arrived."""

    line: ReturnLine
    expected: int
    receipt: ReceiptLine | None
    findings: list[Discrepancy]
    photos: list[Photo]

    @property
    def received(self) -> int:
        return self.receipt.quantity if self.receipt is not None else 0


def arrivals(session: Session, request: ReturnRequest) -> list[Arrival]:
    """Per accepted line: expected and received units, grade, notes, the warehouse's findings and
    photos. Findings that concern no line (an extra item) come last, on a line of their own."""
    receipts = {
        r.return_line_id: r for r in session.scalars(select(ReceiptLine).where(ReceiptLine.request_id == request.id))
    }
    findings = list(
        session.scalars(select(Discrepancy).where(Discrepancy.request_id == request.id).order_by(Discrepancy.id))
    )
    return [
        Arrival(
            line=line,
            expected=line.quantity,
            receipt=receipts.get(line.id),
            findings=[f for f in findings if f.return_line_id == line.id],
            photos=[p for p in line.photos if p.source == "warehouse"],
        )
        for line in request.accepted_lines
    ]


def unplaced_findings(session: Session, request: ReturnRequest) -> list[Discrepancy]:
    """Findings about no particular line, such as an extra item in the parcel."""
    return list(
        session.scalars(
            select(Discrepancy)
            .where(Discrepancy.request_id == request.id, Discrepancy.return_line_id.is_(None))
            .order_by(Discrepancy.id)
        )
    )


def carrier_claims(session: Session, request: ReturnRequest) -> list[CarrierClaim]:
    return list(
        session.scalars(select(CarrierClaim).where(CarrierClaim.request_id == request.id).order_by(CarrierClaim.id))
    )
