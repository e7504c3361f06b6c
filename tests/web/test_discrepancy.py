"""A warehouse discrepancy is not a dead end: the agent sees it and accepts what arrived, and
finance then refunds the units received (and nothing that did not come back)."""

from __future__ import annotations

from decimal import Decimal

from portal.db.models import ReturnRequest
from portal.domain.lifecycle import Status
from portal.services.refunds import preview_refund
from portal.services.staff import create_staff
from tests.helpers import PASSWORD, csrf_token, inspected, sign_in, soup


def test_agent_accepts_what_arrived_and_finance_refunds_the_units_received(app, client, order, session):
    req = inspected(app, client, session, number="SHORT-1", quantity="2", missing=1)
    assert req.status == Status.DISCREPANCY
    create_staff(session, "agent@example.com", "Ann Agent", "agent", PASSWORD)
    session.commit()
    sign_in(client, "agent@example.com")
    page = client.get(f"/staff/requests/{req.rma}")
    form = soup(page).select_one("form#discrepancy")
    assert form is not None and "Accept what arrived" in form.get_text()
    # A stale page (the status it showed is no longer the request's) changes nothing.
    stale = client.post(
        f"/staff/requests/{req.rma}/accept-arrived", data={"csrf_token": csrf_token(page), "status": "in_transit"}
    )
    assert stale.status_code == 303
    session.expire_all()
    assert session.get(ReturnRequest, req.id).status == Status.DISCREPANCY
    done = client.post(
        f"/staff/requests/{req.rma}/accept-arrived",
        data={"csrf_token": csrf_token(page), "status": "discrepancy", "note": "Shopper kept one; refund the other"},
    )
    assert done.status_code == 303
    session.expire_all()
    req = session.get(ReturnRequest, req.id)
    assert req.status == Status.INSPECTED
    assert "Shopper kept one" in " ".join(e.note or "" for e in req.events)
    # One T-shirt of two came back: 99.00 less its half of the 10.00 line discount.
    assert preview_refund(session, req).refund_total == Decimal("94.00")
    finance = app.test_client()
    create_staff(session, "fay@example.com", "Fay Finance", "finance", PASSWORD)
    session.commit()
    sign_in(finance, "fay@example.com")
    assert req.rma in finance.get("/finance/").get_data(as_text=True)
