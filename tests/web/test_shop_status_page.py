"""The shopper's status page is a progress tracker: where the return is, what was chosen per item,
what was paid and the store-credit code; the pickup code only while it is valid."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from portal.adapters.payments import SandboxGateway
from portal.db.models import ReturnRequest
from portal.services.refunds import approve_refund, execute_refund, preview_refund
from tests.helpers import carrier_event, finance_user, form_for, inspected, login_shopper, post_json, soup


def tracker(page) -> tuple[list[str], str]:
    steps = page.select("ol.progress li")
    current = page.select_one('ol.progress li[aria-current="step"]')
    return [s.get_text(strip=True) for s in steps], current.get_text(strip=True)


def test_the_tracker_follows_the_return_and_the_code_shows_only_while_valid(client, order, session):
    assert login_shopper(client).status_code == 303
    data = form_for(
        client, **{"0": {"quantity": "1", "reason": "size_fit", "outcome": "exchange", "exchange_sku": "TEE-L"}}
    )
    rma = client.post("/order/request", data=data).headers["Location"].rsplit("/", 1)[1]
    page = soup(client.get(f"/requests/{rma}"))
    steps, current = tracker(page)
    assert steps == ["Requested", "Approved", "On its way", "Received", "Refunded or exchange sent"]
    assert current == "Approved" and page.select_one(".pickup-code")
    assert "Exchange for L" in page.select_one("#status ul.plain li").get_text(" ")

    code = session.scalars(select(ReturnRequest.pickup_code)).one()
    post_json(client, "/api/v1/carrier-events", carrier_event(code))
    page = soup(client.get(f"/requests/{rma}"))
    assert tracker(page)[1] == "On its way"
    assert not page.select(".pickup-code")  # the courier has the parcel: the code is spent


def test_after_the_refund_the_amount_and_the_store_credit_code_are_shown(app, client, session):
    req = inspected(app, client, session, number="ST-9", outcome="store_credit")
    preview = preview_refund(session, req)
    refund = approve_refund(session, req, finance_user(session, "fay"), preview.basis_hash, "sandbox", Decimal("1000"))
    factory = app.extensions["portal.sessionmaker"]
    execute_refund(factory, refund.id, SandboxGateway(factory))
    shopper = app.test_client()
    login_shopper(shopper, number="ST-9")
    page = soup(shopper.get(f"/requests/{req.rma}"))
    assert tracker(page)[1] == "Refunded or exchange sent"
    text = page.get_text(" ")
    code = page.select_one(".credit-code").get_text(strip=True)
    assert code.startswith("SC-") and "Balance:" in text and "Store credit:" in text
