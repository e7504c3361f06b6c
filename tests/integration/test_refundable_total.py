"""The refundable total has one rule in two forms: the pure function and its SQL twin agree on the same rows."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
from sqlalchemy import select

from portal.db.models import Order, OrderLine
from portal.db.queries import order_refundable_total
from portal.domain.lifecycle import Status
from portal.domain.money import round_money
from portal.domain.refunds import OrderLineMoney, awaits_refund
from portal.domain.refunds import order_refundable_total as refundable_total

CASES = [
    ("CNY", "10.00", [(2, "99.00", "10.00", "0"), (1, "259.00", "0", "0")]),
    ("CNY", "0", [(3, "33.3333", "0.0050", "1.2345"), (1, "0.0050", "0", "0")]),  # rounding once per line
    ("CNY", "6.005", [(7, "12.4950", "3.3300", "0.7750")]),
    ("JPY", "500", [(3, "1456.5", "0", "0"), (1, "999.4999", "0.5", "0")]),  # no decimals
    ("KWD", "1.2345", [(2, "10.1235", "0.0005", "0")]),  # three decimals
    ("JPY", "0", [(1, "0", "0", "0")]),
]


@pytest.mark.parametrize(("currency", "shipping", "lines"), CASES)
def test_sql_and_python_refundable_totals_agree(session, currency, shipping, lines) -> None:
    order = Order(
        order_number=f"RT-{currency}-{len(lines)}-{shipping}",
        placed_at=datetime.now(UTC),
        currency=currency,
        customer_name="Li Wei",
        payment_method="alipay",
        shipping_paid=D(shipping),
    )
    session.add(order)
    session.flush()
    for i, (quantity, price, discount, tax) in enumerate(lines):
        session.add(
            OrderLine(
                order_id=order.id,
                line_id=f"L{i}",
                sku=f"S{i}",
                product_name="Shirt",
                category="tops",
                quantity=quantity,
                unit_price=D(price),
                discount=D(discount),
                tax=D(tax),
            )
        )
    session.commit()
    money_lines = [OrderLineMoney(rl.line_id, rl.quantity, rl.unit_price, rl.discount, rl.tax) for rl in order.lines]
    expected = refundable_total(currency, money_lines, order.shipping_paid)
    in_sql = session.scalar(select(order_refundable_total(order.id)))
    assert round_money(D(in_sql), currency) == expected


@pytest.mark.parametrize("status", list(Status))
@pytest.mark.parametrize("returnless", [False, True])
def test_awaiting_refund_clause_is_the_domain_rule(session, status, returnless) -> None:
    from sqlalchemy import Boolean, String, case, literal

    from portal.db.queries import awaiting_refund

    clause = awaiting_refund(literal(status.value, String), literal(returnless, Boolean))
    assert bool(session.scalar(select(case((clause, 1), else_=0)))) == awaits_refund(status.value, returnless)
