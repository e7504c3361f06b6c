"""Reasons back to products: for a month in the shop's time zone, what each product sold, what came
back and why, for the product team. Read-only; every figure is an aggregate query (GROUP BY), and
nothing personal leaves here: no names, emails, phones, addresses or order numbers, and comments
are scrubbed of them.

What counts: units sold are the quantities on orders placed in the month; units returned are the
quantities on return lines asked for in the month, leaving out requests that were cancelled or
rejected and lines a reviewer turned down. A product is the shop's product code of the line's SKU
(the SKU itself for a line whose product the shop never sent).
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, and_, case, func, literal, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from portal.db.models import Order, OrderLine, Photo, Product, ReturnLine, ReturnRequest, Variant
from portal.domain.lifecycle import Status
from portal.domain.product_insights import (
    ProductMonth,
    month_bounds,
    month_key,
    months_back,
    rank_products,
    return_rate,
    scrub_comment,
)
from portal.exports import write_rows

_Q = TypeVar("_Q", bound="Select[*tuple[Any, ...]]")  # any select(), whatever its columns

# Requests that sent nothing back: the shopper withdrew, or the return was refused.
NOT_RETURNED = (Status.CANCELLED.value, Status.REJECTED.value)
TREND_MONTHS = 12
RANK_LIMIT = 100
COMMENT_LIMIT = 50
PHOTO_LIMIT = 24
TOP_REASONS = 3

CSV_COLUMNS = [
    "product_code",
    "product_name",
    "sku",
    "variant",
    "category",
    "units_sold",
    "units_returned",
    "return_rate",
    "requests",
    "top_reasons",
    "sub_reasons",
    "month",
]


def _code() -> ColumnElement[str]:
    return func.coalesce(Product.product_code, OrderLine.sku)


def _with_product(stmt: _Q) -> _Q:
    """Join an order-line query to the shop's variant and product of its SKU (when known)."""
    return stmt.outerjoin(Variant, Variant.sku == OrderLine.sku).outerjoin(Product, Product.id == Variant.product_id)


def _returned_lines(stmt: _Q, start: datetime, end: datetime) -> _Q:
    """Restrict a query over return lines to what was sent back in [start, end)."""
    return _with_product(
        stmt.select_from(ReturnLine)
        .join(ReturnRequest, ReturnRequest.id == ReturnLine.request_id)
        .join(OrderLine, OrderLine.id == ReturnLine.order_line_id)
    ).where(
        ReturnRequest.created_at >= start,
        ReturnRequest.created_at < end,
        ReturnRequest.status.not_in(NOT_RETURNED),
        ReturnLine.accepted,
    )


def _sold_lines(stmt: _Q, start: datetime, end: datetime) -> _Q:
    return _with_product(stmt.select_from(OrderLine).join(Order, Order.id == OrderLine.order_id)).where(
        Order.placed_at >= start, Order.placed_at < end
    )


@dataclass(frozen=True)
class ReasonCount:
    reason: str
    sub_reason: str | None
    units: int
    requests: int


@dataclass(frozen=True)
class Comment:
    """A shopper's words about the product, scrubbed of personal data."""

    text: str
    reason: str
    sub_reason: str | None
    at: datetime


@dataclass(frozen=True)
class TrendPoint:
    month: str
    sold: int
    returned: int

    @property
    def rate(self) -> float | None:
        return return_rate(self.returned, self.sold)


@dataclass
class SkuMonth:
    """One SKU's month, the row of the product team's CSV."""

    product_code: str
    name: str
    sku: str
    variant: str
    category: str
    sold: int = 0
    returned: int = 0
    requests: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    sub_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float | None:
        return return_rate(self.returned, self.sold)


@dataclass(frozen=True)
class ProductInsight:
    summary: ProductMonth
    month: date
    reasons: list[ReasonCount]
    comments: list[Comment]
    photo_ids: list[int]
    trend: list[TrendPoint]
    skus: list[SkuMonth]


def product_months(session: Session, month: date, timezone: str, code: str | None = None) -> list[ProductMonth]:
    """Every product sold or sent back in the month (or just ``code``), unranked."""
    start, end = month_bounds(month, timezone)
    name = func.coalesce(Product.name, OrderLine.product_name)
    category = func.coalesce(Product.category, OrderLine.category)
    sold_q = _sold_lines(
        select(_code(), func.max(name), func.max(category), func.sum(OrderLine.quantity)), start, end
    ).group_by(_code())
    back_q = _returned_lines(
        select(
            _code(),
            func.max(name),
            func.max(category),
            func.sum(ReturnLine.quantity),
            func.count(func.distinct(ReturnRequest.id)),
        ),
        start,
        end,
    ).group_by(_code())
    if code is not None:
        sold_q, back_q = sold_q.where(_code() == code), back_q.where(_code() == code)
    found: dict[str, dict[str, Any]] = {}
    for pcode, pname, pcat, units in session.execute(sold_q):
        found[pcode] = dict(name=pname, category=pcat, sold=int(units or 0), returned=0, requests=0)
    for pcode, pname, pcat, units, requests in session.execute(back_q):
        row = found.setdefault(pcode, dict(name=pname, category=pcat, sold=0))
        row.update(returned=int(units or 0), requests=int(requests or 0))
    return [ProductMonth(pcode, **row) for pcode, row in found.items()]


def ranked_products(session: Session, month: date, timezone: str) -> list[ProductMonth]:
    """What to fix this month: products with returns, by return rate times return volume."""
    return rank_products(product_months(session, month, timezone))[:RANK_LIMIT]


def product_known(session: Session, code: str) -> bool:
    """The shop sent this product, or some order carried a line of a SKU the shop never described."""
    if session.scalar(select(Product.id).where(Product.product_code == code)) is not None:
        return True
    stray = (
        select(OrderLine.id)
        .outerjoin(Variant, Variant.sku == OrderLine.sku)
        .where(OrderLine.sku == code, Variant.id.is_(None))
        .limit(1)
    )
    return session.scalar(stray) is not None


def reasons_for(session: Session, code: str, month: date, timezone: str) -> list[ReasonCount]:
    start, end = month_bounds(month, timezone)
    units = func.sum(ReturnLine.quantity)
    stmt = (
        _returned_lines(
            select(ReturnLine.reason, ReturnLine.sub_reason, units, func.count(func.distinct(ReturnRequest.id))),
            start,
            end,
        )
        .where(_code() == code)
        .group_by(ReturnLine.reason, ReturnLine.sub_reason)
        .order_by(units.desc(), ReturnLine.reason, ReturnLine.sub_reason)
    )
    return [ReasonCount(r, s, int(u or 0), int(n or 0)) for r, s, u, n in session.execute(stmt)]


def comments_for(session: Session, code: str, month: date, timezone: str) -> list[Comment]:
    """The newest comments, each scrubbed of emails, phone numbers and its own order's personal data."""
    start, end = month_bounds(month, timezone)
    stmt = (
        _returned_lines(
            select(
                ReturnLine.comment,
                ReturnLine.reason,
                ReturnLine.sub_reason,
                ReturnRequest.created_at,
                ReturnRequest.rma,
                ReturnRequest.customer_email,
                Order.customer_name,
                Order.order_number,
                Order.customer_email,
                Order.customer_phone,
                Order.customer_postcode,
                Order.payment_reference,
            ),
            start,
            end,
        )
        .join(Order, Order.id == ReturnRequest.order_id)
        .where(_code() == code, func.length(func.trim(ReturnLine.comment)) > 0)
        .order_by(ReturnRequest.created_at.desc(), ReturnLine.id.desc())
        .limit(COMMENT_LIMIT)
    )
    out = []
    for text, reason, sub, at, name, *personal in session.execute(stmt):
        clean = scrub_comment(text, [value for value in personal if value], [name] if name else [])
        if clean:
            out.append(Comment(clean, reason, sub, at))
    return out


def photos_for(session: Session, code: str, month: date, timezone: str) -> list[int]:
    """Ids of the newest photos of the product's returns in the month (shown to staff only)."""
    start, end = month_bounds(month, timezone)
    stmt = (
        _returned_lines(select(Photo.id), start, end)
        .join(Photo, Photo.line_id == ReturnLine.id)
        .where(_code() == code)
        .order_by(Photo.id.desc())
        .limit(PHOTO_LIMIT)
    )
    return list(session.scalars(stmt))


def _bucketed(
    column: InstrumentedAttribute[datetime], months: list[date], timezone: str
) -> tuple[ColumnElement[str], datetime, datetime]:
    bounds = [(month_key(m), *month_bounds(m, timezone)) for m in months]
    bucket = case(*[(and_(column >= s, column < e), literal(key)) for key, s, e in bounds], else_=literal(""))
    return bucket, bounds[0][1], bounds[-1][2]


def trend_for(session: Session, code: str, month: date, timezone: str, count: int = TREND_MONTHS) -> list[TrendPoint]:
    """Units sold and returned in each of the ``count`` months ending with ``month``, oldest first."""
    months = months_back(month, count)
    sold_bucket, first, last = _bucketed(Order.placed_at, months, timezone)
    sold_inner = (
        _sold_lines(select(sold_bucket.label("month"), OrderLine.quantity.label("units")), first, last)
        .where(_code() == code)
        .subquery()
    )
    back_bucket, _, _ = _bucketed(ReturnRequest.created_at, months, timezone)
    back_inner = (
        _returned_lines(select(back_bucket.label("month"), ReturnLine.quantity.label("units")), first, last)
        .where(_code() == code)
        .subquery()
    )
    sold: dict[str, int] = defaultdict(int)
    back: dict[str, int] = defaultdict(int)
    for inner, into in ((sold_inner, sold), (back_inner, back)):
        stmt = select(inner.c.month, func.sum(inner.c.units)).group_by(inner.c.month)
        for key, units in session.execute(stmt):
            into[key] = int(units or 0)
    return [TrendPoint(month_key(m), sold[month_key(m)], back[month_key(m)]) for m in months]


def sku_months(session: Session, month: date, timezone: str, code: str | None = None) -> list[SkuMonth]:
    """Per SKU: sold, returned, requests and reasons in the month, by product code then SKU."""
    start, end = month_bounds(month, timezone)
    name = func.max(func.coalesce(Product.name, OrderLine.product_name))
    category = func.max(func.coalesce(Product.category, OrderLine.category))
    variant = func.max(func.coalesce(Variant.label, OrderLine.variant))
    keys = (_code(), OrderLine.sku)
    sold_q = _sold_lines(select(*keys, name, variant, category, func.sum(OrderLine.quantity)), start, end)
    back_q = _returned_lines(
        select(
            *keys, name, variant, category, func.sum(ReturnLine.quantity), func.count(func.distinct(ReturnRequest.id))
        ),
        start,
        end,
    )
    why_q = _returned_lines(
        select(OrderLine.sku, ReturnLine.reason, ReturnLine.sub_reason, func.sum(ReturnLine.quantity)), start, end
    )
    if code is not None:
        sold_q, back_q, why_q = (
            sold_q.where(_code() == code),
            back_q.where(_code() == code),
            why_q.where(_code() == code),
        )
    rows: dict[str, SkuMonth] = {}
    for pcode, sku, pname, pvariant, pcat, units in session.execute(sold_q.group_by(*keys)):
        rows[sku] = SkuMonth(pcode, pname, sku, pvariant or "", pcat, sold=int(units or 0))
    for pcode, sku, pname, pvariant, pcat, units, requests in session.execute(back_q.group_by(*keys)):
        row = rows.setdefault(sku, SkuMonth(pcode, pname, sku, pvariant or "", pcat))
        row.returned, row.requests = int(units or 0), int(requests or 0)
    grouped = why_q.group_by(OrderLine.sku, ReturnLine.reason, ReturnLine.sub_reason)
    for sku, reason, sub, units in session.execute(grouped):
        row = rows[sku]
        row.reasons[reason] = row.reasons.get(reason, 0) + int(units or 0)
        if sub:
            key = f"{reason}/{sub}"
            row.sub_reasons[key] = row.sub_reasons.get(key, 0) + int(units or 0)
    return sorted(rows.values(), key=lambda r: (r.product_code, r.sku))


def product_insight(session: Session, code: str, month: date, timezone: str) -> ProductInsight | None:
    """Everything the product page shows for ``code`` in ``month``; None for a product never seen."""
    if not product_known(session, code):
        return None
    found = product_months(session, month, timezone, code)
    if found:
        summary = found[0]
    else:
        name, category = _product_names(session, code)
        summary = ProductMonth(code, name, category, 0, 0, 0)
    return ProductInsight(
        summary=summary,
        month=month,
        reasons=reasons_for(session, code, month, timezone),
        comments=comments_for(session, code, month, timezone),
        photo_ids=photos_for(session, code, month, timezone),
        trend=trend_for(session, code, month, timezone),
        skus=sku_months(session, month, timezone, code),
    )


def _product_names(session: Session, code: str) -> tuple[str, str]:
    product = session.scalars(select(Product).where(Product.product_code == code)).one_or_none()
    if product is not None:
        return product.name, product.category
    row = session.execute(
        select(OrderLine.product_name, OrderLine.category).where(OrderLine.sku == code).limit(1)
    ).first()
    return (row[0], row[1]) if row is not None else (code, "")


def _counted(counts: dict[str, int], limit: int | None = None) -> str:
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return "; ".join(f"{key} {units}" for key, units in ranked[:limit])


def insights_csv(rows: Iterable[SkuMonth], month: date) -> str:
    """The product team's CSV: one row per SKU, reasons as codes with unit counts. No personal data."""
    out = io.StringIO()
    write_rows(
        out,
        CSV_COLUMNS,
        (
            [
                row.product_code,
                row.name,
                row.sku,
                row.variant,
                row.category,
                row.sold,
                row.returned,
                "" if row.rate is None else f"{row.rate:.4f}",
                row.requests,
                _counted(row.reasons, TOP_REASONS),
                _counted(row.sub_reasons),
                month_key(month),
            ]
            for row in rows
        ),
    )
    return out.getvalue()


def insights_export(session: Session, month: date, timezone: str) -> str:
    """The CSV for every SKU sold or sent back in the month (the same for the page and the command)."""
    return insights_csv(sku_months(session, month, timezone), month)
