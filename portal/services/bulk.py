"""Bulk actions on queue rows: take, assign, approve, add a note. Each ticket is its own
transaction, so one that changed meanwhile is reported and the others still go through."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.adapters.carriers import Carrier
from portal.db.models import StaffUser, Ticket
from portal.domain.actors import Actor
from portal.domain.errors import Conflict, DomainError
from portal.domain.lifecycle import IllegalTransition, Status
from portal.domain.policy import Decision, Verdict
from portal.domain.roles import CAN_APPROVE_CHOSEN
from portal.domain.states import TicketKind
from portal.domain.text import N_, Text
from portal.services.review import approve_return
from portal.services.tickets import add_note, reassign, take_ticket

BULK_ACTIONS = ("take", "assign", "approve", "note")
MAX_BULK = 200


@dataclass(frozen=True)
class BulkOutcome:
    rma: str
    done: bool
    message: Text


def _approve(session: Session, ticket: Ticket, staff: StaffUser, carrier: Carrier | None, instant: bool) -> Text:
    req = ticket.request
    if ticket.kind != TicketKind.RETURN:
        raise Conflict(N_("It is a data request: answer it on its own page."))
    if req.status != Status.PENDING_REVIEW.value:
        raise Conflict(N_("It is not waiting for a decision."))
    verdict = Decision.from_dict(req.decision).verdict
    if verdict is not Verdict.ELIGIBLE and staff.role not in CAN_APPROVE_CHOSEN:
        raise Conflict(N_("The policy would not approve it on its own: a team lead decides it."))
    approve_return(
        session, req, Actor.staff(staff.id), expected_status=req.status, carrier=carrier, instant_exchange=instant
    )
    return Text(N_("Approved."))


def bulk_action(
    session: Session,
    staff: StaffUser,
    action: str,
    ticket_ids: list[int],
    *,
    to_staff_id: int | None = None,
    note: str = "",
    carrier: Carrier | None = None,
    instant_exchange: bool = False,
) -> list[BulkOutcome]:
    """Do ``action`` to each ticket in turn; every ticket gets an outcome, done or with the reason why not."""
    tickets = {t.id: t for t in session.scalars(select(Ticket).where(Ticket.id.in_(ticket_ids[:MAX_BULK])))}
    outcomes = []
    for ticket_id in dict.fromkeys(ticket_ids[:MAX_BULK]):
        ticket = tickets.get(ticket_id)
        if ticket is None:
            continue
        rma = ticket.request.rma
        try:
            if action == "take":
                take_ticket(session, ticket_id, staff)
                message = Text(N_("Taken."))
            elif action == "assign":
                reassign(session, ticket_id, staff, to_staff_id)
                message = Text(N_("Assigned."))
            elif action == "note":
                add_note(session, ticket_id, staff, note)
                message = Text(N_("Note added."))
            elif action == "approve":
                message = _approve(session, ticket, staff, carrier, instant_exchange)
            else:
                raise ValueError(action)
        except IllegalTransition:
            session.rollback()
            outcomes.append(BulkOutcome(rma, False, Text(N_("It can no longer be approved."))))
        except DomainError as exc:
            session.rollback()
            outcomes.append(BulkOutcome(rma, False, exc.message))
        else:
            outcomes.append(BulkOutcome(rma, True, message))
    return outcomes
