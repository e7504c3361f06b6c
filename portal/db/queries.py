"""Query builders: each returns a ``select()`` for the caller to page and run."""

from __future__ import annotations

from sqlalchemy import Select, exists, func, or_, select

from datetime import datetime, timedelta, timezone

from portal.db.models import Order, OrderLine, ReturnLine, ReturnRequest, TeamMember, Ticket, TicketClock

QUEUE_VIEWS = ("mine", "team", "unassigned", "breaching", "breached", "open", "all")
BREACHING_SOON = timedelta(hours=4)


def ticket_queue(view: str, staff_id: int, q: str = "", now: datetime | None = None) -> Select:
    """Tickets for a queue view, newest first, joined to their request and order; ``q`` searches
    order number, RMA, SKU and customer email or name (case-insensitive prefix/substring)."""
    stmt = select(Ticket).join(ReturnRequest, ReturnRequest.id == Ticket.request_id).join(Order, Order.id == ReturnRequest.order_id)
    my_teams = select(TeamMember.team_id).where(TeamMember.staff_id == staff_id)
    if view == "mine":
        stmt = stmt.where(Ticket.assignee_id == staff_id, Ticket.status != "closed")
    elif view == "team":
        stmt = stmt.where(Ticket.team_id.in_(my_teams), Ticket.status != "closed")
    elif view == "unassigned":
        stmt = stmt.where(Ticket.assignee_id.is_(None), Ticket.status != "closed")
    elif view in ("breaching", "breached"):
        now = now or datetime.now(timezone.utc)
        running = select(TicketClock.ticket_id).where(TicketClock.state == "running", TicketClock.metric == "resolution")
        if view == "breached":
            running = running.where(TicketClock.deadline <= now)
        else:
            running = running.where(TicketClock.deadline > now, TicketClock.deadline <= now + BREACHING_SOON)
        stmt = stmt.where(Ticket.id.in_(running), Ticket.status != "closed")
    elif view == "open":
        stmt = stmt.where(Ticket.status != "closed")
    q = (q or "").strip()
    if q:
        like = f"%{q.lower()}%"
        by_sku = exists(
            select(ReturnLine.id).join(OrderLine, OrderLine.id == ReturnLine.order_line_id)
            .where(ReturnLine.request_id == ReturnRequest.id, func.lower(OrderLine.sku).like(like))
        )
        stmt = stmt.where(or_(
            func.lower(Order.order_number).like(like),
            func.lower(ReturnRequest.rma).like(like),
            func.lower(Order.customer_email).like(like),
            func.lower(Order.customer_name).like(like),
            by_sku,
        ))
    return stmt.order_by(Ticket.created_at.desc(), Ticket.id.desc())


def count_of(stmt: Select) -> Select:
    return select(func.count()).select_from(stmt.order_by(None).subquery())
