"""The insights dashboard's figures: each a handful of aggregate queries (GROUP BY in the database)
returned as plain dataclasses. Rollup tables can replace any query here without the views noticing;
the arithmetic lives in ``portal.domain.insights``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    cast,
    column,
    distinct,
    func,
    inspect,
    literal,
    select,
    table,
    text,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.types import Float

from portal.db.insight_rollups import CHANNEL_ROWS, InsightRollup, rebuild, rollup_zone
from portal.db.models import (
    EscalationDue,
    InsightAlert,
    Order,
    OrderLine,
    Photo,
    ReceiptLine,
    Refund,
    ReturnLine,
    ReturnRequest,
    StaffUser,
    Team,
    Ticket,
    TicketClock,
)
from portal.domain import insights as calc
from portal.domain.lifecycle import Status
from portal.domain.receiving import WORN_GRADES
from portal.domain.roles import LEAD
from portal.domain.sla import ClockState
from portal.domain.states import RefundStatus, ScoreState, StepStatus, TicketKind, TicketStatus
from portal.domain.text import N_, Text
from portal.services.sla import notify_staff

# Requests that never became a return (withdrawn or turned down) do not count as returned.
NOT_RETURNED = (Status.CANCELLED.value, Status.REJECTED.value)
DIMENSIONS = ("sku", "product", "category", "channel")
_DIMENSION_COLUMNS = {
    "sku": OrderLine.sku,
    "product": OrderLine.product_name,
    "category": OrderLine.category,
    "channel": Order.channel,
}
CLOCKS = ("first_response", "resolution")


@dataclass(frozen=True)
class Settings:
    """The dashboard's thresholds and the shop's time zone (from the app configuration)."""

    timezone: str = "Asia/Shanghai"
    return_rate_percent: Decimal = Decimal(8)
    return_rate_min_orders: int = 20
    first_response_minutes: float = 30.0


def insight_settings(config: Mapping[str, Any]) -> Settings:
    return Settings(
        timezone=str(config.get("BABEL_DEFAULT_TIMEZONE") or "Asia/Shanghai"),
        return_rate_percent=Decimal(str(config.get("RETURN_RATE_ALERT_PERCENT", 8))),
        return_rate_min_orders=int(config.get("RETURN_RATE_ALERT_MIN_ORDERS", 20)),
        first_response_minutes=float(config.get("FIRST_RESPONSE_ALERT_MINUTES", 30)),
    )


@dataclass(frozen=True)
class Filters:
    channel: str | None = None
    category: str | None = None
    team_id: int | None = None


# --- results ------------------------------------------------------------------------------------


@dataclass
class RateRow:
    key: str
    sold_units: int = 0
    orders: int = 0
    returned_units: int = 0
    requests: int = 0
    alert: bool = False

    @property
    def unit_rate(self) -> Decimal | None:
        return calc.rate(self.returned_units, self.sold_units)

    @property
    def request_rate(self) -> Decimal | None:
        return calc.rate(self.requests, self.orders)


@dataclass
class ReturnRates:
    overall: RateRow
    by: dict[str, list[RateRow]]


@dataclass
class FirstResponse:
    answered: int
    mean_minutes: float | None
    p90_minutes: float | None
    mean_business_minutes: float | None
    p90_business_minutes: float | None
    alert: bool


@dataclass
class SlaRow:
    team_id: int
    team: str
    clock: str
    met: int
    total: int

    @property
    def rate(self) -> Decimal | None:
        return calc.rate(self.met, self.total)


@dataclass
class CountRow:
    key: str
    count: int
    team_id: int | None = None


@dataclass
class BacklogRow:
    status: str
    bucket: str
    count: int


@dataclass
class MoneyDay:
    day: date
    currency: str
    refunded: Decimal
    store_credit: Decimal


@dataclass
class RecoveredRow:
    disposition: str
    currency: str
    units: int
    value: Decimal


@dataclass
class SurveyMonth:
    month: str
    answers: int
    nps: int | None
    satisfaction: float | None


@dataclass
class Survey:
    available: bool
    answers: int = 0
    nps: int | None = None
    satisfaction: float | None = None
    months: list[SurveyMonth] = field(default_factory=list)


@dataclass
class PhotoGradeRow:
    model_version: str
    grade: str
    photos: int
    mean_wear: float | None
    agree: int

    @property
    def agreement(self) -> Decimal | None:
        return calc.rate(self.agree, self.photos)


@dataclass
class ReasonRow:
    month: str
    reason: str
    responsibility: str
    lines: int
    units: int


# --- SQL pieces -----------------------------------------------------------------------------------


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _shifted(session: Session, col: Any, minutes: int, fmt: str) -> ColumnElement[Any]:
    """``col`` (UTC) moved ``minutes`` east and formatted as ``%Y-%m-%d`` or ``%Y-%m``."""
    if _dialect(session) == "postgresql":
        moved = func.timezone("UTC", col) + func.make_interval(0, 0, 0, 0, 0, minutes)
        return func.to_char(moved, "YYYY-MM-DD" if fmt == "%Y-%m-%d" else "YYYY-MM")
    return func.strftime(fmt, col, f"{minutes:+d} minutes")


def _local(session: Session, col: Any, period: calc.Period, fmt: str = "%Y-%m-%d") -> ColumnElement[Any]:
    """The shop's calendar day (or month) of ``col``, daylight saving included: one branch per
    stretch of the period with one UTC offset."""
    segments = calc.offset_segments(period.start, period.end, period.tz)
    if len(segments) == 1:
        return _shifted(session, col, segments[0][2], fmt)
    whens = [(col < to, _shifted(session, col, minutes, fmt)) for _, to, minutes in segments[:-1]]
    return case(*whens, else_=_shifted(session, col, segments[-1][2], fmt))


def _minutes_between(session: Session, later: Any, earlier: Any) -> ColumnElement[Any]:
    if _dialect(session) == "postgresql":
        return cast(func.extract("epoch", later - earlier), Float) / 60.0
    return (func.julianday(later) - func.julianday(earlier)) * 1440.0


def _within(col: Any, period: calc.Period) -> ColumnElement[bool]:
    return and_(col >= period.start, col < period.end)


def _order_filters(filters: Filters) -> list[ColumnElement[bool]]:
    conditions = []
    if filters.channel:
        conditions.append(Order.channel == filters.channel)
    if filters.category:
        conditions.append(OrderLine.category == filters.category)
    return conditions


def _request_filters(filters: Filters, request_id: Any) -> list[ColumnElement[bool]]:
    """Conditions that keep the requests matching ``filters`` (by the id column given)."""
    conditions = []
    if filters.channel:
        conditions.append(request_id.in_(select(ReturnRequest.id).join(Order).where(Order.channel == filters.channel)))
    if filters.category:
        conditions.append(
            request_id.in_(
                select(ReturnLine.request_id)
                .join(OrderLine, ReturnLine.order_line_id == OrderLine.id)
                .where(OrderLine.category == filters.category)
            )
        )
    if filters.team_id:
        conditions.append(
            request_id.in_(select(Ticket.request_id).where(Ticket.team_id == filters.team_id, _RETURN_TICKET))
        )
    return conditions


# The returns' own tickets (a shopper's data request has a ticket of its own on the same request).
_RETURN_TICKET = Ticket.kind == TicketKind.RETURN.value


def _ticket_filters(filters: Filters) -> list[ColumnElement[bool]]:
    conditions = _request_filters(Filters(filters.channel, filters.category), Ticket.request_id)
    conditions.append(_RETURN_TICKET)  # data requests' tickets are not part of the returns figures
    if filters.team_id:
        conditions.append(Ticket.team_id == filters.team_id)
    return conditions


def _percentile(session: Session, stmt: Select[Any], value: Any, count: int, percentile: float) -> float | None:
    """The nearest-rank percentile of ``value`` over ``stmt``'s rows, read as one row from the database."""
    index = calc.rank_index(count, percentile)
    if index is None:
        return None
    found = session.scalar(stmt.with_only_columns(value).order_by(value).offset(index).limit(1))
    return None if found is None else calc.tenth_up(float(found))


# --- the figures ----------------------------------------------------------------------------------


def return_rates(session: Session, period: calc.Period, filters: Filters, settings: Settings) -> ReturnRates:
    """Returned units over units sold, and requests over orders, in the period: overall and per SKU,
    product, category and channel. Sold counts orders placed in the period; returned counts requests
    opened in it (not withdrawn or turned down, lines not refused by a reviewer)."""
    sold_base = select().select_from(OrderLine).join(Order, OrderLine.order_id == Order.id)
    sold_base = sold_base.where(_within(Order.placed_at, period), *_order_filters(filters))
    returned_base = (
        select()
        .select_from(ReturnLine)
        .join(ReturnRequest, ReturnLine.request_id == ReturnRequest.id)
        .join(OrderLine, ReturnLine.order_line_id == OrderLine.id)
        .join(Order, OrderLine.order_id == Order.id)
        .where(
            _within(ReturnRequest.created_at, period),
            ReturnRequest.status.not_in(NOT_RETURNED),
            ReturnLine.accepted,
            *_order_filters(filters),
        )
    )
    if filters.team_id:
        returned_base = returned_base.where(
            ReturnRequest.id.in_(select(Ticket.request_id).where(Ticket.team_id == filters.team_id, _RETURN_TICKET))
        )
    sold_cols = (func.coalesce(func.sum(OrderLine.quantity), 0), func.count(distinct(Order.id)))
    returned_cols = (func.coalesce(func.sum(ReturnLine.quantity), 0), func.count(distinct(ReturnRequest.id)))

    units, orders = session.execute(sold_base.with_only_columns(*sold_cols)).one()
    r_units, r_requests = session.execute(returned_base.with_only_columns(*returned_cols)).one()
    overall = RateRow("all", int(units), int(orders), int(r_units), int(r_requests))

    by: dict[str, list[RateRow]] = {}
    for name in DIMENSIONS:
        key = _DIMENSION_COLUMNS[name]
        rows: dict[str, RateRow] = {}
        for value, units, orders in session.execute(sold_base.with_only_columns(key, *sold_cols).group_by(key)):
            rows[value] = RateRow(value, int(units), int(orders))
        for value, r_units, r_requests in session.execute(
            returned_base.with_only_columns(key, *returned_cols).group_by(key)
        ):
            row = rows.setdefault(value, RateRow(value))
            row.returned_units, row.requests = int(r_units), int(r_requests)
        for row in rows.values():
            row.alert = name == "sku" and calc.rate_alert(
                row.unit_rate, row.orders, settings.return_rate_percent, settings.return_rate_min_orders
            )
        by[name] = sorted(rows.values(), key=lambda r: (-(r.unit_rate or 0), -r.returned_units, r.key))
    return ReturnRates(overall, by)


def first_response(session: Session, period: calc.Period, filters: Filters, settings: Settings) -> FirstResponse:
    """Time from a ticket opening (in the period) to its first response: mean and p90, on the wall
    clock and in the business minutes its SLA clock counted."""
    answered = select(Ticket.id).where(
        _within(Ticket.created_at, period), Ticket.first_response_at.is_not(None), *_ticket_filters(filters)
    )
    wall = _minutes_between(session, Ticket.first_response_at, Ticket.created_at)
    count, total = session.execute(answered.with_only_columns(func.count(Ticket.id), func.sum(wall))).one()
    business = (
        select(TicketClock.id)
        .join(Ticket, TicketClock.ticket_id == Ticket.id)
        .where(
            TicketClock.metric == "first_response",
            TicketClock.state == ClockState.STOPPED.value,
            _within(Ticket.created_at, period),
            *_ticket_filters(filters),
        )
    )
    b_count, b_total = session.execute(
        business.with_only_columns(func.count(TicketClock.id), func.sum(TicketClock.used_minutes))
    ).one()
    mean_wall = calc.mean(float(total) if total is not None else None, count)
    return FirstResponse(
        answered=count,
        mean_minutes=mean_wall,
        p90_minutes=_percentile(session, answered, wall, count, 90),
        mean_business_minutes=calc.mean(float(b_total) if b_total is not None else None, b_count),
        p90_business_minutes=_percentile(session, business, TicketClock.used_minutes, b_count, 90),
        alert=calc.minutes_alert(mean_wall, settings.first_response_minutes),
    )


def sla_attainment(session: Session, period: calc.Period, filters: Filters) -> list[SlaRow]:
    """Clocks stopped in the period, met or not, per team and clock."""
    stmt = (
        select(
            Team.id,
            Team.name,
            TicketClock.metric,
            func.sum(case((TicketClock.met.is_(True), 1), else_=0)),
            func.count(TicketClock.id),
        )
        .select_from(TicketClock)
        .join(Ticket, TicketClock.ticket_id == Ticket.id)
        .join(Team, Ticket.team_id == Team.id)
        .where(TicketClock.stopped_at.is_not(None), _within(TicketClock.stopped_at, period), *_ticket_filters(filters))
        .group_by(Team.id, Team.name, TicketClock.metric)
        .order_by(Team.name, TicketClock.metric)
    )
    return [SlaRow(t, name, metric, int(met or 0), int(n)) for t, name, metric, met, n in session.execute(stmt)]


def backlog(session: Session, filters: Filters, now: datetime) -> list[BacklogRow]:
    """Open tickets now, by their request's status and how long ago they were opened."""
    whens = [
        (Ticket.created_at > now - timedelta(hours=upper), literal(key))
        for key, upper in calc.AGE_BUCKETS
        if upper is not None
    ]
    bucket = case(*whens, else_=literal(calc.AGE_BUCKETS[-1][0]))
    stmt = (
        select(ReturnRequest.status, bucket, func.count(Ticket.id))
        .select_from(Ticket)
        .join(ReturnRequest, Ticket.request_id == ReturnRequest.id)
        .where(Ticket.status != TicketStatus.CLOSED.value, *_ticket_filters(filters))
        .group_by(ReturnRequest.status, bucket)
    )
    order = {key: i for i, (key, _) in enumerate(calc.AGE_BUCKETS)}
    rows = [BacklogRow(status, b, int(n)) for status, b, n in session.execute(stmt)]
    return sorted(rows, key=lambda r: (r.status, order[r.bucket]))


def escalations(session: Session, period: calc.Period, filters: Filters) -> list[CountRow]:
    """Escalation steps that fired in the period, by what they did."""
    stmt = (
        select(EscalationDue.action, func.count(EscalationDue.id))
        .join(Ticket, EscalationDue.ticket_id == Ticket.id)
        .where(
            EscalationDue.status == StepStatus.DONE.value,
            EscalationDue.done_at.is_not(None),
            _within(EscalationDue.done_at, period),
            *_ticket_filters(filters),
        )
        .group_by(EscalationDue.action)
        .order_by(EscalationDue.action)
    )
    return [CountRow(action, int(n)) for action, n in session.execute(stmt)]


def _money(value: Any) -> Decimal:
    return Decimal(str(value or 0)).quantize(Decimal("0.01"))


def money_by_day(session: Session, period: calc.Period, filters: Filters) -> list[MoneyDay]:
    """Refunds paid and store credit issued per shop day (and currency), by when they were paid."""
    day = _local(session, Refund.executed_at, period)
    stmt = (
        select(day, Refund.currency, func.sum(Refund.amount), func.sum(Refund.store_credit))
        .where(
            Refund.status == RefundStatus.SUCCEEDED.value,
            Refund.executed_at.is_not(None),
            _within(Refund.executed_at, period),
            *_request_filters(filters, Refund.request_id),
        )
        .group_by(day, Refund.currency)
        .order_by(day, Refund.currency)
    )
    return [
        MoneyDay(date.fromisoformat(str(d)[:10]), currency, _money(amount), _money(credit))
        for d, currency, amount, credit in session.execute(stmt)
    ]


def recovered_by_disposition(session: Session, period: calc.Period, filters: Filters) -> list[RecoveredRow]:
    """Units the warehouse received in the period and their value (the line's value per unit), by disposition."""
    per_unit = ReturnLine.value * ReceiptLine.quantity / ReturnLine.quantity
    stmt = (
        select(ReceiptLine.disposition, Order.currency, func.sum(ReceiptLine.quantity), func.sum(per_unit))
        .select_from(ReceiptLine)
        .join(ReturnLine, ReceiptLine.return_line_id == ReturnLine.id)
        .join(ReturnRequest, ReturnLine.request_id == ReturnRequest.id)
        .join(Order, ReturnRequest.order_id == Order.id)
        .where(
            ReceiptLine.quantity > 0,
            _within(ReceiptLine.received_at, period),
            *_request_filters(filters, ReturnRequest.id),
        )
        .group_by(ReceiptLine.disposition, Order.currency)
        .order_by(ReceiptLine.disposition, Order.currency)
    )
    return [RecoveredRow(d, c, int(n), _money(v)) for d, c, n, v in session.execute(stmt)]


# The survey is answered into ``survey_answer``; read by name so the dashboard shows "no answers
# yet" until that table exists in this database.
SURVEY_TABLE = "survey_answer"
_answers = table(SURVEY_TABLE, column("request_id"), column("nps"), column("satisfaction"), column("answered_at"))


def survey(session: Session, period: calc.Period, filters: Filters) -> Survey:
    """Net promoter score and mean satisfaction of the answers given in the period, and per month."""
    if not inspect(session.get_bind()).has_table(SURVEY_TABLE):
        return Survey(available=False)
    answered_at = _answers.c.answered_at
    promoters = func.sum(case((_answers.c.nps >= calc.PROMOTER_FROM, 1), else_=0))
    detractors = func.sum(case((_answers.c.nps <= calc.DETRACTOR_UPTO, 1), else_=0))
    month = _local(session, answered_at, period, "%Y-%m")
    base = (
        select()
        .select_from(_answers)
        .where(_within(answered_at, period), *_request_filters(filters, _answers.c.request_id))
    )
    columns = (func.count(), promoters, detractors, func.avg(_answers.c.satisfaction))
    n, p, d, sat = session.execute(base.with_only_columns(*columns)).one()
    months = [
        SurveyMonth(str(m), int(mn), calc.nps(int(mp or 0), int(md or 0), int(mn)), _one_place(msat))
        for m, mn, mp, md, msat in session.execute(
            base.with_only_columns(month, *columns).group_by(month).order_by(month)
        )
    ]
    return Survey(True, int(n), calc.nps(int(p or 0), int(d or 0), int(n)), _one_place(sat), months)


def _one_place(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)


def photo_grades(session: Session, period: calc.Period, filters: Filters) -> list[PhotoGradeRow]:
    """The classifier's wear score of shopper photos against the warehouse grade of their line, per
    model version and grade, with how often the two agree (worn means grade C or D, or wear confirmed)."""
    worn_truth = case(
        (ReturnLine.wear_confirmed.is_not(None), ReturnLine.wear_confirmed),
        else_=ReturnLine.grade.in_(sorted(WORN_GRADES)),
    )
    predicted = Photo.wear_label == "wear"
    agree = func.sum(case((predicted == worn_truth, 1), else_=0))
    version = func.coalesce(Photo.model_version, "?")
    stmt = (
        select(version, ReturnLine.grade, func.count(Photo.id), func.avg(Photo.wear_probability), agree)
        .select_from(Photo)
        .join(ReturnLine, Photo.line_id == ReturnLine.id)
        .where(
            Photo.score_state == ScoreState.SCORED.value,
            ReturnLine.grade.is_not(None),
            _within(Photo.created_at, period),
            *_request_filters(filters, Photo.request_id),
        )
        .group_by(version, ReturnLine.grade)
        .order_by(version, ReturnLine.grade)
    )
    return [
        PhotoGradeRow(v, g, int(n), None if w is None else round(float(w), 3), int(a or 0))
        for v, g, n, w, a in session.execute(stmt)
    ]


def reasons(session: Session, period: calc.Period, filters: Filters) -> list[ReasonRow]:
    """Return lines of requests opened in the period by shop month, reason and responsibility."""
    month = _local(session, ReturnRequest.created_at, period, "%Y-%m")
    stmt = (
        select(
            month,
            ReturnLine.reason,
            ReturnLine.responsibility,
            func.count(ReturnLine.id),
            func.sum(ReturnLine.quantity),
        )
        .select_from(ReturnLine)
        .join(ReturnRequest, ReturnLine.request_id == ReturnRequest.id)
        .join(OrderLine, ReturnLine.order_line_id == OrderLine.id)
        .join(Order, OrderLine.order_id == Order.id)
        .where(_within(ReturnRequest.created_at, period), *_order_filters(filters))
        .group_by(month, ReturnLine.reason, ReturnLine.responsibility)
        .order_by(month, ReturnLine.reason, ReturnLine.responsibility)
    )
    if filters.team_id:
        stmt = stmt.where(
            ReturnRequest.id.in_(select(Ticket.request_id).where(Ticket.team_id == filters.team_id, _RETURN_TICKET))
        )
    return [ReasonRow(str(m), r, resp, int(n), int(u or 0)) for m, r, resp, n, u in session.execute(stmt)]


# Distinct values by walking an index from one value to the next (a handful of probes, not a
# scan of every day's rows); the channel walk uses the partial index ix_insight_rollup_channels.
_SKIP_SCAN = """
WITH RECURSIVE found(v) AS (
    SELECT min({col}) FROM insight_rollup WHERE {where} AND {col} > ''
    UNION ALL
    SELECT (SELECT min({col}) FROM insight_rollup WHERE {where} AND {col} > found.v) FROM found WHERE found.v IS NOT NULL
)
SELECT v FROM found WHERE v IS NOT NULL ORDER BY v
"""
_CHANNEL_ROWS = "metric = 'sold' AND " + CHANNEL_ROWS


def filter_choices(session: Session) -> dict[str, list[Any]]:
    """The channels, categories and teams the filters offer (distinct values, from the database;
    from the rollups' units sold per category when they are kept, a few rows a day instead of
    every order line)."""
    teams = list(session.execute(select(Team.id, Team.name).order_by(Team.name)))
    if rollup_zone(session) is not None:
        return {
            "channels": list(session.scalars(text(_SKIP_SCAN.format(col="channel", where=_CHANNEL_ROWS)))),
            "categories": list(session.scalars(text(_SKIP_SCAN.format(col="category", where="metric = 'sold'")))),
            "teams": teams,
        }
    return {
        "channels": list(session.scalars(select(Order.channel).distinct().order_by(Order.channel))),
        "categories": list(session.scalars(select(OrderLine.category).distinct().order_by(OrderLine.category))),
        "teams": teams,
    }


@dataclass
class Dashboard:
    period: calc.Period
    filters: Filters
    settings: Settings
    rates: ReturnRates | None = None
    first_response: FirstResponse | None = None
    sla: list[SlaRow] = field(default_factory=list)
    backlog: list[BacklogRow] = field(default_factory=list)
    escalations: list[CountRow] = field(default_factory=list)
    money: list[MoneyDay] = field(default_factory=list)
    recovered: list[RecoveredRow] = field(default_factory=list)
    survey: Survey | None = None
    photos: list[PhotoGradeRow] = field(default_factory=list)
    reasons: list[ReasonRow] = field(default_factory=list)


def dashboard(
    session: Session,
    period: calc.Period,
    filters: Filters,
    settings: Settings,
    now: datetime,
    *,
    operations: bool = True,
    source: str = "auto",
) -> Dashboard:
    """Every figure of the dashboard; ``operations=False`` leaves out all but the money (finance's view).

    Read from the daily rollups when they count days in the shop's zone (``source="auto"``), else
    from the raw tables; ``source`` "raw" or "rollups" chooses (the rollups must then be kept)."""
    rolled = source == "rollups" or (source == "auto" and rollups_ready(session, settings))
    board = Dashboard(period, filters, settings)
    if rolled:
        board.money = rolled_money_by_day(session, period, filters)
        board.recovered = rolled_recovered(session, period, filters)
    else:
        board.money = money_by_day(session, period, filters)
        board.recovered = recovered_by_disposition(session, period, filters)
    if not operations:
        return board
    board.backlog = backlog(session, filters, now)
    if rolled:
        board.rates = rolled_return_rates(session, period, filters, settings)
        board.first_response = rolled_first_response(session, period, filters, settings)
        board.sla = rolled_sla(session, period, filters)
        board.escalations = rolled_escalations(session, period, filters)
        board.survey = rolled_survey(session, period, filters)
        board.photos = rolled_photo_grades(session, period, filters)
        board.reasons = rolled_reasons(session, period, filters)
        return board
    board.rates = return_rates(session, period, filters, settings)
    board.first_response = first_response(session, period, filters, settings)
    board.sla = sla_attainment(session, period, filters)
    board.escalations = escalations(session, period, filters)
    board.survey = survey(session, period, filters)
    board.photos = photo_grades(session, period, filters)
    board.reasons = reasons(session, period, filters)
    return board


# --- the same figures from the daily rollups ----------------------------------------------------------


def rollups_ready(session: Session, settings: Settings) -> bool:
    """The rollups are kept, and count days in the shop's zone."""
    return rollup_zone(session) == settings.timezone


_USED_SUMS = {
    "sold": ("n1", "n2"),
    "returned": ("n1", "n2"),
    "reason": ("n1", "n2"),
    "fr_wall": ("n1", "x1"),
    "fr_bus": ("n1", "x1"),
    "sla": ("n1", "n2"),
    "escalation": ("n1",),
}


def _rolled(
    session: Session, metric: str, period: calc.Period, filters: Filters, groups: tuple[str, ...], *, teams: bool = True
) -> list[Any]:
    """Sums of one rollup metric over the period's days under the filters, grouped by ``groups``."""
    r = InsightRollup.__table__.c
    used = _USED_SUMS.get(metric, ("n1", "n2", "n3", "x1", "m1", "m2"))
    # Sums a figure does not read stay constant 0 (numeric sums over many rows are not free).
    sums = [func.sum(getattr(r, name)) if name in used else literal(0) for name in ("n1", "n2", "n3", "x1", "m1", "m2")]
    keys = [getattr(r, name) for name in groups]
    stmt = select(*keys, *sums).where(
        r.metric == metric,
        r.day >= period.first,
        r.day <= period.last,
        r.category == (filters.category or ""),
        r.team_id == ((filters.team_id or 0) if teams else 0),
    )
    if filters.channel:
        stmt = stmt.where(r.channel == filters.channel)
    return list(session.execute(stmt.group_by(*keys))) if keys else [session.execute(stmt).one()]


def rolled_return_rates(session: Session, period: calc.Period, filters: Filters, settings: Settings) -> ReturnRates:
    """``return_rates`` from the rollups."""
    rows: dict[str, dict[str, RateRow]] = {name: {} for name in DIMENSIONS}
    overall = RateRow("all")
    for metric, teams in (("sold", False), ("returned", True)):
        for dim, key, channel, n1, n2, *_ in _rolled(
            session, metric, period, filters, ("k1", "k2", "channel"), teams=teams
        ):
            targets = [overall, rows["channel"].setdefault(channel, RateRow(channel))] if dim == "all" else []
            if dim in rows and dim != "all":
                targets = [rows[dim].setdefault(key, RateRow(key))]
            for row in targets:
                if metric == "sold":
                    row.orders += int(n1 or 0)
                    row.sold_units += int(n2 or 0)
                else:
                    row.requests += int(n1 or 0)
                    row.returned_units += int(n2 or 0)
    by: dict[str, list[RateRow]] = {}
    for name in DIMENSIONS:
        for row in rows[name].values():
            row.alert = name == "sku" and calc.rate_alert(
                row.unit_rate, row.orders, settings.return_rate_percent, settings.return_rate_min_orders
            )
        by[name] = sorted(rows[name].values(), key=lambda r: (-(r.unit_rate or 0), -r.returned_units, r.key))
    return ReturnRates(overall, by)


def _minutes(
    session: Session, metric: str, period: calc.Period, filters: Filters
) -> tuple[int, float | None, float | None]:
    rows = _rolled(session, metric, period, filters, ("k1",))
    counts = [(int(k1), int(n1)) for k1, n1, _n2, _n3, _x1, _m1, _m2 in rows if n1]
    count = sum(n for _, n in counts)
    total = sum(float(x1 or 0) for *_, x1, _m1, _m2 in rows)
    return count, calc.mean(total if count else None, count), calc.percentile_of_tenths(counts, 90)


def rolled_first_response(session: Session, period: calc.Period, filters: Filters, settings: Settings) -> FirstResponse:
    """``first_response`` from the rollups (percentiles to the tenth of a minute, as shown)."""
    count, mean_wall, p90_wall = _minutes(session, "fr_wall", period, filters)
    _b_count, mean_business, p90_business = _minutes(session, "fr_bus", period, filters)
    return FirstResponse(
        answered=count,
        mean_minutes=mean_wall,
        p90_minutes=p90_wall,
        mean_business_minutes=mean_business,
        p90_business_minutes=p90_business,
        alert=calc.minutes_alert(mean_wall, settings.first_response_minutes),
    )


def rolled_sla(session: Session, period: calc.Period, filters: Filters) -> list[SlaRow]:
    """``sla_attainment`` from the rollups (the team is the row's key)."""
    names = {team_id: name for team_id, name in session.execute(select(Team.id, Team.name))}
    found = []
    for team, clock, n1, n2, *_ in _rolled(session, "sla", period, filters, ("k1", "k2"), teams=False):
        team_id = int(team)
        if filters.team_id and team_id != filters.team_id or not n1 or team_id not in names:
            continue
        found.append(SlaRow(team_id, names[team_id], clock, int(n2 or 0), int(n1)))
    return sorted(found, key=lambda r: (r.team, r.clock))


def rolled_escalations(session: Session, period: calc.Period, filters: Filters) -> list[CountRow]:
    rows = _rolled(session, "escalation", period, filters, ("k1",))
    return [CountRow(action, int(n1)) for action, n1, *_ in sorted(rows) if n1]


def rolled_money_by_day(session: Session, period: calc.Period, filters: Filters) -> list[MoneyDay]:
    rows = _rolled(session, "money", period, filters, ("day", "k1"))
    return [
        MoneyDay(_as_date(day), currency, _money(m1), _money(m2))
        for day, currency, n1, _n2, _n3, _x1, m1, m2 in sorted(rows, key=lambda r: (str(r[0]), r[1]))
        if n1
    ]


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def rolled_recovered(session: Session, period: calc.Period, filters: Filters) -> list[RecoveredRow]:
    rows = _rolled(session, "recovered", period, filters, ("k1", "k2"))
    return [RecoveredRow(d, c, int(n1), _money(m1)) for d, c, n1, _n2, _n3, _x1, m1, _m2 in sorted(rows) if n1]


def rolled_survey(session: Session, period: calc.Period, filters: Filters) -> Survey:
    """``survey`` from the rollups: answers, promoters and detractors per day add up to the month's."""
    months: dict[str, list[float]] = {}
    for day, n1, n2, n3, x1, *_ in _rolled(session, "survey", period, filters, ("day",)):
        month = months.setdefault(_as_date(day).strftime("%Y-%m"), [0, 0, 0, 0.0])
        for i, value in enumerate((n1, n2, n3, x1)):
            month[i] += float(value or 0)
    total = [sum(m[i] for m in months.values()) for i in range(4)]

    def _figures(n: float, p: float, d: float, sat: float) -> tuple[int, int | None, float | None]:
        count = int(n)
        return count, calc.nps(int(p), int(d), count), _one_place(sat / count) if count else None

    listed = [SurveyMonth(key, *_figures(*values)) for key, values in sorted(months.items()) if values[0]]
    return Survey(True, *_figures(*total), listed)


def rolled_photo_grades(session: Session, period: calc.Period, filters: Filters) -> list[PhotoGradeRow]:
    rows = _rolled(session, "photo", period, filters, ("k1", "k2"))
    return [
        PhotoGradeRow(v, g, int(n1), round(float(x1) / int(n3), 3) if n3 else None, int(n2 or 0))
        for v, g, n1, n2, n3, x1, _m1, _m2 in sorted(rows)
        if n1
    ]


def rolled_reasons(session: Session, period: calc.Period, filters: Filters) -> list[ReasonRow]:
    totals: dict[tuple[str, str, str], list[int]] = {}
    for day, reason, responsibility, n1, n2, *_ in _rolled(session, "reason", period, filters, ("day", "k1", "k2")):
        row = totals.setdefault((_as_date(day).strftime("%Y-%m"), reason, responsibility), [0, 0])
        row[0] += int(n1 or 0)
        row[1] += int(n2 or 0)
    return [ReasonRow(m, r, resp, n, u) for (m, r, resp), (n, u) in sorted(totals.items()) if n]


def rebuild_rollups(session: Session, timezone: str, first: date | None = None, last: date | None = None) -> int:
    """Recompute the insights rollups of the given shop days (all when not given) from the raw tables,
    in the shop's zone; idempotent. Commits; returns the rollup rows written."""
    written = rebuild(session, timezone, first, last)
    session.commit()
    return written


# --- alerts ---------------------------------------------------------------------------------------

ALERT_KIND = "insight_alert"


@dataclass(frozen=True)
class Alert:
    kind: str  # return_rate | first_response
    subject: str
    value: str
    message: Text
    ticket_id: int


def _latest_ticket_for_sku(session: Session, period: calc.Period, sku: str) -> int | None:
    return session.scalar(
        select(Ticket.id)
        .join(ReturnLine, ReturnLine.request_id == Ticket.request_id)
        .join(OrderLine, ReturnLine.order_line_id == OrderLine.id)
        .join(ReturnRequest, ReturnRequest.id == Ticket.request_id)
        .where(OrderLine.sku == sku, _within(ReturnRequest.created_at, period), _RETURN_TICKET)
        .order_by(Ticket.id.desc())
        .limit(1)
    )


def _slowest_first_response(session: Session, period: calc.Period) -> int | None:
    wall = _minutes_between(session, Ticket.first_response_at, Ticket.created_at)
    return session.scalar(
        select(Ticket.id)
        .where(_within(Ticket.created_at, period), Ticket.first_response_at.is_not(None), _RETURN_TICKET)
        .order_by(wall.desc(), Ticket.id)
        .limit(1)
    )


def alerts_for(session: Session, period: calc.Period, settings: Settings) -> list[Alert]:
    """The figures of ``period`` past their lines, each with the ticket a lead would open first."""
    found: list[Alert] = []
    rolled = rollups_ready(session, settings)
    rates = (rolled_return_rates if rolled else return_rates)(session, period, Filters(), settings)
    for row in rates.by["sku"]:
        ticket_id = _latest_ticket_for_sku(session, period, row.key) if row.alert else None
        if ticket_id is not None:
            message = Text(
                N_(
                    "Return rate of %(sku)s is %(rate)s %% over %(orders)s orders since %(since)s (alert line %(line)s %%)."
                ),
                {
                    "sku": row.key,
                    "rate": str(row.unit_rate),
                    "orders": row.orders,
                    "since": period.first.isoformat(),
                    "line": str(settings.return_rate_percent),
                },
            )
            found.append(Alert("return_rate", row.key, str(row.unit_rate), message, ticket_id))
    fr = (rolled_first_response if rolled else first_response)(session, period, Filters(), settings)
    ticket_id = _slowest_first_response(session, period) if fr.alert else None
    if ticket_id is not None:
        message = Text(
            N_("First responses since %(since)s take %(minutes)s minutes on average (alert line %(line)s)."),
            {
                "minutes": fr.mean_minutes,
                "since": period.first.isoformat(),
                "line": f"{settings.first_response_minutes:g}",
            },
        )
        found.append(Alert("first_response", "all", str(fr.mean_minutes), message, ticket_id))
    return found


def notify_alerts(session: Session, settings: Settings, now: datetime) -> list[Alert]:
    """Tell the leads about every figure of the current shop month past its line, once per month:
    the alert's unique row is written before anyone is told, in the same transaction, so a second
    run (or a second worker at the same time) tells nobody again. Commits; returns what was told."""
    period = calc.period_for("month", calc.local_day(now, settings.timezone), settings.timezone)
    leads = list(
        session.scalars(
            select(StaffUser).where(StaffUser.role == LEAD, StaffUser.active.is_(True)).order_by(StaffUser.id)
        )
    )
    told: list[Alert] = []
    for alert in alerts_for(session, period, settings):
        key = f"{alert.kind}:{alert.subject}:{period.key}"
        try:
            with session.begin_nested():
                session.add(
                    InsightAlert(key=key, kind=alert.kind, subject=alert.subject, value=alert.value, fired_at=now)
                )
        except IntegrityError:
            continue  # told already this period
        ticket = session.get_one(Ticket, alert.ticket_id)
        for lead in leads:
            notify_staff(session, lead, ticket, ALERT_KIND, alert.message)
        told.append(alert)
    session.commit()
    return told
