"""Money and stock under concurrency, on SQLite (where ``FOR UPDATE`` does nothing) and PostgreSQL
alike: exchange stock is never held beyond the shelf, an order line is never returned beyond its
quantity, and one inspected return gets one refund however many approvals arrive at once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from sqlalchemy import func, select, update

from portal.db import session_scope
from portal.db.models import Refund, ReturnLine, ReturnRequest, StaffUser, Variant
from portal.domain.errors import Conflict
from portal.services.refunds import approve_refund, preview_refund
from tests.helpers import finance_user, form_for, inspected, login_shopper, order_payload, post_json

THREADS = 6
THRESHOLD = Decimal("1000")


def together(count: int, work) -> list:
    start = threading.Barrier(count)

    def one(index: int):
        prepared = work(index)
        start.wait()
        return prepared()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def file_from(app, number: str, line: dict):
    """A shopper signed in to ``number`` with the return form filled in; calling the result submits it."""
    shopper = app.test_client()
    assert login_shopper(shopper, number=number).status_code == 303
    data = form_for(shopper, **{"0": line})
    return lambda: shopper.post("/order/request", data=data).status_code


def test_exchange_stock_is_never_held_beyond_the_shelf(app, client, order, session):
    session.execute(update(Variant).where(Variant.sku == "TEE-L").values(stock=2))
    session.commit()
    numbers = [f"SO-X{i}" for i in range(THREADS)]
    for number in numbers:
        assert post_json(client, "/api/v1/orders", order_payload(number)).status_code == 201
    line = {"quantity": "1", "reason": "size_fit", "outcome": "exchange", "exchange_sku": "TEE-L"}
    statuses = together(THREADS, lambda i: file_from(app, numbers[i], line))
    # Filed, or told the size is out of stock; however the requests interleave, only the two units
    # on the shelf are held.
    assert set(statuses) <= {303, 422} and statuses.count(303) >= 2
    session.expire_all()
    assert session.scalars(select(Variant.reserved).where(Variant.sku == "TEE-L")).one() == 2
    assert session.scalar(select(func.sum(ReturnLine.reserved_quantity))) == 2


def test_an_order_line_is_never_returned_beyond_its_quantity(app, client, order, session):
    # The T-shirt line has 2 units; six tabs each ask to return one at the same moment.
    line = {"quantity": "1", "reason": "size_fit", "outcome": "refund"}
    together(THREADS, lambda i: file_from(app, "SO-1001", line))
    session.expire_all()
    assert session.scalar(select(func.sum(ReturnLine.quantity))) == 2


def test_one_return_gets_one_refund_however_many_approvals_arrive(app, client, session):
    request = inspected(app, client, session, number="RF-RACE")
    basis = preview_refund(session, request).basis_hash
    approvers = [finance_user(session, f"fin{i}").id for i in range(THREADS)]

    def approve(index: int):
        def run() -> str:
            with session_scope(app) as s:
                try:
                    approve_refund(
                        s,
                        s.get_one(ReturnRequest, request.id),
                        s.get_one(StaffUser, approvers[index]),
                        basis,
                        "sandbox",
                        THRESHOLD,
                    )
                except Conflict:
                    return "refused"
                return "approved"

        return run

    outcomes = together(THREADS, approve)
    assert outcomes.count("approved") == 1
    session.expire_all()
    assert session.scalar(select(func.count(Refund.id))) == 1
