"""Staff decide a request under review: approve (all or some lines), reject, or ask the shopper."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from portal.adapters.carriers import Carrier
from portal.db.models import RejectionReason, ReturnRequest, StaffUser, TicketEvent
from portal.domain.actors import Actor
from portal.domain.errors import InvalidInput
from portal.domain.lifecycle import Status
from portal.domain.states import IllegalTransition, LineDecision, TicketStatus
from portal.domain.text import N_
from portal.services.exchanges import release_exchange_stock
from portal.services.outbox import enqueue_email, enqueue_webhook
from portal.services.shipping import issue_label
from portal.services.sla import pause_ticket_clocks, stop_ticket_clocks
from portal.services.tickets import close_request_ticket, send_reply, set_ticket_status, ticket_for
from portal.services.timeline import lock_for_change, move, shopper_items

log = logging.getLogger("portal.returns")


def _review(
    session: Session,
    request: ReturnRequest,
    actor: Actor,
    target: Status,
    expected_status: str | None,
    note: str,
    template: str,
    context: dict[str, Any],
    carrier: Carrier | None = None,
    instant_exchange: bool = False,
) -> ReturnRequest:
    try:
        move(request, target, actor, note)
    except IllegalTransition:
        session.rollback()
        raise
    if target == Status.REJECTED:
        release_exchange_stock(session, request, actor)
    if target == Status.APPROVED and carrier is not None:
        issue_label(session, request, carrier, actor, instant_exchange=instant_exchange)
        context = {
            **context,
            "pickup_code": request.pickup_code,
            "returnless": request.returnless,
            "order_number": request.order.order_number,
        }
    close_request_ticket(session, request, actor, f"{target.value}: {note}".strip(": "))
    if request.order.customer_email:
        enqueue_email(session, request.order.customer_email, template, request.locale, {"rma": request.rma, **context})
    enqueue_webhook(
        session,
        "return.approved" if target == Status.APPROVED else "return.rejected",
        {
            "rma": request.rma,
            "order_number": request.order.order_number,
            "status": request.status,
            "pickup_code": request.pickup_code,
            "reason": note if target == Status.REJECTED else None,
            "lines": [
                {
                    "line_id": line.order_line.line_id,
                    "sku": line.order_line.sku,
                    "quantity": line.quantity,
                    "accepted": target == Status.APPROVED and line.accepted,
                    "note": line.staff_note,
                }
                for line in request.lines
            ],
        },
    )
    session.commit()
    log.info("return %s %s by %s", request.rma, target.value, actor)
    return request


def approve_return(
    session: Session,
    request: ReturnRequest,
    actor: Actor,
    expected_status: str | None = None,
    note: str = "",
    line_ids: set[int] | None = None,
    carrier: Carrier | None = None,
    instant_exchange: bool = False,
) -> ReturnRequest:
    """Approve a request under review, or only the lines in ``line_ids`` (the others are not accepted,
    with ``note`` as the reason the shopper sees, and their units are released).

    A stale page (someone acted first) raises Conflict; an illegal move IllegalTransition;
    a choice that does not add up InvalidInput. Nothing is saved in any of those cases.
    """
    note = (note or "").strip()
    lock_for_change(session, request, expected_status)
    if line_ids is not None:
        every = {line.id for line in request.lines}
        chosen = every & set(line_ids)
        if not chosen:
            session.rollback()
            raise InvalidInput(N_("Approve at least one line, or reject the request."))
        if chosen != every and not note:
            session.rollback()
            raise InvalidInput(N_("Say why the other lines are not accepted."))
        for line in request.lines:
            line.staff_decision = (LineDecision.APPROVED if line.id in chosen else LineDecision.REJECTED).value
            line.staff_note = None if line.id in chosen else note[:2000]
        # From here on the request is worth what was accepted: queues, routing and totals count that.
        request.value = sum((line.value for line in request.accepted_lines), Decimal(0))
    not_accepted = [
        {
            "quantity": line.quantity,
            "product": line.order_line.product_name,
            "variant": line.order_line.variant,
            "reason": line.staff_note or "",
        }
        for line in request.lines
        if not line.accepted
    ]
    return _review(
        session,
        request,
        actor,
        Status.APPROVED,
        expected_status,
        note,
        "return_approved",
        {"not_accepted": not_accepted, "items": shopper_items(request)},
        carrier,
        instant_exchange,
    )


def reject_return(
    session: Session,
    request: ReturnRequest,
    actor: Actor,
    reason: str,
    expected_status: str | None = None,
    reason_id: int | None = None,
) -> ReturnRequest:
    """Reject with a reason the shopper sees. Releases the units for another request.

    ``reason_id``: one of the admin-kept rejection reasons (counted in reports); its label leads
    what the shopper reads, the free text follows it.
    """
    reason = (reason or "").strip()
    chosen = session.get(RejectionReason, reason_id) if reason_id is not None else None
    if reason_id is not None and (chosen is None or not chosen.active):
        raise InvalidInput(N_("Choose a rejection reason from the list."))
    if chosen is not None:
        reason = f"{chosen.label}. {reason}" if reason else chosen.label
    if not reason:
        raise InvalidInput(N_("Tell the shopper why the return is rejected."))
    lock_for_change(session, request, expected_status)
    request.rejection_reason_id = chosen.id if chosen is not None else None
    return _review(
        session, request, actor, Status.REJECTED, expected_status, reason, "return_rejected", {"reason": reason}
    )


def ask_shopper(
    session: Session, request: ReturnRequest, actor: Actor, question: str, expected_status: str | None = None
) -> ReturnRequest:
    """Ask the shopper for more information: counts as the first response, pauses the resolution clock."""
    question = (question or "").strip()
    if not question:
        raise InvalidInput(N_("Write the question for the shopper."))
    lock_for_change(session, request, expected_status)
    move(request, Status.AWAITING_SHOPPER, actor, question[:2000])
    now = datetime.now(UTC)
    ticket = ticket_for(session, request)
    if ticket is not None:
        set_ticket_status(ticket, TicketStatus.WAITING)
        ticket.first_response_at = ticket.first_response_at or now
        ticket.events.append(TicketEvent(actor=actor, kind="asked", note=question[:2000]))
        stop_ticket_clocks(session, ticket, now, actor, ("first_response",), "asked the shopper")
        pause_ticket_clocks(session, ticket, now, actor)
    if request.order.customer_email:
        enqueue_email(
            session,
            request.order.customer_email,
            "return_question",
            request.locale,
            {"rma": request.rma, "question": question},
        )
    session.commit()
    return request


MACRO_DECISIONS = ("approve", "reject", "ask")


def decide_with_reply(
    session: Session,
    request: ReturnRequest,
    staff: StaffUser,
    decision: str | None,
    body: str,
    expected_status: str | None = None,
    carrier: Carrier | None = None,
    instant_exchange: bool = False,
) -> ReturnRequest:
    """A macro: one action that records ``decision`` and tells the shopper ``body``.

    Rejecting and asking carry the words themselves (the rejection email gives them as the reason,
    the question email as the question); approving records the approval first (so a stale page
    sends nothing) and then sends the reply. Without a decision it is a plain reply.
    """
    body = (body or "").strip()
    if not body:
        raise InvalidInput(N_("Write the reply first."))
    actor = Actor.staff(staff.id)
    if decision == "reject":
        return reject_return(session, request, actor, body, expected_status=expected_status)
    if decision == "ask":
        return ask_shopper(session, request, actor, body, expected_status=expected_status)
    if decision == "approve":
        approve_return(
            session,
            request,
            actor,
            expected_status=expected_status,
            carrier=carrier,
            instant_exchange=instant_exchange,
        )
    send_reply(session, request, staff, body)
    return request
