"""Daily rollups of the insights figures, kept in the same transaction as the rows they count.

One table, ``insight_rollup``: a row per figure (``metric``), shop-local day, channel, category
filter ('' = any category) and team filter (0 = any team), plus the figure's own keys (``k1``,
``k2``) and its sums (``n1``..``n3`` counts, ``x1`` float sum, ``m1``, ``m2`` money sums):

========== ======================== ================ ============================================
metric     k1, k2                   day of           sums
========== ======================== ================ ============================================
sold       dimension, value         order placed     n1 orders, n2 units
returned   dimension, value         request opened   n1 requests, n2 units
reason     reason, responsibility   request opened   n1 lines, n2 units
fr_wall    minutes in tenths        ticket opened    n1 answered, x1 minutes
fr_bus     minutes in tenths        ticket opened    n1 stopped clocks, x1 business minutes
sla        team id, clock           clock stopped    n1 clocks, n2 met
escalation action                   step fired       n1 steps
money      currency                 refund paid      n1 refunds, m1 refunded, m2 store credit
recovered  disposition, currency    parcel received  n1 units, m1 value
survey     ''                       answered         n1 answers, n2 promoters, n3 detractors, x1 satisfaction
photo      model version, grade     photo taken      n1 photos, n2 agreeing, n3 scored, x1 wear
========== ======================== ================ ============================================

Every figure is computed by one ``SELECT`` per metric (``contribution``): over everything it is the
rebuild, restricted to some requests (or orders) it is what those contribute. Maintenance takes
the contribution of each request (or order) a transaction touches before its first change, again
at commit, and adds the difference: incremental and rebuilt rollups come from the same query.
The rollups are valid for the time zone recorded in ``insight_rollup_state``; a database with
history and no state row needs ``returns-portal insights rebuild``.
"""

from __future__ import annotations

import sqlite3
import typing
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    Date,
    Engine,
    Float,
    Index,
    Integer,
    Numeric,
    Select,
    String,
    Table,
    case,
    cast,
    delete,
    distinct,
    event,
    func,
    insert,
    literal,
    select,
    text,
    true,
    tuple_,
    type_coerce,
    union,
    union_all,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.orm.attributes import get_history
from sqlalchemy.sql.elements import BindParameter, Cast

from portal.db.models import (
    Base,
    EscalationDue,
    Order,
    OrderLine,
    Photo,
    ReceiptLine,
    Refund,
    ReturnLine,
    ReturnRequest,
    SurveyAnswer,
    Ticket,
    TicketClock,
)
from portal.domain.insights import local_midnight
from portal.domain.lifecycle import Status
from portal.domain.receiving import WORN_GRADES
from portal.domain.states import RefundStatus, ScoreState, StepStatus, TicketKind

# Requests that never became a return (withdrawn or turned down) do not count as returned.
NOT_RETURNED = (Status.CANCELLED.value, Status.REJECTED.value)
PROMOTER_FROM = 9
DETRACTOR_UPTO = 6
DIMENSIONS = ("all", "sku", "product", "category")


CHANNEL_ROWS = "k1 = 'all' AND category = '' AND team_id = 0"


class InsightRollup(Base):
    """One figure's sums for one shop day and one combination of filters (see the module docstring)."""

    __tablename__ = "insight_rollup"
    # The dashboard reads a metric over a run of days under one category and team filter; on
    # PostgreSQL the index carries the rest of the row, so the read never visits the table.
    __table_args__ = (
        Index(
            "ix_insight_rollup_read",
            "metric",
            "category",
            "team_id",
            "day",
            postgresql_include=["channel", "k1", "k2", "n1", "n2", "n3", "x1", "m1", "m2"],
        ),
        # The channels the filter offers, read by walking this small index (a few rows a day).
        Index(
            "ix_insight_rollup_channels",
            "metric",
            "channel",
            postgresql_where=text(CHANNEL_ROWS),
            sqlite_where=text(CHANNEL_ROWS),
        ),
    )

    metric: Mapped[str] = mapped_column(String(16), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    category: Mapped[str] = mapped_column(String(64), primary_key=True)
    team_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    k1: Mapped[str] = mapped_column(String(256), primary_key=True)
    k2: Mapped[str] = mapped_column(String(256), primary_key=True)
    n1: Mapped[int] = mapped_column(BigInteger, default=0)
    n2: Mapped[int] = mapped_column(BigInteger, default=0)
    n3: Mapped[int] = mapped_column(BigInteger, default=0)
    x1: Mapped[float] = mapped_column(Float, default=0.0)
    m1: Mapped[Decimal] = mapped_column(Numeric(24, 6), default=Decimal(0))
    m2: Mapped[Decimal] = mapped_column(Numeric(24, 6), default=Decimal(0))


class InsightRollupState(Base):
    """The time zone the rollups count days in, and when they were last rebuilt (one row)."""

    __tablename__ = "insight_rollup_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    timezone: Mapped[str] = mapped_column(String(64))
    rebuilt_at: Mapped[datetime | None]


# The sold figures of a period start from its orders; the index is declared here, beside its use.
Index("ix_shop_order_placed_at", Order.placed_at)

KEYS = ("metric", "day", "channel", "category", "team_id", "k1", "k2")
SUMS = ("n1", "n2", "n3", "x1", "m1", "m2")
_rollup = typing.cast(Table, InsightRollup.__table__)


# --- the shop's day in SQL --------------------------------------------------------------------------


def _sqlite_local_day(value: str | None, tz: str) -> str | None:
    if value is None:
        return None
    at = datetime.fromisoformat(str(value)).replace(tzinfo=UTC)
    return at.astimezone(ZoneInfo(tz)).date().isoformat()


@event.listens_for(Engine, "connect")
def _register_sqlite_functions(dbapi_conn: Any, _record: Any) -> None:
    if isinstance(dbapi_conn, sqlite3.Connection):
        dbapi_conn.create_function("insight_local_day", 2, _sqlite_local_day, deterministic=True)


def local_day(dialect: str, col: Any, tz: str) -> Any:
    """The shop-local calendar day of a UTC timestamp column, daylight saving included."""
    if dialect == "postgresql":
        return cast(func.timezone(tz, col), Date)
    return type_coerce(func.insight_local_day(col, tz), Date)


def minutes_between(dialect: str, later: Any, earlier: Any) -> Any:
    if dialect == "postgresql":
        return cast(func.extract("epoch", later - earlier), Float) / 60.0
    return (func.julianday(later) - func.julianday(earlier)) * 1440.0


def tenths(dialect: str, minutes: Any) -> Any:
    """Minutes to whole tenths, half up (the precision the dashboard shows percentiles in)."""
    if dialect == "postgresql":
        return cast(func.floor(minutes * 10 + 0.5), BigInteger)
    return cast(minutes * 10 + 0.5, Integer)  # minutes are never negative: truncation is floor


# --- contributions ----------------------------------------------------------------------------------


def _flags() -> Any:
    """Two rows, 0 and 1: each fact is counted once under "any" and once under its own filter value."""
    return union_all(select(literal(0).label("f")), select(literal(1).label("f"))).subquery("flags")


def _request_teams(ids: Iterable[int] | None) -> Any:
    """(request, team filter): every request under 0, and under each team one of its tickets is in."""
    everyone = select(ReturnRequest.id.label("request_id"), literal(0).label("team_id"))
    teams = select(Ticket.request_id.label("request_id"), Ticket.team_id.label("team_id")).where(
        Ticket.kind == TicketKind.RETURN.value  # a data request's ticket is not the return's team
    )
    if ids is not None:
        everyone = everyone.where(ReturnRequest.id.in_(ids))
        teams = teams.where(Ticket.request_id.in_(ids))
    return union(everyone, teams).subquery("request_teams")


def _request_categories(ids: Iterable[int] | None) -> Any:
    """(request, category filter): every request under '', and under each category of its lines."""
    everyone = select(ReturnRequest.id.label("request_id"), literal("").label("category"))
    cats = select(ReturnLine.request_id.label("request_id"), OrderLine.category.label("category")).join(
        OrderLine, ReturnLine.order_line_id == OrderLine.id
    )
    if ids is not None:
        everyone = everyone.where(ReturnRequest.id.in_(ids))
        cats = cats.where(ReturnLine.request_id.in_(ids))
    return union(everyone, cats).subquery("request_categories")


def _row(
    metric: str,
    day: Any,
    channel: Any,
    category: Any,
    team: Any,
    k1: Any,
    k2: Any,
    *,
    n1: Any = None,
    n2: Any = None,
    n3: Any = None,
    x1: Any = None,
    m1: Any = None,
    m2: Any = None,
) -> list[Any]:
    def zero(value: Any, kind: Any) -> Any:
        return cast(literal(0), kind) if value is None else cast(func.coalesce(value, 0), kind)

    return [  # the first seven are the key: _grouped groups by those that are not constants
        literal(metric).label("metric"),
        day.label("day"),
        channel.label("channel"),
        category.label("category"),
        cast(team, Integer).label("team_id"),
        cast(k1, String).label("k1"),
        cast(k2, String).label("k2"),
        zero(n1, BigInteger).label("n1"),
        zero(n2, BigInteger).label("n2"),
        zero(n3, BigInteger).label("n3"),
        zero(x1, Float).label("x1"),
        zero(m1, Numeric(24, 6)).label("m1"),
        zero(m2, Numeric(24, 6)).label("m2"),
    ]


def _grouped(stmt: Select[Any], columns: list[Any]) -> Select[Any]:
    keys = [col.element for col in columns[1:7]]
    groups = [key for key in keys if not _constant(key)]
    return stmt.with_only_columns(*columns).group_by(*groups)


def _constant(expr: Any) -> bool:
    while isinstance(expr, Cast):
        expr = expr.clause
    return isinstance(expr, BindParameter)


Window = tuple[datetime, datetime] | None


def _in(col: Any, window: Window) -> list[Any]:
    return [] if window is None else [col >= window[0], col < window[1]]


def sold(dialect: str, tz: str, order_ids: Iterable[int] | None = None, window: Window = None) -> list[Select[Any]]:
    flags = _flags()
    day = local_day(dialect, Order.placed_at, tz)
    category = case((flags.c.f == 0, literal("")), else_=OrderLine.category)
    base = select().select_from(OrderLine).join(Order, OrderLine.order_id == Order.id).join(flags, true())
    base = base.where(*_in(Order.placed_at, window))
    if order_ids is not None:
        base = base.where(Order.id.in_(order_ids))
    keys = {"all": literal(""), "sku": OrderLine.sku, "product": OrderLine.product_name, "category": OrderLine.category}
    return [
        _grouped(
            base,
            _row(
                "sold",
                day,
                Order.channel,
                category,
                literal(0),
                literal(dim),
                keys[dim],
                n1=func.count(distinct(Order.id)),
                n2=func.sum(OrderLine.quantity),
            ),
        )
        for dim in DIMENSIONS
    ]


def _lines(ids: Iterable[int] | None, window: Window) -> tuple[Select[Any], Any, Any]:
    """Return lines with their request, order line and order, once per category and team filter."""
    flags = _flags()
    teams = _request_teams(ids)
    base = (
        select()
        .select_from(ReturnLine)
        .join(ReturnRequest, ReturnLine.request_id == ReturnRequest.id)
        .join(OrderLine, ReturnLine.order_line_id == OrderLine.id)
        .join(Order, OrderLine.order_id == Order.id)
        .join(teams, teams.c.request_id == ReturnRequest.id)
        .join(flags, true())
        .where(*_in(ReturnRequest.created_at, window))
    )
    if ids is not None:
        base = base.where(ReturnRequest.id.in_(ids))
    category = case((flags.c.f == 0, literal("")), else_=OrderLine.category)
    return base, category, teams.c.team_id


def returned(dialect: str, tz: str, ids: Iterable[int] | None = None, window: Window = None) -> list[Select[Any]]:
    base, category, team = _lines(ids, window)
    base = base.where(ReturnRequest.status.not_in(NOT_RETURNED), ReturnLine.accepted)
    day = local_day(dialect, ReturnRequest.created_at, tz)
    keys = {"all": literal(""), "sku": OrderLine.sku, "product": OrderLine.product_name, "category": OrderLine.category}
    return [
        _grouped(
            base,
            _row(
                "returned",
                day,
                Order.channel,
                category,
                team,
                literal(dim),
                keys[dim],
                n1=func.count(distinct(ReturnRequest.id)),
                n2=func.sum(ReturnLine.quantity),
            ),
        )
        for dim in DIMENSIONS
    ]


def reasons(dialect: str, tz: str, ids: Iterable[int] | None = None, window: Window = None) -> list[Select[Any]]:
    base, category, team = _lines(ids, window)
    day = local_day(dialect, ReturnRequest.created_at, tz)
    columns = _row(
        "reason",
        day,
        Order.channel,
        category,
        team,
        ReturnLine.reason,
        ReturnLine.responsibility,
        n1=func.count(ReturnLine.id),
        n2=func.sum(ReturnLine.quantity),
    )
    return [_grouped(base, columns)]


def _request_facts(table: Any, request_id: Any, ids: Iterable[int] | None, window_col: Any, window: Window) -> Any:
    """Rows of ``table`` with their request's channel, once per category and team filter of the request."""
    cats = _request_categories(ids)
    teams = _request_teams(ids)
    base = (
        select()
        .select_from(table)
        .join(ReturnRequest, request_id == ReturnRequest.id)
        .join(Order, ReturnRequest.order_id == Order.id)
        .join(cats, cats.c.request_id == ReturnRequest.id)
        .join(teams, teams.c.request_id == ReturnRequest.id)
        .where(*_in(window_col, window))
    )
    if ids is not None:
        base = base.where(ReturnRequest.id.in_(ids))
    return base, cats.c.category, teams.c.team_id


def _ticket_facts(table: Any, ticket_join: Any, ids: Iterable[int] | None, window_col: Any, window: Window) -> Any:
    """Rows joined to their ticket and request: category filter by the request, team by the ticket."""
    cats = _request_categories(ids)
    flags = _flags()
    base = select().select_from(table)
    if ticket_join is not None:
        base = base.join(Ticket, ticket_join)
    base = (
        base.join(ReturnRequest, Ticket.request_id == ReturnRequest.id)
        .join(Order, ReturnRequest.order_id == Order.id)
        .join(cats, cats.c.request_id == ReturnRequest.id)
        .join(flags, true())
        .where(*_in(window_col, window), Ticket.kind == TicketKind.RETURN.value)
    )
    if ids is not None:
        base = base.where(ReturnRequest.id.in_(ids))
    team = case((flags.c.f == 0, literal(0)), else_=Ticket.team_id)
    return base, cats.c.category, team


def first_response(dialect: str, tz: str, ids: Iterable[int] | None = None, window: Window = None) -> list[Select[Any]]:
    day = local_day(dialect, Ticket.created_at, tz)
    base, category, team = _ticket_facts(Ticket, None, ids, Ticket.created_at, window)
    wall = minutes_between(dialect, Ticket.first_response_at, Ticket.created_at)
    walls = base.where(Ticket.first_response_at.is_not(None))
    bucket = tenths(dialect, wall)
    stmts = [
        _grouped(
            walls,
            _row(
                "fr_wall", day, Order.channel, category, team, bucket, literal(""), n1=func.count(), x1=func.sum(wall)
            ),
        )
    ]
    base, category, team = _ticket_facts(
        TicketClock, TicketClock.ticket_id == Ticket.id, ids, Ticket.created_at, window
    )
    clocks = base.where(TicketClock.metric == "first_response", TicketClock.state == "stopped")
    used = TicketClock.used_minutes
    stmts.append(
        _grouped(
            clocks,
            _row(
                "fr_bus",
                day,
                Order.channel,
                category,
                team,
                tenths(dialect, used),
                literal(""),
                n1=func.count(),
                x1=func.sum(used),
            ),
        )
    )
    return stmts


def sla(dialect: str, tz: str, ids: Iterable[int] | None = None, window: Window = None) -> list[Select[Any]]:
    base, category, _team = _ticket_facts(
        TicketClock, TicketClock.ticket_id == Ticket.id, ids, TicketClock.stopped_at, window
    )
    base = base.where(TicketClock.stopped_at.is_not(None))
    base = base.where(_team == 0)  # the team is the row's key; the filter reads it from there
    day = local_day(dialect, TicketClock.stopped_at, tz)
    columns = _row(
        "sla",
        day,
        Order.channel,
        category,
        literal(0),
        Ticket.team_id,
        TicketClock.metric,
        n1=func.count(),
        n2=func.sum(case((TicketClock.met.is_(True), 1), else_=0)),
    )
    return [_grouped(base, columns)]


def escalations(dialect: str, tz: str, ids: Iterable[int] | None = None, window: Window = None) -> list[Select[Any]]:
    base, category, team = _ticket_facts(
        EscalationDue, EscalationDue.ticket_id == Ticket.id, ids, EscalationDue.done_at, window
    )
    base = base.where(EscalationDue.status == StepStatus.DONE.value, EscalationDue.done_at.is_not(None))
    day = local_day(dialect, EscalationDue.done_at, tz)
    columns = _row("escalation", day, Order.channel, category, team, EscalationDue.action, literal(""), n1=func.count())
    return [_grouped(base, columns)]


def money(dialect: str, tz: str, ids: Iterable[int] | None = None, window: Window = None) -> list[Select[Any]]:
    base, category, team = _request_facts(Refund, Refund.request_id, ids, Refund.executed_at, window)
    base = base.where(Refund.status == RefundStatus.SUCCEEDED.value, Refund.executed_at.is_not(None))
    day = local_day(dialect, Refund.executed_at, tz)
    columns = _row(
        "money",
        day,
        Order.channel,
        category,
        team,
        Refund.currency,
        literal(""),
        n1=func.count(),
        m1=func.sum(Refund.amount),
        m2=func.sum(Refund.store_credit),
    )
    return [_grouped(base, columns)]


def recovered(dialect: str, tz: str, ids: Iterable[int] | None = None, window: Window = None) -> list[Select[Any]]:
    base, category, team = _request_facts(ReceiptLine, ReceiptLine.request_id, ids, ReceiptLine.received_at, window)
    base = base.join(ReturnLine, ReceiptLine.return_line_id == ReturnLine.id).where(ReceiptLine.quantity > 0)
    day = local_day(dialect, ReceiptLine.received_at, tz)
    per_unit = ReturnLine.value * ReceiptLine.quantity / ReturnLine.quantity
    columns = _row(
        "recovered",
        day,
        Order.channel,
        category,
        team,
        ReceiptLine.disposition,
        Order.currency,
        n1=func.sum(ReceiptLine.quantity),
        m1=func.sum(per_unit),
    )
    return [_grouped(base, columns)]


def survey(dialect: str, tz: str, ids: Iterable[int] | None = None, window: Window = None) -> list[Select[Any]]:
    base, category, team = _request_facts(SurveyAnswer, SurveyAnswer.request_id, ids, SurveyAnswer.answered_at, window)
    day = local_day(dialect, SurveyAnswer.answered_at, tz)
    columns = _row(
        "survey",
        day,
        Order.channel,
        category,
        team,
        literal(""),
        literal(""),
        n1=func.count(),
        n2=func.sum(case((SurveyAnswer.nps >= PROMOTER_FROM, 1), else_=0)),
        n3=func.sum(case((SurveyAnswer.nps <= DETRACTOR_UPTO, 1), else_=0)),
        x1=func.sum(SurveyAnswer.satisfaction),
    )
    return [_grouped(base, columns)]


def photos(dialect: str, tz: str, ids: Iterable[int] | None = None, window: Window = None) -> list[Select[Any]]:
    base, category, team = _request_facts(Photo, Photo.request_id, ids, Photo.created_at, window)
    base = base.join(ReturnLine, Photo.line_id == ReturnLine.id).where(
        Photo.score_state == ScoreState.SCORED.value, ReturnLine.grade.is_not(None)
    )
    worn_truth = case(
        (ReturnLine.wear_confirmed.is_not(None), ReturnLine.wear_confirmed),
        else_=ReturnLine.grade.in_(sorted(WORN_GRADES)),
    )
    agree = func.sum(case(((Photo.wear_label == "wear") == worn_truth, 1), else_=0))
    day = local_day(dialect, Photo.created_at, tz)
    columns = _row(
        "photo",
        day,
        Order.channel,
        category,
        team,
        func.coalesce(Photo.model_version, "?"),
        ReturnLine.grade,
        n1=func.count(Photo.id),
        n2=agree,
        n3=func.count(Photo.wear_probability),
        x1=func.sum(Photo.wear_probability),
    )
    return [_grouped(base, columns)]


# Families of figures a request contributes to, and the query of each.
REQUEST_FAMILIES = {
    "returned": returned,
    "reason": reasons,
    "fr": first_response,
    "sla": sla,
    "escalation": escalations,
    "money": money,
    "recovered": recovered,
    "survey": survey,
    "photo": photos,
}
ALL = frozenset(REQUEST_FAMILIES)
# The metrics each family writes (for a rebuild of some days).
FAMILY_METRICS = {
    "sold": ("sold",),
    "returned": ("returned",),
    "reason": ("reason",),
    "fr": ("fr_wall", "fr_bus"),
    "sla": ("sla",),
    "escalation": ("escalation",),
    "money": ("money",),
    "recovered": ("recovered",),
    "survey": ("survey",),
    "photo": ("photo",),
}


def _statements(dialect: str, tz: str, family: str, ids: Iterable[int] | None, window: Window) -> list[Select[Any]]:
    if family == "sold":
        return sold(dialect, tz, ids, window)
    return REQUEST_FAMILIES[family](dialect, tz, ids, window)


def contribution(session: Session, tz: str, family: str, ids: Iterable[int]) -> dict[tuple[Any, ...], list[Any]]:
    """What the given requests (or orders, for "sold") add to the rollups, keyed like the table."""
    found: dict[tuple[Any, ...], list[Any]] = {}
    ids = sorted(set(ids))
    if not ids:
        return found
    dialect = session.get_bind().dialect.name
    for stmt in _statements(dialect, tz, family, ids, None):
        for row in session.execute(stmt):
            key = _key(row[:7])
            found[key] = [row[7] or 0, row[8] or 0, row[9] or 0, float(row[10] or 0), _dec(row[11]), _dec(row[12])]
    return found


def _dec(value: Any) -> Decimal:
    return Decimal(str(value or 0))


def _key(values: Iterable[Any]) -> tuple[Any, ...]:
    metric, day, channel, category, team, k1, k2 = values
    if isinstance(day, str):
        day = date.fromisoformat(day[:10])
    elif isinstance(day, datetime):
        day = day.date()
    return (metric, day, channel, category, int(team), str(k1), str(k2))


def rebuild(session: Session, tz: str, first: date | None = None, last: date | None = None) -> int:
    """Recompute the rollups of days ``first``..``last`` (all days when not given) from the raw tables
    and record the zone. Does not commit. Returns the number of rollup rows there are now."""
    dialect = session.get_bind().dialect.name
    window: Window = None
    stale = delete(_rollup)
    if first is not None or last is not None:
        start = local_midnight(first, tz) if first else datetime(1970, 1, 1, tzinfo=UTC)
        end = local_midnight(last + timedelta(days=1), tz) if last else datetime(9999, 1, 1, tzinfo=UTC)
        window = (start, end)
        if first:
            stale = stale.where(_rollup.c.day >= first)
        if last:
            stale = stale.where(_rollup.c.day <= last)
    state = session.get(InsightRollupState, 1)
    if state is not None and state.timezone != tz and window is not None:
        raise ValueError("the rollups count days in another time zone: rebuild every day")
    session.execute(stale)
    for family in ("sold", *REQUEST_FAMILIES):
        for stmt in _statements(dialect, tz, family, None, window):
            session.execute(insert(_rollup).from_select(list(KEYS + SUMS), stmt))
    written = session.scalar(select(func.count()).select_from(_rollup)) or 0
    if state is None:
        session.add(InsightRollupState(id=1, timezone=tz, rebuilt_at=datetime.now(UTC)))
    else:
        state.timezone, state.rebuilt_at = tz, datetime.now(UTC)
    return written


def rollup_zone(session: Session) -> str | None:
    """The time zone the rollups are kept in, or None while they are not kept (rebuild first)."""
    with session.no_autoflush:
        return session.scalar(select(InsightRollupState.timezone).where(InsightRollupState.id == 1))


# --- maintenance --------------------------------------------------------------------------------

# Columns whose change moves a figure, per class: family -> columns (None: any insert or delete).
_WATCH: dict[type, dict[str, tuple[str, ...]]] = {
    Order: {"sold": ("placed_at", "channel")},
    OrderLine: {"sold": ("quantity", "sku", "product_name", "category", "order_id")},
    ReturnRequest: {"returned": ("status", "created_at", "order_id"), "reason": ("created_at", "order_id")},
    ReturnLine: {
        "returned": ("quantity", "staff_decision", "order_line_id", "request_id"),
        "reason": ("quantity", "reason", "responsibility", "order_line_id", "request_id"),
        "photo": ("grade", "wear_confirmed"),
        "recovered": ("value", "quantity"),
    },
    Ticket: {"fr": ("created_at", "first_response_at")},
    TicketClock: {
        "fr": ("metric", "state", "used_minutes", "ticket_id"),
        "sla": ("metric", "met", "stopped_at", "ticket_id"),
    },
    EscalationDue: {"escalation": ("status", "done_at", "action", "ticket_id")},
    Refund: {"money": ("status", "executed_at", "amount", "store_credit", "currency", "request_id")},
    ReceiptLine: {"recovered": ("quantity", "disposition", "received_at", "return_line_id", "request_id")},
    Photo: {"photo": ("score_state", "wear_label", "wear_probability", "model_version", "created_at", "line_id")},
    SurveyAnswer: {"survey": ("nps", "satisfaction", "answered_at", "request_id")},
}
# A new or removed line, a new ticket or a ticket moved to another team changes which category or
# team filters a request falls under: every figure of the request.
_EVERYTHING: dict[type, tuple[str, ...]] = {ReturnLine: ("order_line_id",), Ticket: ("team_id", "request_id")}


def _families(obj: Any, new_or_deleted: bool) -> set[str]:
    watch = _WATCH[type(obj)]
    if new_or_deleted:
        if type(obj) in (ReturnRequest, ReturnLine, Ticket):
            return set(ALL)
        return set(watch)
    changed = {name for name in _column_names(obj) if get_history(obj, name).has_changes()}
    if changed & set(_EVERYTHING.get(type(obj), ())):
        return set(ALL)
    return {family for family, columns in watch.items() if changed & set(columns)}


def _column_names(obj: Any) -> set[str]:
    names: set[str] = set()
    for columns in _WATCH[type(obj)].values():
        names.update(columns)
    names.update(_EVERYTHING.get(type(obj), ()))
    return names


def _owner(session: Session, obj: Any) -> tuple[str, int] | None:
    """("order", id) or ("request", id) of a changed row, from its keys or its parent objects;
    None while its owner is itself new (nothing counted before)."""
    if isinstance(obj, tuple):
        return obj
    if isinstance(obj, Order):
        return ("order", obj.id) if obj.id else None
    if isinstance(obj, OrderLine):
        order_id = obj.order_id or (obj.order.id if obj.order is not None else None)
        return ("order", order_id) if order_id else None
    if isinstance(obj, ReturnRequest):
        return ("request", obj.id) if obj.id else None
    request_id = getattr(obj, "request_id", None)
    if request_id:
        return ("request", request_id)
    parent: Any = None
    if isinstance(obj, ReturnLine | Refund | Photo):
        parent = obj.request
    elif isinstance(obj, Ticket):
        parent = obj.request
    elif isinstance(obj, TicketClock | EscalationDue):
        ticket_id = obj.ticket_id
        if ticket_id:
            loaded = session.identity_map.get(session.identity_key(Ticket, ticket_id))
            if loaded is not None:  # the escalation sweep loads its batch's tickets: no query per step
                return ("request", loaded.request_id)
            found = session.scalar(select(Ticket.request_id).where(Ticket.id == ticket_id))
            return ("request", found) if found else None
        parent = getattr(obj, "ticket", None)
    elif isinstance(obj, ReceiptLine | SurveyAnswer):
        parent = getattr(obj, "return_line", None) or getattr(obj, "request", None)
    if parent is None:
        return None
    return _owner(session, parent)


_STATE = "insight_rollups"


def _tracked(session: Session) -> dict[str, Any] | None:
    return session.info.get(_STATE)


@event.listens_for(Session, "before_flush")
def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
    changed: list[tuple[Any, bool]] = []
    for obj in session.new:
        if type(obj) in _WATCH:
            changed.append((obj, True))
    for obj in session.deleted:
        if type(obj) in _WATCH:
            changed.append((obj, True))
    for obj in session.dirty:
        if type(obj) in _WATCH and session.is_modified(obj, include_collections=False):
            changed.append((obj, False))
    if not changed:
        return
    with session.no_autoflush:
        state = _start_tracking(session)
        if state is None:
            return
        wanted: dict[str, set[int]] = defaultdict(set)
        for obj, new_or_deleted in changed:
            families = _families(obj, new_or_deleted)
            if isinstance(obj, Order) and obj.id and not new_or_deleted and get_history(obj, "channel").has_changes():
                # Every figure of the order's requests is counted under its channel.
                for request_id in session.scalars(select(ReturnRequest.id).where(ReturnRequest.order_id == obj.id)):
                    state["pending"].append((("request", request_id), ALL))
                    for family in ALL:
                        if (family, request_id) not in state["old"]:
                            wanted[family].add(request_id)
            if isinstance(obj, Order | OrderLine):
                families = {"sold"} if families else set()
            if not families:
                continue
            owner = _owner(session, obj)
            state["pending"].append((obj, families))
            if owner is None:
                state["unresolved"].append((obj, families))  # its owner is new: counted nothing before
                continue
            for family in families:
                if (family, owner[1]) not in state["old"]:
                    wanted[family].add(owner[1])
        _remember_before(session, state, wanted)


def _start_tracking(session: Session) -> dict[str, Any] | None:
    """This transaction's rollup bookkeeping, started if need be; None while there are no rollups to keep."""
    state = _tracked(session)
    if state is None:
        zone = _zone_for_maintenance(session)
        if zone is None:
            return None
        state = session.info[_STATE] = {"zone": zone, "old": {}, "pending": [], "unresolved": []}
    return state


def _remember_before(session: Session, state: dict[str, Any], wanted: dict[str, set[int]]) -> None:
    """Read the figures of the owners about to change (per family) as they stand, for the difference at commit."""
    for family, ids in wanted.items():
        found = contribution(session, state["zone"], family, ids)
        for owner_id in ids:
            state["old"][(family, owner_id)] = {}
        for key, sums in found.items():
            # Keyed by family only: the old rows of all owners of a family are summed, which
            # is what the difference at commit needs.
            state["old"].setdefault((family, None), {})
            bucket = state["old"][(family, None)]
            if key in bucket:
                bucket[key] = [a + b for a, b in zip(bucket[key], sums, strict=True)]
            else:
                bucket[key] = sums


def changing(session: Session, family: str, request_ids: Iterable[int]) -> None:
    """Tell the rollups that statements outside the ORM (a bulk ``UPDATE``) are about to change
    ``family``'s facts of these requests: their figures are read now, before the change, and the
    difference is applied at the commit, as for changes made through the ORM. Call it after
    flushing and before the statements run."""
    with session.no_autoflush:
        state = _start_tracking(session)
        if state is None:
            return
        wanted: dict[str, set[int]] = defaultdict(set)
        for request_id in set(request_ids):
            state["pending"].append((("request", request_id), {family}))
            if (family, request_id) not in state["old"]:
                wanted[family].add(request_id)
        _remember_before(session, state, wanted)


def _zone_for_maintenance(session: Session) -> str | None:
    """The rollups' zone; on a database with no order lines yet the rollups start now, in the app's zone."""
    zone = rollup_zone(session)
    if zone is not None:
        return zone
    configured = session.info.get("timezone")
    # Order rows may already be there (they are inserted before their lines); lines mean history.
    if configured is None or session.scalar(select(OrderLine.id).limit(1)) is not None:
        return None
    session.add(InsightRollupState(id=1, timezone=configured, rebuilt_at=None))
    return configured


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    session.flush()  # what is still pending is part of this commit too
    state = session.info.pop(_STATE, None)
    if state is None:
        return
    with session.no_autoflush:
        owners: dict[str, set[int]] = defaultdict(set)
        for obj, families in state["pending"]:
            owner = _owner(session, obj)
            if owner is None:
                continue
            for family in families:
                owners[family].add(owner[1])
        for family, ids in owners.items():
            before = state["old"].get((family, None), {})
            after = contribution(session, state["zone"], family, ids)
            _apply(session, before, after)


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _context: Any) -> None:
    """Owners created by this flush had nothing before it: later flushes must not take their
    half-written rows as "before"."""
    state = _tracked(session)
    if state is None or not state["unresolved"]:
        return
    with session.no_autoflush:
        for obj, families in state["unresolved"]:
            owner = _owner(session, obj)
            if owner is not None:
                for family in families:
                    state["old"].setdefault((family, owner[1]), {})
    state["unresolved"] = []


@event.listens_for(Session, "after_transaction_end")
def _after_transaction_end(session: Session, transaction: Any) -> None:
    if transaction.parent is None:  # committed (applied already), rolled back or closed
        session.info.pop(_STATE, None)


def _apply(session: Session, before: dict[tuple[Any, ...], list[Any]], after: dict[tuple[Any, ...], list[Any]]) -> None:
    deltas = []
    for key in set(before) | set(after):
        old = before.get(key, [0, 0, 0, 0.0, Decimal(0), Decimal(0)])
        new = after.get(key, [0, 0, 0, 0.0, Decimal(0), Decimal(0)])
        diff = [b - a for a, b in zip(old, new, strict=True)]
        if any(diff):
            deltas.append(dict(zip(KEYS + SUMS, (*key, *diff), strict=True)))
    if not deltas:
        return
    dialect = session.get_bind().dialect.name
    make = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = make(_rollup)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(KEYS), set_={name: getattr(_rollup.c, name) + getattr(stmt.excluded, name) for name in SUMS}
    )
    connection = session.connection()
    connection.execute(stmt, sorted(deltas, key=lambda d: tuple(str(d[k]) for k in KEYS)))
    # n1 counts the facts of every metric: a row that counts none is gone (float sums may keep a
    # rounding residue).
    empty = _rollup.c.n1 == 0
    keys = [tuple(d[k] for k in KEYS) for d in deltas]
    for start in range(0, len(keys), 200):
        connection.execute(
            delete(_rollup).where(tuple_(*(getattr(_rollup.c, k) for k in KEYS)).in_(keys[start : start + 200]), empty)
        )


__all__ = ["InsightRollup", "InsightRollupState", "changing", "contribution", "rebuild", "rollup_zone"]
