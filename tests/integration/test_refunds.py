"""Refunds against the real database: exact preview, second approval, one gateway call, retries, ledger."""

from __future__ import annotations

import threading
from datetime import UTC
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from portal.adapters.payments import ManualPayments, SandboxGateway
from portal.db.models import LedgerEntry, Refund, ReturnRequest, SandboxPayment, StoreCreditCode
from portal.domain.errors import InvalidInput, NotPermitted
from portal.services import Conflict
from portal.services.refunds import (
    StalePreview,
    approve_refund,
    execute_refund,
    ledger_rows,
    preview_refund,
    retry_refund,
    second_approve,
)
from tests.helpers import carrier_event, finance_user, form_for, inspected, login_shopper, post_json, warehouse_worker

THRESHOLD = Decimal("1000")


def factory(app):
    return app.extensions["portal.sessionmaker"]


def test_preview_is_itemised_and_execution_pays_once(app, client, order, session):
    req = inspected(app, client, session)
    fay = finance_user(session, "fay")
    preview = preview_refund(session, req)
    kinds = [i.kind for i in preview.items]
    assert "goods" in kinds and "discount" in kinds
    # Two T-shirts at 99.00 with a 10.00 line discount: 188.00 back, customer responsibility, grade A: no fee.
    assert preview.refund_total == Decimal("188.00")
    refund = approve_refund(session, req, fay, preview.basis_hash, "sandbox", THRESHOLD)
    assert refund.status == "approved" and refund.idempotency_key == f"rf-{req.rma}-1"
    done = execute_refund(factory(app), refund.id, SandboxGateway(factory(app)))
    assert done.status == "succeeded" and done.provider_ref.startswith("SBX-")
    session.expire_all()
    assert session.get(ReturnRequest, req.id).status == "refunded"
    entry = session.scalars(select(LedgerEntry)).one()
    assert (entry.kind, entry.method, entry.amount) == ("refund", "alipay", Decimal("188.00"))
    # Executing again does nothing.
    execute_refund(factory(app), refund.id, SandboxGateway(factory(app)))
    assert session.scalar(select(func.count(SandboxPayment.id))) == 1
    assert session.scalar(select(SandboxPayment.calls)) == 1


def test_stale_preview_is_refused(app, client, order, session):
    req = inspected(app, client, session)
    with pytest.raises(StalePreview):
        approve_refund(session, req, finance_user(session, "fay"), "0" * 64, "sandbox", THRESHOLD)
    assert session.scalar(select(func.count(Refund.id))) == 0


def test_above_threshold_needs_a_second_finance_user(app, client, order, session):
    req = inspected(app, client, session)
    fay, sam = finance_user(session, "fay"), finance_user(session, "sam")
    preview = preview_refund(session, req)
    refund = approve_refund(session, req, fay, preview.basis_hash, "sandbox", Decimal("100"))
    assert refund.status == "awaiting_second"
    assert (
        execute_refund(factory(app), refund.id, SandboxGateway(factory(app))).status == "awaiting_second"
    )  # cannot pay yet
    with pytest.raises(NotPermitted):
        second_approve(session, refund, fay)
    second_approve(session, refund, sam)
    assert execute_refund(factory(app), refund.id, SandboxGateway(factory(app))).status == "succeeded"


def test_timeout_then_retry_never_pays_twice(app, client, order, session):
    req = inspected(app, client, session)
    preview = preview_refund(session, req)
    refund = approve_refund(session, req, finance_user(session, "fay"), preview.basis_hash, "sandbox", THRESHOLD)
    failed = execute_refund(factory(app), refund.id, SandboxGateway(factory(app), mode="timeout"))
    assert failed.status == "failed" and "GatewayTimeout" in failed.last_error
    assert session.scalar(select(func.count(SandboxPayment.id))) == 1  # it did pay, but we could not know
    retry_refund(session, failed.id)
    done = execute_refund(factory(app), refund.id, SandboxGateway(factory(app)))
    assert done.status == "succeeded"
    assert (
        session.scalar(select(func.count(SandboxPayment.id))) == 1 and session.scalar(select(SandboxPayment.calls)) == 2
    )
    assert session.scalar(select(func.count(LedgerEntry.id))) == 1


def test_declined_is_visible_and_retryable(app, client, order, session):
    req = inspected(app, client, session)
    preview = preview_refund(session, req)
    refund = approve_refund(session, req, finance_user(session, "fay"), preview.basis_hash, "sandbox", THRESHOLD)
    assert execute_refund(factory(app), refund.id, SandboxGateway(factory(app), mode="fail")).status == "failed"
    with pytest.raises(Conflict):
        approve_refund(
            session, req, finance_user(session, "sam"), preview.basis_hash, "sandbox", THRESHOLD
        )  # one refund at a time
    retry_refund(session, refund.id)
    assert execute_refund(factory(app), refund.id, SandboxGateway(factory(app))).status == "succeeded"


def test_two_simultaneous_executes_make_one_gateway_call(app, client, order, session):
    req = inspected(app, client, session)
    preview = preview_refund(session, req)
    refund = approve_refund(session, req, finance_user(session, "fay"), preview.basis_hash, "sandbox", THRESHOLD)
    barrier = threading.Barrier(2)
    results = []

    class SlowSandbox(SandboxGateway):
        def refund(self, *args, **kwargs):
            return super().refund(*args, **kwargs)

    def run():
        barrier.wait()
        results.append(execute_refund(factory(app), refund.id, SlowSandbox(factory(app))).status)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert session.scalar(select(func.count(SandboxPayment.id))) == 1
    assert session.scalar(select(SandboxPayment.calls)) == 1
    session.expire_all()
    assert session.get(Refund, refund.id).status == "succeeded"


def test_store_credit_gets_a_code_and_ledger_rows(app, client, order, session):
    req = inspected(app, client, session, number="SC-1", outcome="store_credit")
    preview = preview_refund(session, req)
    assert preview.store_credit_total == Decimal("188.00") and preview.refund_total == 0
    refund = approve_refund(session, req, finance_user(session, "fay"), preview.basis_hash, "sandbox", THRESHOLD)
    execute_refund(factory(app), refund.id, SandboxGateway(factory(app)))
    credit = session.scalars(select(StoreCreditCode)).one()
    assert credit.balance == Decimal("188.00") and credit.code.startswith("SC-")
    assert session.scalar(select(func.count(SandboxPayment.id))) == 0  # nothing to pay out
    kinds = [e.kind for e in session.scalars(select(LedgerEntry))]
    assert kinds == ["store_credit_issued"]


def test_manual_provider_records_the_reference(app, client, order, session):
    req = inspected(app, client, session)
    preview = preview_refund(session, req)
    refund = approve_refund(session, req, finance_user(session, "fay"), preview.basis_hash, "manual", THRESHOLD)
    with pytest.raises(InvalidInput):  # no reference given: nothing changes, nothing fails
        execute_refund(factory(app), refund.id, ManualPayments())
    session.expire_all()
    assert session.get(Refund, refund.id).status == "approved"
    done = execute_refund(factory(app), refund.id, ManualPayments(), manual_reference="BANK-7781")
    assert done.status == "succeeded" and done.provider_ref == "BANK-7781"


def test_partial_refunds_never_exceed_what_was_paid(app, client, order, session):
    from datetime import datetime, timedelta

    req = inspected(app, client, session, quantity="1")
    preview = preview_refund(session, req)
    first = approve_refund(session, req, finance_user(session, "fay"), preview.basis_hash, "sandbox", THRESHOLD)
    execute_refund(factory(app), first.id, SandboxGateway(factory(app)))
    # The second unit, returned in another request on the same order.
    shopper = app.test_client()
    login_shopper(shopper)
    shopper.post(
        "/order/request", data=form_for(shopper, **{"0": {"quantity": "1", "reason": "size_fit", "outcome": "refund"}})
    )
    second_req = session.scalars(select(ReturnRequest).where(ReturnRequest.id != req.id)).one()
    from portal.domain.receiving import ReceivedLine
    from portal.services.receiving import receive_parcel

    post_json(client, "/api/v1/carrier-events", carrier_event(second_req.pickup_code, event_id="e-2"))
    session.refresh(second_req)
    receive_parcel(
        session,
        second_req,
        warehouse_worker(session),
        [ReceivedLine(rl.id, rl.quantity, "A", False, "restock") for rl in second_req.lines],
        [],
    )
    preview2 = preview_refund(session, second_req)
    second = approve_refund(
        session, second_req, finance_user(session, "sam"), preview2.basis_hash, "sandbox", THRESHOLD
    )
    execute_refund(factory(app), second.id, SandboxGateway(factory(app)))
    total = session.scalar(select(func.sum(LedgerEntry.amount)))
    assert total == Decimal("188.00")  # 2 x 99.00 - 10.00, exactly, across the two refunds
    rows = ledger_rows(session, datetime.now(UTC) - timedelta(days=1), datetime.now(UTC) + timedelta(days=1))
    assert [(r[1], r[3], r[4], r[5]) for r in rows] == [("alipay", "refund", 2, Decimal("188.00"))]


def test_store_credit_can_be_spent_in_the_shop_once_per_reference(app, client, order, session):
    req = inspected(app, client, session, number="SC-2", outcome="store_credit")
    preview = preview_refund(session, req)
    refund = approve_refund(session, req, finance_user(session, "fay"), preview.basis_hash, "sandbox", THRESHOLD)
    execute_refund(factory(app), refund.id, SandboxGateway(factory(app)))
    code = session.scalars(select(StoreCreditCode.code)).one()
    spend = {"code": code.lower(), "amount": "50.00", "currency": "CNY", "reference": "ORDER-9001"}
    first = post_json(client, "/api/v1/store-credit/redeem", spend)
    assert first.status_code == 200 and first.get_json()["balance"] == "138.00"
    again = post_json(client, "/api/v1/store-credit/redeem", spend)
    assert again.get_json()["balance"] == "138.00"  # a retried call does not debit twice
    too_much = post_json(
        client, "/api/v1/store-credit/redeem", {**spend, "amount": "500.00", "reference": "ORDER-9002"}
    )
    assert too_much.status_code == 409
    assert post_json(client, "/api/v1/store-credit/redeem", {**spend, "code": "SC-NOPE"}).status_code == 404
    assert post_json(client, "/api/v1/store-credit/redeem", {**spend, "amount": 5}).status_code == 400
    redeemed = session.scalars(select(LedgerEntry).where(LedgerEntry.kind == "store_credit_redeemed")).all()
    assert [e.amount for e in redeemed] == [Decimal("-50.00")]


def test_a_bad_store_credit_code_is_a_clear_4xx_and_debits_nothing(app, client, order, session):
    req = inspected(app, client, session, number="SC-3", outcome="store_credit")
    preview = preview_refund(session, req)
    refund = approve_refund(session, req, finance_user(session, "fay"), preview.basis_hash, "sandbox", THRESHOLD)
    execute_refund(factory(app), refund.id, SandboxGateway(factory(app)))
    code = session.scalars(select(StoreCreditCode.code)).one()
    spend = {"code": code, "amount": "10.00", "currency": "CNY", "reference": "ORDER-1"}
    wrong_check = code[:-1] + ("0" if code[-1] != "0" else "1")
    for bad in (wrong_check, "SC-NOPE", "sc 0000 0000 00", "R-7KQ-2M9-XDC"):
        response = post_json(client, "/api/v1/store-credit/redeem", {**spend, "code": bad})
        assert response.status_code == 404, bad
        assert response.get_json()["message"] in (
            "That store credit code has a typing mistake.",
            "There is no store credit with that code.",
        )
    typo = post_json(client, "/api/v1/store-credit/redeem", {**spend, "code": wrong_check}).get_json()
    assert typo == {"error": "not_found", "message": "That store credit code has a typing mistake."}
    for bad_field in (
        {"code": 12345},
        {"code": ""},
        {"code": "SC-" + "X" * 80},
        {"code": "SC-\u0000\u0000\u0000\u0000-0000-000"},
        {"currency": "XXY"},
        {"amount": "1e3"},
        {"amount": "-10.00"},
        {"amount": "0.00"},
        {"amount": "0"},
        {"amount": "10.005"},
    ):
        response = post_json(client, "/api/v1/store-credit/redeem", {**spend, **bad_field})
        assert response.status_code == 400 and response.get_json()["errors"], bad_field
    other_currency = post_json(client, "/api/v1/store-credit/redeem", {**spend, "currency": "EUR"})
    assert other_currency.status_code == 409 and "CNY" in other_currency.get_json()["message"]
    # Typed by a person: lower case, spaces instead of dashes, O for 0 and I for 1 still find it.
    typed = code.lower().replace("-", " ").replace("0", "o").replace("1", "i")
    assert post_json(client, "/api/v1/store-credit/redeem", {**spend, "code": typed}).status_code == 200
    redeemed = session.scalars(select(LedgerEntry).where(LedgerEntry.kind == "store_credit_redeemed")).all()
    assert [e.amount for e in redeemed] == [Decimal("-10.00")]
