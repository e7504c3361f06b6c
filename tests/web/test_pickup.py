"""After approval: the pickup code and label, and the courier's tracking events."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from portal.db.models import CarrierEvent, RequestEvent, ReturnRequest
from portal.domain.codes import parse_pickup_code
from tests.helpers import carrier_event, email_text, form_for, login_shopper, order_payload, post_json, soup


@pytest.fixture
def labelled(client, order, session):
    assert login_shopper(client).status_code == 303
    response = client.post(
        "/order/request", data=form_for(client, **{"0": {"quantity": "1", "reason": "size_fit", "outcome": "refund"}})
    )
    rma = response.headers["Location"].rsplit("/", 1)[1]
    req = session.scalars(select(ReturnRequest)).one()
    return rma, req.pickup_code


def test_pickup_code_is_checked_and_shown(client, labelled):
    rma, code = labelled
    assert parse_pickup_code(code) == code
    assert parse_pickup_code(code.lower().replace("-", " ")) == code
    page = client.get(f"/requests/{rma}").get_data(as_text=True)
    assert code in page and "You pay no postage" in page


def test_label_page_has_qr_and_barcode(client, labelled):
    rma, code = labelled
    page = client.get(f"/requests/{rma}/label").get_data(as_text=True)
    assert len(soup(page).find_all("svg")) >= 2 and code in page and rma in page
    assert "Returns warehouse" in page and "Postage is prepaid by the shop" in page
    assert "<h2>Items</h2>" in page and "built-in method" not in page
    scripts = soup(page).body.find_all("script")
    assert all(
        s.get("src", "").startswith("/static/js") and not s.string for s in scripts
    )  # no inline script on the label


def test_label_pdf(client, labelled):
    rma, _ = labelled
    response = client.get(f"/requests/{rma}/label.pdf")
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/pdf"
    assert response.data.startswith(b"%PDF-") and response.data.rstrip().endswith(b"%%EOF")


def test_carrier_event_moves_to_in_transit_once(client, labelled, session):
    rma, code = labelled
    first = post_json(client, "/api/v1/carrier-events", carrier_event(code))
    assert first.status_code == 200 and first.get_json() == {"rma": rma, "status": "in_transit"}
    second = post_json(client, "/api/v1/carrier-events", carrier_event(code, "in_transit", "evt-2", 30, "Shanghai hub"))
    assert second.status_code == 200 and second.get_json()["status"] == "in_transit"
    session.expire_all()
    req = session.scalars(select(ReturnRequest)).one()
    kinds = [(e.kind, e.to_status) for e in req.events]
    assert ("status", "in_transit") in kinds and ("tracking", None) in kinds
    assert session.scalar(select(func.count(CarrierEvent.id))) == 2
    page = client.get(f"/requests/{rma}").get_data(as_text=True)
    assert "On its way back" in page


def test_replay_and_unknown_codes_are_refused_without_side_effects(client, labelled, session):
    rma, code = labelled
    assert post_json(client, "/api/v1/carrier-events", carrier_event(code)).status_code == 200
    before = session.scalar(select(func.count(RequestEvent.id)))
    replay = post_json(client, "/api/v1/carrier-events", carrier_event(code))
    assert replay.status_code == 409
    wrong_check = code[:-1] + ("0" if code[-1] != "0" else "1")
    assert post_json(client, "/api/v1/carrier-events", carrier_event(wrong_check, event_id="evt-9")).status_code == 404
    assert (
        post_json(client, "/api/v1/carrier-events", carrier_event("P-0000-0000-000", event_id="evt-8")).status_code
        == 404
    )
    assert session.scalar(select(func.count(RequestEvent.id))) == before
    assert session.scalar(select(func.count(CarrierEvent.id))) == 1


@pytest.mark.parametrize(
    "payload", [{}, {"event_id": "x", "pickup_code": "P", "kind": "teleported", "at": "yesterday"}, []]
)
def test_bad_carrier_events_are_400(client, payload):
    response = post_json(client, "/api/v1/carrier-events", payload)
    assert response.status_code == 400 and response.get_json()["errors"]


def test_cancel_is_refused_once_picked_up(client, labelled, session):
    rma, code = labelled
    post_json(client, "/api/v1/carrier-events", carrier_event(code))
    page = client.get(f"/requests/{rma}").get_data(as_text=True)
    assert "Cancel this return" not in page


def test_returnless_refund_has_no_label(client, session):
    cheap = [
        {
            "line_id": "1",
            "sku": "SOCKS-1",
            "product_name": "Socks",
            "variant": "",
            "category": "accessories",
            "quantity": 1,
            "unit_price": "12.00",
            "discount": "0",
            "tax": "0",
            "final_sale": False,
        }
    ]

    post_json(client, "/api/v1/orders", order_payload("CHEAP-1", lines=cheap))
    login_shopper(client, number="CHEAP-1")
    # Late delivery is the carrier's fault and needs no photo; 12.00 is below the keep-the-item threshold.
    client.post(
        "/order/request",
        data=form_for(client, **{"0": {"quantity": "1", "reason": "late_delivery", "outcome": "refund"}}),
    )
    req = session.scalars(select(ReturnRequest)).one()
    assert req.returnless and req.status == "approved" and req.pickup_code is None
    rma = req.rma
    assert client.get(f"/requests/{rma}/label").status_code == 404
    assert "You can keep the item" in client.get(f"/requests/{rma}").get_data(as_text=True)


def test_shop_hears_about_approval_and_transit(client, labelled, session):
    from portal.db.models import OutboxMessage

    rma, code = labelled
    post_json(client, "/api/v1/carrier-events", carrier_event(code))
    hooks = session.scalars(
        select(OutboxMessage).where(OutboxMessage.channel == "webhook").order_by(OutboxMessage.id)
    ).all()
    assert [h.payload["topic"] for h in hooks] == ["return.approved", "return.in_transit"]
    assert hooks[0].payload["data"]["rma"] == rma and hooks[0].payload["data"]["pickup_code"] == code
    assert all(h.sent_at is None for h in hooks)  # no webhook URL configured: they wait, they are not failures


def test_approval_email_has_the_code_and_a_signed_link(client, labelled, app, session):
    import email as email_lib
    import email.policy
    from pathlib import Path

    rma, code = labelled
    files = sorted(Path(app.config["OUTBOX_PATH"]).glob("*.eml"))
    message = email_lib.message_from_bytes(files[-1].read_bytes(), policy=email_lib.policy.default)
    body = email_text(message)
    assert code in body and f"/label/{rma}" in body
    link = re.search(r"http://localhost(/r/\S+)", body).group(1)
    fresh = app.test_client()
    assert fresh.get(link).status_code == 303 and fresh.get(f"/requests/{rma}/label").status_code == 200
    # The label link opens the label itself on a device that never signed in.
    label_link = re.search(rf"http://localhost(/r/\S+/label/{re.escape(rma)})", body).group(1)
    other = app.test_client()
    opened = other.get(label_link)
    assert opened.status_code == 303 and opened.headers["Location"].endswith(f"/requests/{rma}/label")
    assert other.get(opened.headers["Location"]).status_code == 200


def test_a_pickup_code_issued_with_the_old_check_character_still_works(client, labelled, session):
    from sqlalchemy import update

    from portal.domain.codes import encode, legacy_check_char

    rma, _ = labelled
    value = next(v for v in range(1000) if legacy_check_char(v) in "*~$=U")
    body = encode(value, 10) + legacy_check_char(value)
    old = f"P-{body[:4]}-{body[4:8]}-{body[8:]}"
    session.execute(update(ReturnRequest).where(ReturnRequest.rma == rma).values(pickup_code=old))
    session.commit()
    assert client.get(f"/requests/{rma}/label").status_code == 200
    moved = post_json(client, "/api/v1/carrier-events", carrier_event(old.lower().replace("-", " ")))
    assert moved.status_code == 200 and moved.get_json()["status"] == "in_transit"
