"""The insights dashboard: return rates, response times, SLA, backlog, money, survey, photos and
reasons for a period in the shop's time zone; every chart an SVG with its numbers in a table."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from flask import Blueprint, abort, current_app
from flask import request as http_request
from flask_babel import gettext
from flask_login import current_user

from portal.db import get_session
from portal.domain import insights as calc
from portal.domain.lifecycle import STAFF_LABELS, Status
from portal.domain.reasons import REASONS, RESPONSIBILITY_LABELS
from portal.domain.receiving import DISPOSITIONS
from portal.domain.roles import CAN_SEE_INSIGHTS, CAN_SEE_MONEY_INSIGHTS
from portal.domain.text import N_
from portal.services.insights import (
    CLOCKS,
    DIMENSIONS,
    Dashboard,
    Filters,
    dashboard,
    filter_choices,
    insight_settings,
)
from portal.web.auth import staff_required
from portal.web.insights import charts
from portal.web.pages import render_page_or_partial

bp = Blueprint("insights", __name__, url_prefix="/insights")

DIMENSION_LABELS = {
    "sku": N_("SKU"),
    "product": N_("Product"),
    "category": N_("Category"),
    "channel": N_("Channel"),
}
CLOCK_NAMES = {"first_response": N_("First response"), "resolution": N_("Resolution")}
ESCALATION_ACTIONS = {
    "remind": N_("Reminded the assignee"),
    "move_to_lead": N_("Moved to the lead"),
    "notify_manager": N_("Told the manager"),
}
# Charts finance may open (the money part); the rest are for leads, managers and admins.
MONEY_CHARTS = ("money", "recovered")
CHARTS = (
    "rates",
    "categories",
    "first-response",
    "sla",
    "backlog",
    "escalations",
    "money",
    "recovered",
    "survey",
    "photos",
    "reasons",
)


class BadArgs(Exception):
    pass


def _args() -> tuple[calc.Period, Filters, dict]:
    """Period and filters from the address; a plain GET and htmx send the same."""
    args = http_request.args
    settings = insight_settings(current_app.config)
    kind = args.get("period") or calc.DEFAULT_PERIOD
    month = (args.get("month") or "").strip()[:7] or None
    raw_team = args.get("team") or ""
    if raw_team and not (raw_team.isdigit() and len(raw_team) < 10):
        raise BadArgs
    today = calc.local_day(datetime.now(UTC), settings.timezone)
    try:
        period = calc.period_for(kind, today, settings.timezone, month if kind == "month" else None)
    except calc.PeriodError as exc:
        raise BadArgs from exc
    filters = Filters(
        channel=(args.get("channel") or "")[:32] or None,
        category=(args.get("category") or "")[:64] or None,
        team_id=int(raw_team) if raw_team else None,
    )
    query = {
        "period": kind,
        "month": period.first.strftime("%Y-%m") if kind == "month" else None,
        "channel": filters.channel,
        "category": filters.category,
        "team": filters.team_id,
    }
    return period, filters, {k: v for k, v in query.items() if v}


def _board() -> tuple[Dashboard, dict]:
    try:
        period, filters, query = _args()
    except BadArgs:
        abort(400)
    operations = current_user.role in CAN_SEE_INSIGHTS
    board = dashboard(
        get_session(),
        period,
        filters,
        insight_settings(current_app.config),
        datetime.now(UTC),
        operations=operations,
    )
    return board, query


@bp.get("/")
@staff_required(*CAN_SEE_MONEY_INSIGHTS)
def index():
    """The dashboard; the board alone for htmx when the period or a filter changes."""
    board, query = _board()
    return render_page_or_partial(
        "insights/dashboard.html",
        "insights/_board.html",
        board=board,
        query=query,
        operations=current_user.role in CAN_SEE_INSIGHTS,
        choices=filter_choices(get_session()),
        PERIODS=calc.PERIODS,
        PERIOD_LABELS=calc.PERIOD_LABELS,
        DIMENSIONS=DIMENSIONS,
        DIMENSION_LABELS=DIMENSION_LABELS,
        CLOCK_NAMES=CLOCK_NAMES,
        ESCALATION_ACTIONS=ESCALATION_ACTIONS,
        AGE_BUCKETS=[key for key, _ in calc.AGE_BUCKETS],
        AGE_LABELS=calc.AGE_LABELS,
        DISPOSITIONS=DISPOSITIONS,
        REASONS=REASONS,
        RESPONSIBILITY_LABELS=RESPONSIBILITY_LABELS,
        CHARTS=CHARTS,
    )


def _f(value: Decimal | float | None) -> float | None:
    return None if value is None else float(value)


def _svg(board: Dashboard, name: str) -> str:
    settings = board.settings
    series: dict[str, list[float | None]] = {}
    if name in ("rates", "categories"):
        assert board.rates is not None
        rows = board.rates.by["sku" if name == "rates" else "category"][:15]
        title = gettext("Return rate by SKU") if name == "rates" else gettext("Return rate by category")
        return charts.bar(
            title,
            [r.key for r in rows],
            {
                gettext("Returned units / sold units"): [_f(r.unit_rate) for r in rows],
                gettext("Requests / orders"): [_f(r.request_rate) for r in rows],
            },
            line=float(settings.return_rate_percent),
            unit="%",
        )
    if name == "first-response":
        fr = board.first_response
        assert fr is not None
        return charts.bar(
            gettext("First response (minutes)"),
            [gettext("Mean"), gettext("90th percentile")],
            {
                gettext("Wall clock"): [fr.mean_minutes, fr.p90_minutes],
                gettext("Business minutes"): [fr.mean_business_minutes, fr.p90_business_minutes],
            },
            line=settings.first_response_minutes,
        )
    if name == "sla":
        teams = sorted({r.team for r in board.sla})
        series = {}
        for clock in CLOCKS:
            by_team = {r.team: _f(r.rate) for r in board.sla if r.clock == clock}
            series[gettext(CLOCK_NAMES[clock])] = [by_team.get(t) for t in teams]
        return charts.bar(gettext("SLA met (percent)"), teams, series, unit="%")
    if name == "backlog":
        statuses = sorted({r.status for r in board.backlog})
        labels = [gettext(STAFF_LABELS[Status(s)]) if s in STAFF_LABELS else s for s in statuses]
        series = {}
        for key, _upper in calc.AGE_BUCKETS:
            counts = {r.status: r.count for r in board.backlog if r.bucket == key}
            series[gettext(calc.AGE_LABELS[key])] = [counts.get(s, 0) for s in statuses]
        return charts.bar(gettext("Open tickets by status and age"), labels, series, stacked=True)
    if name == "escalations":
        return charts.bar(
            gettext("Escalations fired"),
            [gettext(ESCALATION_ACTIONS.get(r.key, r.key)) for r in board.escalations],
            {gettext("Steps"): [r.count for r in board.escalations]},
        )
    if name == "money":
        days = [d.isoformat() for d in board.period.days]
        series = {}
        for currency in sorted({m.currency for m in board.money}):
            paid = {m.day.isoformat(): m for m in board.money if m.currency == currency}
            series[f"{gettext('Refunded')} {currency}"] = [_f(paid[d].refunded) if d in paid else 0 for d in days]
            series[f"{gettext('Store credit')} {currency}"] = [
                _f(paid[d].store_credit) if d in paid else 0 for d in days
            ]
        return charts.bar(gettext("Refunds and store credit by day"), days, series, stacked=True)
    if name == "recovered":
        return charts.bar(
            gettext("Value recovered by disposition"),
            [f"{gettext(DISPOSITIONS.get(r.disposition, r.disposition))} {r.currency}" for r in board.recovered],
            {gettext("Value"): [_f(r.value) for r in board.recovered]},
        )
    if name == "survey":
        answered = board.survey.months if board.survey else []
        return charts.line(
            gettext("Net promoter score and satisfaction"),
            [m.month for m in answered],
            {gettext("NPS"): [m.nps for m in answered], gettext("Satisfaction"): [m.satisfaction for m in answered]},
        )
    if name == "photos":
        return charts.bar(
            gettext("Photo wear score against warehouse grade"),
            [f"{r.model_version} · {r.grade}" for r in board.photos],
            {gettext("Agreement"): [_f(r.agreement) for r in board.photos]},
            unit="%",
        )
    # reasons: lines per shop month, stacked by who is responsible
    months = sorted({r.month for r in board.reasons})
    series = {}
    for resp, label in RESPONSIBILITY_LABELS.items():
        per_month = {
            m: sum(r.lines for r in board.reasons if r.month == m and r.responsibility == resp) for m in months
        }
        series[gettext(label)] = [per_month[m] for m in months]
    return charts.bar(gettext("Return reasons by month and responsibility"), months, series, stacked=True)


@bp.get("/charts/<name>.svg")
@staff_required(*CAN_SEE_MONEY_INSIGHTS)
def chart(name: str):
    """One chart as an SVG image (the page shows it with its numbers in a table beside it)."""
    if name not in CHARTS:
        abort(404)
    if name not in MONEY_CHARTS and current_user.role not in CAN_SEE_INSIGHTS:
        abort(403)
    board, _query = _board()
    return _svg(board, name), 200, charts.SVG_HEADERS
