"""Warehouse: scan by pickup code or RMA, count and grade, record discrepancies; never a refund."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.db.models import Discrepancy, OutboxMessage, ReceiptLine, ReturnLine, ReturnRequest, Ticket
from portal.services.staff import create_staff
from tests.helpers import (
    PASSWORD,
    carrier_event,
    csrf_token,
    encode,
    field_errors,
    form_for,
    login_shopper,
    page_values,
    post_json,
    rgb,
    sign_in,
)


@pytest.fixture
def parcel(client, app, order, session):
    shopper = app.test_client()
    login_shopper(shopper)
    shopper.post(
        "/order/request", data=form_for(shopper, **{"0": {"quantity": "2", "reason": "size_fit", "outcome": "refund"}})
    )
    req = session.scalars(select(ReturnRequest)).one()
    post_json(client, "/api/v1/carrier-events", carrier_event(req.pickup_code))
    create_staff(session, "wh@example.com", "Wen", "warehouse", PASSWORD)
    sign_in(client, "wh@example.com")
    return req.rma, req.pickup_code, session.scalars(select(ReturnLine.id)).one()


def test_scan_by_pickup_code_or_rma(client, parcel):
    rma, code, _ = parcel
    for scanned in (code, code.lower().replace("-", ""), rma, rma.lower()):
        response = client.get("/warehouse/", query_string={"code": scanned})
        assert response.status_code == 303 and response.headers["Location"].endswith(f"/warehouse/parcels/{rma}")


def test_scan_feedback(client, parcel):
    rma, code, _ = parcel
    mistyped = code[:-1] + ("0" if code[-1] != "0" else "1")
    response = client.get("/warehouse/", query_string={"code": mistyped})
    assert response.status_code == 422 and "typing mistake" in response.get_data(as_text=True)
    response = client.get("/warehouse/", query_string={"code": "hello"})
    assert response.status_code == 404 and "No parcel with that code" in response.get_data(as_text=True)
    page = client.get("/warehouse/").get_data(as_text=True)
    assert "autofocus" in page and '<label for="code">' in page


def receive(client, rma, line_id, **fields):
    page = client.get(f"/warehouse/parcels/{rma}").get_data(as_text=True)
    data = {
        "csrf_token": csrf_token(page),
        "status": "in_transit",
        "lines-0-line_id": str(line_id),
        "lines-0-quantity": "2",
        "lines-0-grade": "B",
        "lines-0-disposition": "restock",
        **fields,
    }
    return client.post(f"/warehouse/parcels/{rma}", data=data)


def test_receive_and_grade_without_refunding(client, parcel, session):
    rma, _, line_id = parcel
    assert receive(client, rma, line_id, **{"lines-0-wear": "y"}).status_code == 303
    session.expire_all()
    req = session.scalars(select(ReturnRequest)).one()
    assert req.status == "inspected"
    receipt = session.scalars(select(ReceiptLine)).one()
    assert (receipt.quantity, receipt.grade, receipt.wear_confirmed, receipt.disposition) == (2, "B", True, "restock")
    line = session.get(ReturnLine, line_id)
    assert (line.grade, line.wear_confirmed) == ("B", True)  # beside the photos' wear scores
    topics = {m.topic for m in session.scalars(select(OutboxMessage))}
    assert {"return_received", "return.received"} <= topics and not any(t.startswith("refund") for t in topics)
    again = receive(client, rma, line_id)
    assert again.status_code == 303
    assert len(session.scalars(select(ReceiptLine)).all()) == 1  # already received: nothing saved twice


def test_short_quantity_and_transit_damage_reopen_the_ticket(client, parcel, session):
    rma, _, line_id = parcel
    response = receive(
        client,
        rma,
        line_id,
        **{
            "lines-0-quantity": "1",
            "lines-0-grade": "D",
            "lines-0-disposition": "destroy",
            "lines-0-issue": "damaged_in_transit",
            "lines-0-issue_note": "box crushed",
        },
    )
    assert response.status_code == 303
    session.expire_all()
    req = session.scalars(select(ReturnRequest)).one()
    assert req.status == "discrepancy"
    found = session.scalars(select(Discrepancy)).all()
    # One unit arrived crushed (the carrier's fault), the other did not arrive at all.
    assert sorted((d.kind, d.quantity, d.responsibility) for d in found) == [
        ("damaged_in_transit", 1, "logistics"),
        ("short_quantity", 1, "customer"),
    ]
    ticket = session.scalars(select(Ticket)).one()
    assert ticket.status == "open" and ticket.events[-1].kind in ("reopened", "assigned", "unassigned")
    assert any(e.kind == "reopened" and "box crushed" in e.note for e in ticket.events)


def test_bad_counts_are_refused_and_nothing_saved(client, parcel, session):
    rma, _, line_id = parcel
    response = receive(client, rma, line_id, **{"lines-0-quantity": "5"})
    assert response.status_code == 422 and "received quantity must be between 0 and 2" in response.get_data(
        as_text=True
    )
    response = receive(client, rma, line_id, **{"lines-0-grade": ""})
    assert response.status_code == 422 and "choose a grade" in response.get_data(as_text=True)
    assert session.scalars(select(ReceiptLine)).all() == []
    assert session.scalars(select(ReturnRequest.status)).one() == "in_transit"


def test_a_refused_receipt_keeps_what_was_entered(client, parcel, session):
    """A missing grade: the page comes back with the error beside the grade and everything else as typed."""
    rma, _, line_id = parcel
    entered = {
        "lines-0-quantity": "1",
        "lines-0-grade": "",
        "lines-0-disposition": "outlet",
        "lines-0-wear": "y",
        "lines-0-issue": "damaged_in_transit",
        "lines-0-issue_note": "box crushed",
        "lines-0-note": "left sleeve torn",
        "extra": "a sock",
    }
    response = receive(client, rma, line_id, **entered)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert field_errors(page, "lines-0-grade") == [f"Line {line_id}: choose a grade."]
    assert field_errors(page, "lines-0-quantity") == [] and field_errors(page, "lines-0-disposition") == []
    shown = page_values(page)
    assert {name: shown.get(name) for name in entered} == entered
    assert shown["lines-0-line_id"] == str(line_id)
    assert session.scalars(select(ReceiptLine)).all() == [] and session.scalars(select(Discrepancy)).all() == []
    assert session.scalars(select(ReturnRequest.status)).one() == "in_transit"


def test_a_refused_count_is_shown_beside_the_quantity(client, parcel, session):
    rma, _, line_id = parcel
    response = receive(client, rma, line_id, **{"lines-0-quantity": "many", "lines-0-note": "counted twice"})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert field_errors(page, "lines-0-quantity") == [f"Line {line_id}: the received quantity must be between 0 and 2."]
    shown = page_values(page)
    assert (shown["lines-0-grade"], shown["lines-0-disposition"], shown["lines-0-note"]) == (
        "B",
        "restock",
        "counted twice",
    )
    assert session.scalars(select(ReceiptLine)).all() == []


def test_agents_cannot_receive(client, parcel, session):
    rma, _, _ = parcel
    create_staff(session, "ag@example.com", "Ag", "agent", PASSWORD)
    other = client.application.test_client()
    sign_in(other, "ag@example.com")
    assert other.get("/warehouse/").status_code == 403
    assert other.get(f"/warehouse/parcels/{rma}").status_code == 403


def test_warehouse_photos_are_kept_apart_from_the_shoppers(client, app, parcel, session):
    import io

    from portal.db.models import Photo

    rma, _, line_id = parcel
    page = client.get(f"/warehouse/parcels/{rma}").get_data(as_text=True)
    data = {
        "csrf_token": csrf_token(page),
        "status": "in_transit",
        "lines-0-line_id": str(line_id),
        "lines-0-quantity": "2",
        "lines-0-grade": "C",
        "lines-0-disposition": "outlet",
        "lines-0-photos": [(io.BytesIO(encode(rgb(), "JPEG")), "arrived.jpg")],
    }
    bad = dict(data, **{"lines-0-photos": [(io.BytesIO(b"<html></html>"), "x.jpg")]})
    refused = client.post(f"/warehouse/parcels/{rma}", data=bad, content_type="multipart/form-data")
    assert refused.status_code == 422 and "x.jpg" in refused.get_data(as_text=True)
    assert session.scalars(select(ReceiptLine)).all() == []
    assert client.post(f"/warehouse/parcels/{rma}", data=data, content_type="multipart/form-data").status_code == 303
    photo = session.scalars(select(Photo).where(Photo.source == "warehouse")).one()
    assert photo.line_id == line_id and photo.score_state == "not_scored"
    shopper = app.test_client()
    login_shopper(shopper)
    assert f"/photos/{photo.id}" not in shopper.get(f"/requests/{rma}").get_data(as_text=True)


def test_in_house_courier_records_a_pickup(client, app, order, session):
    shopper = app.test_client()
    login_shopper(shopper)
    shopper.post(
        "/order/request", data=form_for(shopper, **{"0": {"quantity": "1", "reason": "size_fit", "outcome": "refund"}})
    )
    req = session.scalars(select(ReturnRequest)).one()
    create_staff(session, "wh@example.com", "Wen", "warehouse", PASSWORD)
    sign_in(client, "wh@example.com")
    token = csrf_token(client.get("/warehouse/").get_data(as_text=True))
    done = client.post(
        "/warehouse/pickups",
        data={"csrf_token": token, "code": req.pickup_code.lower(), "location": "Jing'an"},
        follow_redirects=True,
    )
    assert "is on its way" in done.get_data(as_text=True)
    session.expire_all()
    assert session.get(ReturnRequest, req.id).status == "in_transit"
    unknown = client.post(
        "/warehouse/pickups", data={"csrf_token": token, "code": "P-0000-0000-000"}, follow_redirects=True
    )
    assert "No parcel with that pickup code" in unknown.get_data(as_text=True)
