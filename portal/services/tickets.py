"""Tickets: every return request becomes one, routed by rules and assigned to the least-loaded agent."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from portal.db.dialects import on_postgresql
from portal.db.locks import lock_rows
from portal.db.models import (
    CannedReplyRow,
    RequestEvent,
    ReturnRequest,
    RoutingRuleRow,
    StaffUser,
    Team,
    TeamMember,
    Ticket,
    TicketEvent,
)
from portal.domain.actors import SYSTEM, Actor, ActorKind
from portal.domain.errors import Conflict, InvalidInput, NotFound
from portal.domain.lifecycle import Status
from portal.domain.policy import Decision
from portal.domain.privacy import REASON_MAX
from portal.domain.replies import CannedReply, Suggestion, suggest
from portal.domain.routing import Conditions, Route, RoutingInputs, Rule, inputs_for, route
from portal.domain.states import TicketKind, TicketStatus, check_ticket
from portal.domain.text import N_
from portal.services.audit import record_access
from portal.services.outbox import enqueue_email
from portal.services.sla import start_ticket_clocks, stop_ticket_clocks

log = logging.getLogger("portal.tickets")

DEFAULT_TEAM = "service"


def set_ticket_status(ticket: Ticket, target: TicketStatus, at: datetime | None = None) -> None:
    """Guarded ticket move (no commit); moving to the state it is already in changes nothing."""
    if ticket.status == target:
        return
    check_ticket(ticket.status, target)
    ticket.status = target.value
    if target is TicketStatus.CLOSED:
        ticket.closed_at = at or datetime.now(UTC)
    else:
        ticket.closed_at = None


def reopen_ticket(ticket: Ticket, raise_priority: bool = False) -> None:
    """Back to open for an agent (a warehouse discrepancy), higher priority when asked (no commit)."""
    set_ticket_status(ticket, TicketStatus.OPEN)
    if raise_priority and ticket.priority in ("low", "normal"):
        ticket.priority = "high"


def ticket_for(session: Session, request: ReturnRequest) -> Ticket | None:
    """The request's own ticket (every request gets one when it is opened); data requests asked on
    it have tickets of their own, never returned here."""
    return session.scalars(
        select(Ticket).where(Ticket.request_id == request.id, Ticket.kind == TicketKind.RETURN.value)
    ).one_or_none()


def close_request_ticket(session: Session, request: ReturnRequest, actor: Actor, note: str) -> None:
    """The request was decided or cancelled: close its ticket and stop its clocks (no commit)."""
    ticket = ticket_for(session, request)
    if ticket is None or ticket.status == TicketStatus.CLOSED:
        return
    now = datetime.now(UTC)
    ticket.first_response_at = ticket.first_response_at or now
    set_ticket_status(ticket, TicketStatus.CLOSED, now)
    ticket.events.append(TicketEvent(actor=actor, kind="decided", note=note))
    stop_ticket_clocks(session, ticket, now, actor, ("first_response", "resolution"), "decided")


# A ticket of a request in one of these states has nothing left to decide: once an agent has
# followed up (a survey's low score reopens it), they close it themselves.
SETTLED = frozenset({Status.REFUNDED, Status.EXCHANGED, Status.REJECTED, Status.CLOSED, Status.CANCELLED})


def close_follow_up(session: Session, ticket_id: int, staff: StaffUser, note: str) -> Ticket:
    """Close a reopened ticket whose request is settled, with what was done (commits)."""
    note = (note or "").strip()
    if not note:
        raise InvalidInput(N_("Say what was done to follow up."))
    lock_rows(session, Ticket, Ticket.id == ticket_id)
    ticket = session.get(Ticket, ticket_id, populate_existing=True)
    if ticket is None:
        session.rollback()
        raise NotFound()
    if (
        ticket.status == TicketStatus.CLOSED
        or ticket.kind != TicketKind.RETURN
        or Status(ticket.request.status) not in SETTLED
    ):
        session.rollback()
        raise Conflict(N_("This ticket is not a follow-up waiting to be closed."))
    set_ticket_status(ticket, TicketStatus.CLOSED)
    ticket.events.append(TicketEvent(actor=Actor.staff(staff.id), kind="followed_up", note=note[:4000]))
    session.commit()
    return ticket


def ensure_team(session: Session, code: str, name: str) -> Team:
    team = session.scalars(select(Team).where(Team.code == code)).one_or_none()
    if team is None:
        team = Team(code=code, name=name, active=True)
        session.add(team)
        session.flush()
    return team


def active_rules(session: Session) -> list[Rule]:
    rows = session.execute(
        select(RoutingRuleRow, Team.code)
        .join(Team, Team.id == RoutingRuleRow.team_id)
        .where(RoutingRuleRow.active.is_(True))
    ).all()
    return [
        Rule(row.id, row.name, Conditions.from_dict(row.conditions), code, row.priority, row.ticket_class, row.position)
        for row, code in rows
    ]


def routing_inputs(request: ReturnRequest) -> RoutingInputs:
    decision = Decision.from_dict(request.decision)
    frequent = any(r.rule == "frequent_returner" and not r.passed for r in decision.trace)
    return inputs_for(
        categories=[line.order_line.category for line in request.lines],
        responsibilities=[line.responsibility for line in request.lines],
        value=request.value,
        max_wear=request.max_wear,
        verdict=request.verdict,
        frequent_returner=frequent,
        language=request.locale,
        channel=request.order.channel,
    )


def _inputs_dict(inputs: RoutingInputs) -> dict[str, object]:
    return {
        "categories": sorted(inputs.categories),
        "responsibilities": sorted(inputs.responsibilities),
        "value": str(inputs.value),
        "max_wear": inputs.max_wear,
        "needs_review": inputs.needs_review,
        "frequent_returner": inputs.frequent_returner,
        "language": inputs.language,
        "channel": inputs.channel,
    }


def _route(session: Session, request: ReturnRequest) -> tuple[Route, RoutingInputs, Team]:
    inputs = routing_inputs(request)
    chosen = route(active_rules(session), inputs, DEFAULT_TEAM)
    team = session.scalars(select(Team).where(Team.code == chosen.team)).one_or_none() or ensure_team(
        session, DEFAULT_TEAM, "Customer service"
    )
    return chosen, inputs, team


def open_ticket(session: Session, request: ReturnRequest, actor: Actor = SYSTEM) -> Ticket:
    """Route the request into a ticket and assign it; part of the caller's transaction (no commit)."""
    chosen, inputs, team = _route(session, request)
    ticket = Ticket(
        request=request,
        team=team,
        priority=chosen.priority,
        ticket_class=chosen.ticket_class,
        rule=chosen.rule.snapshot() if chosen.rule else None,
        routing_inputs=_inputs_dict(inputs),
        status=TicketStatus.OPEN.value,
    )
    session.add(ticket)
    ticket.events.append(
        TicketEvent(
            actor=actor,
            kind="routed",
            note="; ".join(chosen.reasons),
            data={"team": team.code, "priority": chosen.priority, "class": chosen.ticket_class},
        )
    )
    if request.status != Status.PENDING_REVIEW:
        # Auto-approved: nobody needs to review it; later steps (discrepancies) reopen it.
        set_ticket_status(ticket, TicketStatus.CLOSED, request.created_at)
        ticket.events.append(
            TicketEvent(actor=actor, kind="closed", note=f"request {request.status}; no review needed")
        )
        session.flush()
        return ticket
    session.flush()
    assign_ticket(session, ticket)

    start_ticket_clocks(session, ticket, request.created_at or now_utc(), actor)
    return ticket


def member_load(session: Session, staff_id: int) -> int:
    """Tickets that count against an agent's cap: open ones, whose clocks are running.

    Tickets waiting on the shopper (clocks paused) and closed ones (clocks stopped) do not count.
    """
    return int(
        session.scalar(
            select(func.count(Ticket.id)).where(
                Ticket.assignee_id == staff_id, Ticket.status == TicketStatus.OPEN.value
            )
        )
        or 0
    )


def assign_ticket(session: Session, ticket: Ticket, actor: Actor = SYSTEM) -> StaffUser | None:
    """Give the ticket to the least-loaded available member of its team who is under their cap.

    On PostgreSQL the candidate member rows are locked with SKIP LOCKED, so two
    simultaneous assignments never both fill the last slot of one agent.
    """
    stmt = (
        select(TeamMember)
        .join(StaffUser, StaffUser.id == TeamMember.staff_id)
        .where(TeamMember.team_id == ticket.team_id, TeamMember.available.is_(True), StaffUser.active.is_(True))
        .order_by(TeamMember.id)
    )
    if on_postgresql(session):
        stmt = stmt.with_for_update(of=TeamMember, skip_locked=True)
    else:
        # SQLite has no row locks: take the database write lock before counting loads.
        session.execute(update(TeamMember).where(TeamMember.team_id == ticket.team_id).values(cap=TeamMember.cap))
    best: tuple[int, int, TeamMember] | None = None
    for member in session.scalars(stmt):
        load = member_load(session, member.staff_id)
        if load < member.cap and (best is None or (load, member.id) < best[:2]):
            best = (load, member.id, member)
    if best is None:
        ticket.events.append(TicketEvent(actor=actor, kind="unassigned", note="no available agent under their cap"))
        return None
    ticket.assignee_id = best[2].staff_id
    ticket.events.append(
        TicketEvent(
            actor=actor,
            kind="assigned",
            note=f"to staff {best[2].staff_id} (load {best[0]} of {best[2].cap})",
            data={"assignee": best[2].staff_id},
        )
    )
    return best[2].staff


_UNCHECKED = object()


def take_ticket(session: Session, ticket_id: int, staff: StaffUser, expected_assignee: object = _UNCHECKED) -> Ticket:
    """Take a ticket (always possible). ``expected_assignee`` is who the staff member's page showed
    (None for unassigned); if someone else took it meanwhile, Conflict is raised instead of a silent steal."""
    lock_rows(session, Ticket, Ticket.id == ticket_id)
    ticket = session.get(Ticket, ticket_id, populate_existing=True)
    if ticket is None:
        session.rollback()
        raise NotFound()
    if expected_assignee is not _UNCHECKED and ticket.assignee_id not in (expected_assignee, staff.id):
        session.rollback()
        raise Conflict(N_("Someone else took this ticket first."))
    ticket.assignee_id = staff.id
    ticket.events.append(
        TicketEvent(
            actor=Actor.staff(staff.id), kind="assigned", note=f"taken by {staff.name}", data={"assignee": staff.id}
        )
    )
    session.commit()
    return ticket


def reroute_if_untouched(session: Session, request: ReturnRequest) -> Ticket | None:
    """After the photos are scored, route again if no one has acted on the ticket yet (no commit)."""
    ticket = ticket_for(session, request)
    if ticket is None or ticket.status != TicketStatus.OPEN or any(e.actor.is_staff for e in ticket.events):
        return ticket
    chosen, inputs, team = _route(session, request)
    ticket.routing_inputs = _inputs_dict(inputs)
    if team.id == ticket.team_id and chosen.priority == ticket.priority:
        return ticket
    ticket.events.append(
        TicketEvent(
            actor=SYSTEM,
            kind="rerouted",
            note="; ".join(chosen.reasons) + f" (wear {inputs.max_wear})",
            data={"team": team.code, "priority": chosen.priority},
        )
    )
    moved = team.id != ticket.team_id
    ticket.team_id, ticket.priority, ticket.ticket_class = team.id, chosen.priority, chosen.ticket_class
    ticket.rule = chosen.rule.snapshot() if chosen.rule else None
    if moved:
        ticket.assignee_id = None
        session.flush()
        assign_ticket(session, ticket)
    return ticket


def now_utc() -> datetime:
    return datetime.now(UTC)


def add_note(session: Session, ticket_id: int, staff: StaffUser, text: str) -> Ticket:
    """An internal note on the ticket timeline (never shown to the shopper)."""
    text = (text or "").strip()
    if not text:
        raise InvalidInput(N_("Write the note first."))
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        raise NotFound()
    ticket.events.append(TicketEvent(actor=Actor.staff(staff.id), kind="note", note=text[:4000]))
    session.commit()
    return ticket


def reassign(session: Session, ticket_id: int, staff: StaffUser, to_staff_id: int | None) -> Ticket:
    """Hand the ticket to someone else (or back to the team as unassigned); always possible."""
    lock_rows(session, Ticket, Ticket.id == ticket_id)
    ticket = session.get(Ticket, ticket_id, populate_existing=True)
    if ticket is None:
        session.rollback()
        raise NotFound()
    target = session.get(StaffUser, to_staff_id) if to_staff_id else None
    if to_staff_id and (target is None or not target.active):
        session.rollback()
        raise InvalidInput(N_("Choose an active staff member."))
    ticket.assignee_id = target.id if target else None
    ticket.events.append(
        TicketEvent(
            actor=Actor.staff(staff.id),
            kind="assigned",
            note=f"reassigned to {target.name}" if target else "returned to the team queue",
            data={"assignee": target.id if target else None},
        )
    )
    session.commit()
    return ticket


def reveal_contact(session: Session, staff: StaffUser, request: ReturnRequest, reason: str) -> dict[str, str | None]:
    """The shopper's full email and phone; every reveal is written to the audit log with its reason
    (and, through the bound client address, where it was asked from)."""
    reason = " ".join(reason.split())[:REASON_MAX]
    if not reason:
        raise InvalidInput(N_("Say why you need the contact details."))
    record_access(
        session,
        staff.id,
        "reveal_contact",
        f"order:{request.order.order_number}",
        order_number=request.order.order_number,
        reason=reason,
        detail=f"request {request.rma}",
    )
    session.commit()
    log.info("staff %s revealed the contact details of order %s", staff.id, request.order.order_number)
    return {
        "email": request.order.customer_email,
        "phone": request.order.customer_phone,
        "name": request.order.customer_name,
    }


def suggested_replies(session: Session, request: ReturnRequest, limit: int = 3) -> list[Suggestion]:
    rows = session.scalars(select(CannedReplyRow).where(CannedReplyRow.active.is_(True)).order_by(CannedReplyRow.id))
    replies = [
        CannedReply(
            r.id, r.name, r.locale, r.body, frozenset(r.reasons or []), tuple(r.keywords or []), r.decision or None
        )
        for r in rows
    ]
    texts = [line.comment for line in request.lines if line.comment]
    texts += [
        e.note
        for e in request.events
        if e.actor.kind is ActorKind.SHOPPER and e.to_status == Status.PENDING_REVIEW and e.note
    ]
    return suggest(replies, [line.reason for line in request.lines], texts, request.locale, limit)


def send_reply(session: Session, request: ReturnRequest, staff: StaffUser, body: str) -> None:
    """A message to the shopper (email through the outbox, and on their status page); counts as the first response."""
    body = (body or "").strip()
    if not body:
        raise InvalidInput(N_("Write the reply first."))
    now = now_utc()
    request.events.append(
        RequestEvent(actor=Actor.staff(staff.id), kind="message", from_status=None, to_status=None, note=body[:4000])
    )
    ticket = ticket_for(session, request)
    if ticket is not None:
        ticket.first_response_at = ticket.first_response_at or now
        ticket.events.append(TicketEvent(actor=Actor.staff(staff.id), kind="replied", note=body[:4000]))
        stop_ticket_clocks(session, ticket, now, Actor.staff(staff.id), ("first_response",), "replied to the shopper")
    if request.order.customer_email:
        enqueue_email(
            session, request.order.customer_email, "staff_message", request.locale, {"rma": request.rma, "body": body}
        )
    session.commit()
