"""Query builders: each returns a ``select()`` for the caller to page and run."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Numeric,
    Select,
    case,
    exists,
    func,
    literal_column,
    or_,
    select,
    union,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased, joinedload
from sqlalchemy.sql.functions import FunctionElement

from portal.crypto import normalise
from portal.db.models import (
    Order,
    OrderLine,
    Refund,
    ReturnLine,
    ReturnRequest,
    TeamMember,
    Ticket,
    TicketClock,
    TicketEvent,
)
from portal.db.sealed import candidates
from portal.domain.lifecycle import Status
from portal.domain.money import places_by_currency
from portal.domain.sla import METRICS, ClockState
from portal.domain.states import REFUND_ACTIVE, TicketStatus

QUEUE_VIEWS = ("mine", "team", "unassigned", "breaching", "breached", "open", "all")
BREACHING_SOON = timedelta(hours=4)


# The states as literals, so the planner can match the clocks' partial indexes.
_RUNNING = TicketClock.state == literal_column(f"'{ClockState.RUNNING.value}'")
_LIVE = TicketClock.state.in_([literal_column(f"'{s.value}'") for s in (ClockState.RUNNING, ClockState.PAUSED)])


def clock_breached(now: datetime) -> ColumnElement[bool]:
    """A live (running or paused) clock that is breached at ``now``: the SQL side of
    ``sla.is_breached``. A breach once recorded (``breached_at``) counts even after a policy
    change moved the deadline into the future; a running clock is breached strictly after it."""
    return (TicketClock.breached_at.is_not(None) & _LIVE) | (_RUNNING & (TicketClock.deadline < now))


def clock_breaching_soon(now: datetime, soon: timedelta = BREACHING_SOON) -> ColumnElement[bool]:
    """A running clock, not breached, whose deadline falls within ``soon`` of ``now``."""
    return (
        _RUNNING
        & (TicketClock.deadline >= now)
        & (TicketClock.deadline <= now + soon)
        & TicketClock.breached_at.is_(None)
    )


def _clock_condition(view: str, now: datetime) -> ColumnElement[bool]:
    """Either clock (first response or resolution) puts a ticket in the Breached or Breaching-soon view."""
    return clock_breached(now) if view == "breached" else clock_breaching_soon(now)


class _InFound(FunctionElement[bool]):
    """``column IN (subquery)`` for a subquery that finds a few rows by its own index (the
    search's matches, my teams, the breached clocks), written ``column = ANY(ARRAY(subquery))``
    on PostgreSQL: the subquery runs once and the tickets are then read through the index on
    ``column``. With ``IN`` PostgreSQL planned a semi-join sized by the subquery's estimate,
    and at about a thousand rows (or an estimate that far off) it read every ticket and hashed
    it. SQLite keeps ``IN``, which it already answers through that index."""

    type = Boolean()
    inherit_cache = True
    name = "in_found"
    _is_implicitly_boolean = True  # a condition already: never compared with 1 where booleans are integers


@compiles(_InFound)
def _in_found(element: _InFound, compiler: Any, **kw: Any) -> str:
    column, found = element.clauses
    return f"{compiler.process(column, **kw)} IN {compiler.process(found, **kw)}"


@compiles(_InFound, "postgresql")
def _in_found_postgresql(element: _InFound, compiler: Any, **kw: Any) -> str:
    column, found = element.clauses
    return f"{compiler.process(column, **kw)} = ANY(ARRAY{compiler.process(found, **kw)})"


def _view_filters(view: str, staff_id: int, now: datetime | None, count_to: int | None = None) -> list:
    """Conditions on the ticket table alone for a queue view (no joins, so counts stay cheap).

    ``count_to``: the conditions only count the view, and no further than that many tickets. The
    Breached and Breaching-soon views then match tickets against the first clocks found on open
    tickets, enough for ``count_to`` of them (a ticket has one clock per metric), so that a count
    stops there instead of reading every clock in the view into its array first (99,000 of them in
    bench.sweep's queue data)."""
    open_ = Ticket.status != TicketStatus.CLOSED
    if view == "mine":
        return [Ticket.assignee_id == staff_id, open_]
    if view == "team":
        teams = select(TeamMember.team_id).where(TeamMember.staff_id == staff_id).scalar_subquery()
        return [_InFound(Ticket.team_id, teams), open_]
    if view == "unassigned":
        return [Ticket.assignee_id.is_(None), open_]
    if view in ("breaching", "breached"):
        clocks = select(TicketClock.ticket_id).where(_clock_condition(view, now or datetime.now(UTC)))
        if count_to is not None:
            # The clock's ticket is checked row by row (a scalar subquery, which PostgreSQL does not
            # turn into a join), so the scan stops at the limit; as a join it was planned as a hash
            # join that read every ticket once the clocks were a thousand.
            theirs = aliased(Ticket)  # not the outer query's ticket
            status = select(theirs.status).where(theirs.id == TicketClock.ticket_id).scalar_subquery()
            clocks = clocks.where(status != TicketStatus.CLOSED).limit(count_to * len(METRICS))
        return [_InFound(Ticket.id, clocks.scalar_subquery()), open_]
    if view == "open":
        return [open_]
    return []


def _search(stmt: Select, q: str) -> Select:
    """Rows whose order number, RMA (typed with or without dashes), pickup code or an item's SKU
    contains ``q`` as typed (``%`` and ``_`` are matched literally, never as wildcards), or whose
    shopper has exactly ``q`` as email, phone (any spacing) or full name. The shopper's details are
    encrypted, so they are matched through their blind indexes: whole values only, never a part.

    Each way of matching is its own query on one table, joined by ``UNION``, so every part can use
    its index: trigram indexes on PostgreSQL (migration 0029: ``pg_trgm`` on the lower-cased order
    number and SKU and the compacted RMA and pickup code), the blind indexes for the shopper's
    details. An ``OR`` across the joined tables would read every ticket instead."""
    needle = q.lower()
    compact = "".join(ch for ch in needle if ch not in " -")

    def contains(column: Any) -> ColumnElement[bool]:
        return func.lower(column).contains(needle, autoescape=True)

    def contains_compact(column: Any) -> ColumnElement[bool]:
        return func.replace(func.replace(func.lower(column), "-", ""), " ", "").contains(compact, autoescape=True)

    by_order = [
        contains(Order.order_number),
        Order.customer_email_bidx.in_(candidates("email", q)),
        Order.customer_name_bidx.in_(candidates("name", q)),
    ]
    if normalise("phone", q):
        by_order.append(Order.customer_phone_bidx.in_(candidates("phone", q)))
    parts: list[Select] = [
        select(ReturnRequest.id).join(Order, Order.id == ReturnRequest.order_id).where(condition)
        for condition in by_order
    ]
    parts.append(
        select(ReturnLine.request_id)
        .join(OrderLine, OrderLine.id == ReturnLine.order_line_id)
        .where(contains(OrderLine.sku))
    )
    if compact:
        parts += [
            select(ReturnRequest.id).where(contains_compact(ReturnRequest.rma)),
            select(ReturnRequest.id).where(contains_compact(ReturnRequest.pickup_code)),
        ]
    return stmt.where(_InFound(Ticket.request_id, union(*parts).scalar_subquery()))


# Queue columns a staff member can sort by; "due" (the nearest running deadline of either clock) first.
QUEUE_SORTS = ("due", "age", "value", "priority", "wear", "level")
_PRIORITY_RANK = {"urgent": 0, "high": 1, "normal": 2, "low": 3}


def _sort_key(sort: str) -> Any:
    """A column of the ticket or a correlated expression per ticket (no join, so it composes with
    the search's joins)."""
    if sort == "due":
        # The nearest running deadline, kept on the ticket so that the first page is read through
        # the due indexes, not computed from the clocks for every ticket in the view.
        return Ticket.due_at
    if sort in ("value", "wear"):
        req = aliased(ReturnRequest)  # the search joins the request table itself
        column = req.value if sort == "value" else req.max_wear
        return select(column).where(req.id == Ticket.request_id).correlate(Ticket).scalar_subquery()
    if sort == "priority":
        return case(_PRIORITY_RANK, value=Ticket.priority, else_=9)
    if sort == "level":
        return Ticket.escalation_level
    return Ticket.created_at


def shopper_replied(ticket_ids: list[int]) -> Select:
    """Tickets (of ``ticket_ids``) whose latest event is the shopper's answer: nobody has acted since."""
    latest = (
        select(TicketEvent.ticket_id, func.max(TicketEvent.id).label("last"))
        .where(TicketEvent.ticket_id.in_(ticket_ids))
        .group_by(TicketEvent.ticket_id)
        .subquery()
    )
    return (
        select(TicketEvent.ticket_id)
        .join(latest, TicketEvent.id == latest.c.last)
        .where(TicketEvent.kind == "answered")
    )


def sort_queue(stmt: Select, sort: str, descending: bool = False) -> Select:
    """Re-order a queue: by ``sort`` (one of QUEUE_SORTS), rows without a value last, then oldest first."""
    key = _sort_key(sort if sort in QUEUE_SORTS else "due")
    # NULLS LAST rather than ``key IS NULL`` first: a correlated key is then computed once per row, not twice.
    ordered = key.desc() if descending else key.asc()
    return stmt.order_by(None).order_by(ordered.nulls_last(), Ticket.id.asc())


# Queue filters on the request behind a ticket (the insights figures link to exactly these tickets).
QUEUE_FACETS = ("status", "channel", "category", "reason")


def _narrow(stmt: Select, priority: str | None, team_id: int | None, facets: Mapping[str, str] | None = None) -> Select:
    if priority:
        stmt = stmt.where(Ticket.priority == priority)
    if team_id:
        stmt = stmt.where(Ticket.team_id == team_id)
    facets = {k: v for k, v in (facets or {}).items() if k in QUEUE_FACETS and v}
    if not facets:
        return stmt
    # Correlated EXISTS on aliases: composes with the search's joins.
    req, order, line, order_line = aliased(ReturnRequest), aliased(Order), aliased(ReturnLine), aliased(OrderLine)
    request_conditions: list[ColumnElement[bool]] = [req.id == Ticket.request_id]
    if "status" in facets:
        request_conditions.append(req.status == facets["status"])
    if "channel" in facets:
        request_conditions.append(
            exists(select(order.id).where(order.id == req.order_id, order.channel == facets["channel"]))
        )
    if "category" in facets or "reason" in facets:
        line_conditions: list[ColumnElement[bool]] = [line.request_id == req.id]
        if "reason" in facets:
            line_conditions.append(line.reason == facets["reason"])
        if "category" in facets:
            line_conditions.append(
                exists(
                    select(order_line.id).where(
                        order_line.id == line.order_line_id, order_line.category == facets["category"]
                    )
                )
            )
        request_conditions.append(exists(select(line.id).where(*line_conditions)))
    return stmt.where(exists(select(req.id).where(*request_conditions)).correlate(Ticket))


def ticket_queue(
    view: str,
    staff_id: int,
    q: str = "",
    now: datetime | None = None,
    priority: str | None = None,
    team_id: int | None = None,
    facets: Mapping[str, str] | None = None,
) -> Select:
    """Tickets for a queue view, newest first, with what a row shows loaded up front; ``q`` searches
    order number, RMA, SKU and customer email or name (case-insensitive substring)."""
    if view in ("breaching", "breached"):
        # Most urgent first: the earliest deadline among the clocks that put the ticket in the view.
        now = now or datetime.now(UTC)
        stmt = select(Ticket).where(*_view_filters(view, staff_id, now))
        due = (
            select(func.min(TicketClock.deadline))
            .where(TicketClock.ticket_id == Ticket.id, _clock_condition(view, now))
            .scalar_subquery()
        )
        order = (due.is_(None), due.asc(), Ticket.id.asc())  # type: ignore[assignment]
    else:
        stmt = select(Ticket).where(*_view_filters(view, staff_id, now))
        order = (Ticket.created_at.desc(), Ticket.id.desc())  # type: ignore[assignment]  # same ORDER BY shape
    stmt = _narrow(stmt, priority, team_id, facets)
    q = (q or "").strip()
    if q:
        stmt = _search(stmt, q)
    request = joinedload(Ticket.request)
    return stmt.options(
        request.joinedload(ReturnRequest.order),
        request.selectinload(ReturnRequest.lines).joinedload(ReturnLine.order_line),
        joinedload(Ticket.team),
        joinedload(Ticket.assignee),
    ).order_by(*order)


# The queue's counts (its total and the tab badges) stop here: a figure above it is shown as "more
# than" it. Counting a view exactly reads every ticket in it, which for a desk that sees every
# ticket is every ticket in the database, on every page.
QUEUE_COUNT_LIMIT = 1000


def _count_up_to(stmt: Select, limit: int) -> Select:
    """How many rows ``stmt`` gives, counting no further than ``limit + 1``."""
    return select(func.count()).select_from(stmt.limit(limit + 1).subquery())


def queue_total(
    view: str,
    staff_id: int,
    q: str = "",
    now: datetime | None = None,
    priority: str | None = None,
    team_id: int | None = None,
    facets: Mapping[str, str] | None = None,
    limit: int = QUEUE_COUNT_LIMIT,
) -> Select:
    """How many tickets the queue holds, exactly up to ``limit``; ``limit + 1`` means more than ``limit``."""
    q = (q or "").strip()
    # The view's own conditions may stop early only when nothing else narrows the count.
    count_to = None if q or priority or team_id or facets else limit + 1
    stmt = _narrow(select(Ticket.id).where(*_view_filters(view, staff_id, now, count_to)), priority, team_id, facets)
    return _count_up_to(_search(stmt, q) if q else stmt, limit)


def queue_counts(
    views: tuple[str, ...], staff_id: int, now: datetime | None = None, limit: int = QUEUE_COUNT_LIMIT
) -> Select:
    """One query counting several views at once (the tab badges), each as ``queue_total`` counts it:
    a count per view, each through its own index and no further than ``limit + 1``."""
    return select(
        *(
            _count_up_to(select(Ticket.id).where(*_view_filters(view, staff_id, now, limit + 1)), limit)
            .scalar_subquery()
            .label(view)
            for view in views
        )
    )


# --- refunds: the SQL side of portal.domain.refunds -----------------------------------


def awaiting_refund(status=ReturnRequest.status, returnless=ReturnRequest.returnless):
    """``refunds.awaits_refund`` as a condition (on ReturnRequest unless other expressions are given)."""
    return or_(status == Status.INSPECTED.value, (status == Status.APPROVED.value) & returnless)


def _round_money(amount, currency):
    """``money.round_money`` in SQL: half away from zero to the currency's places (a CASE for non-cent currencies)."""
    places = case(places_by_currency(), value=currency, else_=2)
    return func.round(amount, places)


def order_refundable_total(order_id=ReturnRequest.order_id):
    """``refunds.order_refundable_total`` (before prior refunds) for the order ``order_id``, as a scalar subquery."""
    lines = (
        select(
            func.coalesce(
                func.sum(
                    _round_money(
                        OrderLine.unit_price * OrderLine.quantity - OrderLine.discount + OrderLine.tax, Order.currency
                    )
                ),
                0,
            )
        )
        .where(OrderLine.order_id == Order.id)
        .scalar_subquery()
    )
    total = lines + _round_money(Order.shipping_paid, Order.currency)
    return select(total).where(Order.id == order_id).scalar_subquery().cast(Numeric(14, 4, asdecimal=True))


def refund_queue(limit: int = 50) -> Select:
    """Requests awaiting a refund with none under way, oldest first, each with its order's refundable total."""
    active = select(Refund.request_id).where(Refund.status.in_([s.value for s in REFUND_ACTIVE]))
    return (
        select(ReturnRequest, order_refundable_total().label("refundable"))
        .where(awaiting_refund(), ~ReturnRequest.id.in_(active))
        .order_by(ReturnRequest.updated_at)
        .limit(limit)
    )
