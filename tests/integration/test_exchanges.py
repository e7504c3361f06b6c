"""Exchanges: stock held on approval, released on cancellation, shipped when the return is acceptable."""

from __future__ import annotations

from sqlalchemy import select

from portal.db.models import OutboxMessage, ReturnRequest, Variant
from portal.domain.receiving import ReceivedLine
from portal.services.receiving import receive_parcel
from tests.helpers import PRODUCTS, csrf_token, finance_user, form_for, login_shopper, post_json, warehouse_worker


def exchange(client):
    assert login_shopper(client).status_code == 303
    data = form_for(
        client, **{"0": {"quantity": "1", "reason": "size_fit", "outcome": "exchange", "exchange_sku": "TEE-L"}}
    )
    return client.post("/order/request", data=data).headers["Location"].rsplit("/", 1)[1]


def stock(session, sku):
    session.expire_all()
    v = session.scalars(select(Variant).where(Variant.sku == sku)).one()
    return v.stock, v.reserved


def test_reserved_on_approval_released_on_cancel(client, order, session):
    rma = exchange(client)
    assert stock(session, "TEE-L") == (3, 1)
    page = client.get(f"/requests/{rma}").get_data(as_text=True)
    client.post(f"/requests/{rma}/cancel", data={"csrf_token": csrf_token(page), "status": "label_issued"})
    assert stock(session, "TEE-L") == (3, 0)


def test_acceptable_return_releases_the_exchange(client, order, session):
    exchange(client)
    req = session.scalars(select(ReturnRequest)).one()
    receive_parcel(
        session, req, warehouse_worker(session), [ReceivedLine(req.lines[0].id, 1, "A", False, "restock")], []
    )
    session.expire_all()
    req = session.scalars(select(ReturnRequest)).one()
    assert req.status == "exchanged"
    ready = [
        m
        for m in session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "webhook"))
        if m.payload["topic"] == "exchange.ready"
    ]
    assert len(ready) == 1 and ready[0].payload["data"]["ship"] == [
        {"sku": "TEE-L", "quantity": 1, "returned_sku": "TEE-S"}
    ]
    assert stock(session, "TEE-L") == (2, 0)


def test_worn_return_does_not_ship_the_exchange(client, order, session):
    exchange(client)
    req = session.scalars(select(ReturnRequest)).one()
    receive_parcel(session, req, warehouse_worker(session), [ReceivedLine(req.lines[0].id, 1, "C", True, "outlet")], [])
    session.expire_all()
    assert session.scalars(select(ReturnRequest.status)).one() == "inspected"  # an agent decides
    assert not [
        m
        for m in session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "webhook"))
        if m.payload["topic"] == "exchange.ready"
    ]


def test_instant_exchange_ships_at_approval_and_not_again(client, app, order, session):
    from pathlib import Path

    from portal.services.policies import default_policy_text

    Path(app.config["POLICY_PATH"]).write_text(
        default_policy_text()
        .replace("instant = false", "instant = true")
        .replace('version = "default-1"', 'version = "instant-1"')
    )
    exchange(client)
    ready = [
        m
        for m in session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "webhook"))
        if m.payload["topic"] == "exchange.ready"
    ]
    assert len(ready) == 1
    req = session.scalars(select(ReturnRequest)).one()
    assert req.status == "label_issued" and stock(session, "TEE-L") == (2, 0)
    receive_parcel(
        session, req, warehouse_worker(session), [ReceivedLine(req.lines[0].id, 1, "A", False, "restock")], []
    )
    session.expire_all()
    assert session.scalars(select(ReturnRequest.status)).one() == "exchanged"
    ready = [
        m
        for m in session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "webhook"))
        if m.payload["topic"] == "exchange.ready"
    ]
    assert len(ready) == 1 and stock(session, "TEE-L") == (2, 0)  # not shipped twice


def test_price_differences_are_refunded_or_recorded_as_owed(client, order, session, app):
    from decimal import Decimal

    from portal.adapters.payments import SandboxGateway
    from portal.db.models import LedgerEntry
    from portal.services.refunds import approve_refund, execute_refund, preview_refund

    priced = {
        "products": [
            dict(
                PRODUCTS["products"][0],
                variants=[
                    {"sku": "TEE-S", "variant": "S", "stock": 5, "price": "99.00"},
                    {"sku": "TEE-L", "variant": "L", "stock": 3, "price": "79.00"},
                ],
            )
        ]
    }
    assert post_json(client, "/api/v1/products", priced).status_code == 200
    exchange(client)
    req = session.scalars(select(ReturnRequest)).one()
    receive_parcel(
        session, req, warehouse_worker(session), [ReceivedLine(req.lines[0].id, 1, "A", False, "restock")], []
    )
    session.expire_all()
    req = session.scalars(select(ReturnRequest)).one()
    assert req.status == "inspected"  # shipped, but the difference is for finance
    preview = preview_refund(session, req)
    # Paid per unit: (2 x 99.00 - 10.00) / 2 = 94.00; the L costs 79.00: 15.00 back.
    assert preview.refund_total == Decimal("15.00")
    refund = approve_refund(session, req, finance_user(session, "fay"), preview.basis_hash, "sandbox", Decimal("1000"))
    factory = app.extensions["portal.sessionmaker"]
    assert execute_refund(factory, refund.id, SandboxGateway(factory)).status == "succeeded"
    assert session.scalars(select(LedgerEntry.amount).where(LedgerEntry.kind == "refund")).one() == Decimal("15.00")


def test_a_dearer_replacement_is_recorded_as_owed(client, order, session, app):
    from decimal import Decimal

    from portal.adapters.payments import SandboxGateway
    from portal.db.models import LedgerEntry, SandboxPayment
    from portal.services.refunds import approve_refund, execute_refund, preview_refund

    priced = {
        "products": [
            dict(
                PRODUCTS["products"][0],
                variants=[
                    {"sku": "TEE-S", "variant": "S", "stock": 5, "price": "99.00"},
                    {"sku": "TEE-L", "variant": "L", "stock": 3, "price": "120.00"},
                ],
            )
        ]
    }
    post_json(client, "/api/v1/products", priced)
    exchange(client)
    req = session.scalars(select(ReturnRequest)).one()
    receive_parcel(
        session, req, warehouse_worker(session), [ReceivedLine(req.lines[0].id, 1, "A", False, "restock")], []
    )
    session.expire_all()
    req = session.scalars(select(ReturnRequest)).one()
    preview = preview_refund(session, req)
    assert preview.refund_total == 0 and preview.owed_by_shopper == Decimal("26.00")  # 120.00 - 94.00
    refund = approve_refund(session, req, finance_user(session, "fay"), preview.basis_hash, "sandbox", Decimal("1000"))
    factory = app.extensions["portal.sessionmaker"]
    execute_refund(factory, refund.id, SandboxGateway(factory))
    session.expire_all()
    assert session.scalars(select(ReturnRequest.status)).one() == "exchanged"
    assert session.scalars(select(LedgerEntry.amount).where(LedgerEntry.kind == "owed_by_shopper")).one() == Decimal(
        "26.00"
    )
    assert session.scalars(select(SandboxPayment)).all() == []  # nothing paid out
