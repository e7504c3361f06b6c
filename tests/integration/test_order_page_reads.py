"""The reads behind the shopper's order page: the order with its lines, the exchange options with
their labels and stock, the order's request list."""

from __future__ import annotations

from sqlalchemy import event, select

from portal.db.models import Order, ReturnRequest
from portal.services.filing import exchange_options, exchange_variants, order_with_lines, request_list
from tests.helpers import form_for, login_shopper


def test_exchange_variants_name_the_in_stock_other_variants_with_label_and_stock(order, session):
    found = exchange_variants(session, ["TEE-S", "SCARF-RED"])
    # TEE-M has no stock; the scarf has no other variant.
    assert [(v.sku, v.label, v.available) for v in found["TEE-S"]] == [("TEE-L", "L", 3)]
    assert found["SCARF-RED"] == ()
    assert exchange_options(session, ["TEE-S", "SCARF-RED"]) == {
        "TEE-S": frozenset({"TEE-L"}),
        "SCARF-RED": frozenset(),
    }
    assert exchange_variants(session, []) == {}


def test_order_with_lines_reads_the_lines_with_the_order(order, session):
    order_id = session.scalar(select(Order.id).where(Order.order_number == order["order_number"]))
    session.expunge_all()
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", count)
    try:
        found = order_with_lines(session, order_id)
        assert found is not None
        lines = [(line.line_id, line.sku) for line in found.lines]
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert lines == [("1", "TEE-S"), ("2", "SCARF-RED")]
    assert len(statements) == 1
    assert order_with_lines(session, order_id + 1000) is None


def test_request_list_gives_rma_and_status_oldest_first(client, order, session):
    order_id = session.scalar(select(Order.id).where(Order.order_number == order["order_number"]))
    assert request_list(session, order_id) == []
    assert login_shopper(client).status_code == 303
    data = form_for(client, **{"0": {"quantity": "1", "reason": "size_fit", "outcome": "refund"}})
    rma = client.post("/order/request", data=data).headers["Location"].rsplit("/", 1)[1]
    status = session.scalar(select(ReturnRequest.status).where(ReturnRequest.rma == rma))
    assert [(row.rma, row.status) for row in request_list(session, order_id)] == [(rma, status)]
