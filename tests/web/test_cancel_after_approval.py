"""Cancelling a return after its label was issued: the pickup is called off through the carrier
adapter, the code and label stop working with a clear page, exchange stock goes back."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.adapters.carriers import CarrierError, InHouseCourier
from portal.db.models import OutboxMessage, ReturnRequest, Variant
from portal.domain.actors import SHOPPER
from portal.services.filing import PickupNotCancelled, cancel_return
from tests.helpers import carrier_event, csrf_token, form_for, login_shopper, post_json, soup


class RecordingCourier(InHouseCourier):
    """The carrier's side of the adapter, which cannot exist here: it records what it is asked."""

    def __init__(self, fail: bool = False) -> None:
        self.cancelled: list[str] = []
        self.fail = fail

    def cancel(self, pickup_code: str) -> None:
        if self.fail:
            raise CarrierError("carrier API unavailable")
        self.cancelled.append(pickup_code)


def file_exchange(client) -> str:
    assert login_shopper(client).status_code == 303
    data = form_for(
        client, **{"0": {"quantity": "1", "reason": "size_fit", "outcome": "exchange", "exchange_sku": "TEE-L"}}
    )
    return client.post("/order/request", data=data).headers["Location"].rsplit("/", 1)[1]


def reserved(session, sku: str) -> int:
    session.expire_all()
    return session.scalars(select(Variant.reserved).where(Variant.sku == sku)).one()


def test_cancelling_a_labelled_return_stops_its_code_and_label(client, order, session):
    rma = file_exchange(client)
    req = session.scalars(select(ReturnRequest)).one()
    code = req.pickup_code
    assert req.status == "label_issued" and code and reserved(session, "TEE-L") == 1
    status = client.get(f"/requests/{rma}")
    assert "Give this code to the courier" in status.get_data(as_text=True)
    assert client.get(f"/requests/{rma}/label").status_code == 200

    page = status.get_data(as_text=True)
    response = client.post(f"/requests/{rma}/cancel", data={"csrf_token": csrf_token(page), "status": "label_issued"})
    assert response.status_code == 303

    after = soup(client.get(f"/requests/{rma}"))
    text = after.get_text(" ")
    assert "Give this code to the courier" not in text
    assert "its pickup code and label no longer work" in text
    assert not after.select(f'a[href="/requests/{rma}/label"]')
    for path in (f"/requests/{rma}/label", f"/requests/{rma}/label.pdf"):
        gone = client.get(path)
        assert gone.status_code == 410
        assert "Please do not send the parcel" in gone.get_data(as_text=True)
    assert reserved(session, "TEE-L") == 0

    event = post_json(client, "/api/v1/carrier-events", carrier_event(code))
    assert event.status_code == 409 and "pickup cancelled" in event.get_json()["error"]
    session.expire_all()
    assert session.scalars(select(ReturnRequest.status)).one() == "cancelled"
    topics = [
        m.payload["topic"] for m in session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "webhook"))
    ]
    assert "return.cancelled" in topics


def test_the_carrier_is_asked_to_call_off_the_pickup(client, order, session):
    file_exchange(client)
    req = session.scalars(select(ReturnRequest)).one()
    courier = RecordingCourier()
    cancel_return(session, req, SHOPPER, carrier=courier)
    assert courier.cancelled == [req.pickup_code]
    assert [e.note for e in req.events if e.kind == "pickup"] == [f"pickup {req.pickup_code} cancelled with in-house"]


def test_when_the_carrier_cannot_cancel_nothing_changes(client, order, session):
    file_exchange(client)
    req = session.scalars(select(ReturnRequest)).one()
    with pytest.raises(PickupNotCancelled):
        cancel_return(session, req, SHOPPER, carrier=RecordingCourier(fail=True))
    session.expire_all()
    req = session.scalars(select(ReturnRequest)).one()
    assert req.status == "label_issued" and reserved(session, "TEE-L") == 1
    assert client.get(f"/requests/{req.rma}/label").status_code == 200


def test_a_return_whose_replacement_already_shipped_cannot_be_cancelled(client, app, order, session):
    from pathlib import Path

    from portal.services.policies import default_policy_text

    Path(app.config["POLICY_PATH"]).write_text(
        default_policy_text()
        .replace("instant = false", "instant = true")
        .replace('version = "default-1"', 'version = "instant-1"')
    )
    rma = file_exchange(client)
    page = client.get(f"/requests/{rma}").get_data(as_text=True)
    assert not soup(page).select(f'form[action="/requests/{rma}/cancel"]')
    response = client.post(
        f"/requests/{rma}/cancel",
        data={"csrf_token": csrf_token(page), "status": "label_issued"},
        follow_redirects=True,
    )
    assert "can no longer be cancelled" in response.get_data(as_text=True)
    session.expire_all()
    assert session.scalars(select(ReturnRequest.status)).one() == "label_issued"
