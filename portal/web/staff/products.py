"""Back office: reasons back to products. A ranked "what to fix this month" list, a page per
product (reasons, scrubbed comments, photos, trend), and the product team's CSV. No personal data."""

from __future__ import annotations

from datetime import UTC, date, datetime

from flask import abort, current_app, render_template, request
from flask_babel import gettext
from flask_login import current_user

from portal.db import get_session
from portal.domain.errors import InvalidInput
from portal.domain.product_insights import month_key, month_of, next_month, parse_month, previous_month
from portal.domain.reasons import REASONS
from portal.domain.roles import CAN_SEE_INSIGHTS
from portal.services.audit import record_export
from portal.services.product_insights import (
    TrendPoint,
    insights_export,
    product_insight,
    product_known,
    ranked_products,
    trend_for,
)
from portal.web.auth import staff_required
from portal.web.insights import charts
from portal.web.staff.routes import bp


@bp.record_once
def _register_insight_roles(state) -> None:
    state.app.jinja_env.globals["CAN_SEE_INSIGHTS"] = CAN_SEE_INSIGHTS


def _zone() -> str:
    return current_app.config["BABEL_DEFAULT_TIMEZONE"]


class BadMonth(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _month() -> date:
    """The ``month`` argument, or the shop's current month when there is none."""
    value = request.args.get("month")
    if value is None or value == "":
        return month_of(datetime.now(UTC), _zone())
    try:
        return parse_month(value)
    except InvalidInput as exc:
        raise BadMonth(exc.render(gettext)) from None


@bp.errorhandler(BadMonth)
def _bad_month(exc: BadMonth):
    return render_template("errors/error.html", code=400, message=exc.message), 400


def _months(month: date) -> dict:
    return dict(
        month=month,
        month_value=month_key(month),
        previous_month=month_key(previous_month(month)),
        next_month=month_key(next_month(month)),
    )


@bp.get("/products")
@staff_required(CAN_SEE_INSIGHTS)
def products():
    """What to fix this month: products ranked by return rate times return volume."""
    month = _month()
    rows = ranked_products(get_session(), month, _zone())
    return render_template("staff/products.html", rows=rows, **_months(month))


@bp.get("/products/export.csv")
@staff_required(CAN_SEE_INSIGHTS)
def products_export():
    """The product team's CSV for the month: one row per SKU, no personal data."""
    month = _month()
    body = insights_export(get_session(), month, _zone())
    record_export(get_session(), current_user.id, "product_returns", month_key(month))
    return (
        body,
        200,
        {
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="product-returns-{month_key(month)}.csv"',
        },
    )


@bp.get("/products/<product_code>")
@staff_required(CAN_SEE_INSIGHTS)
def product(product_code: str):
    month = _month()
    insight = product_insight(get_session(), product_code, month, _zone())
    if insight is None:
        abort(404)
    return render_template("staff/products_detail.html", insight=insight, reasons=REASONS, **_months(month))


@bp.get("/products/<product_code>/trend.svg")
@staff_required(CAN_SEE_INSIGHTS)
def product_trend(product_code: str):
    """The trend as a server-drawn SVG image (its numbers are in the table beside it)."""
    month = _month()
    if not product_known(get_session(), product_code):
        abort(404)
    insight_trend = trend_for(get_session(), product_code, month, _zone())
    return trend_svg(insight_trend), 200, charts.SVG_HEADERS


def trend_svg(points: list[TrendPoint]) -> str:
    """Units sold and returned per month as bars."""
    return charts.bar(
        gettext("Units sold and returned by month"),
        [p.month for p in points],
        {gettext("Units sold"): [p.sold for p in points], gettext("Units returned"): [p.returned for p in points]},
    )
