"""Warehouse: scan by pickup code or RMA, count and grade, record discrepancies; never a refund."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.db.models import Discrepancy, Order, OutboxMessage, ReceiptLine, ReturnLine, ReturnRequest, Ticket
from portal.services.staff import create_staff
from tests.helpers import (
    PASSWORD,
    carrier_event,
    csrf_token,
    encode,
    field_errors,
    form_for,
    form_values,
    login_shopper,
    page_values,
    post_json,
    rgb,
    sign_in,
    soup,
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
        assert response.status_code == 303
        assert response.headers["Location"].endswith(f"/warehouse/parcels/{rma}?scanned=1")


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


def scan(client, code):
    response = client.get("/warehouse/", query_string={"code": code})
    page = soup(response)
    shown = page.select_one(".scan-result")
    tone = page.select_one("form[data-scan-tone]")
    return (
        response.status_code,
        shown.get_text(" ", strip=True) if shown else "",
        tone["data-scan-tone"] if tone else "",
    )


@pytest.mark.parametrize(
    "status,returnless,expected",
    [
        ("approved", False, "Not shipped yet: {rma} is approved, but the courier has not picked it up."),
        ("submitted", False, "Not approved yet: {rma} is Submitted."),
        ("pending_review", False, "Not approved yet: {rma} is Pending review."),
        ("cancelled", False, "Cancelled: {rma} was cancelled. Do not receive it"),
        ("rejected", False, "Rejected: {rma} was not accepted. Do not receive it"),
        ("approved", True, "No parcel expected: {rma} is settled without sending the item back (Approved)."),
        ("refunded", False, "No parcel expected: {rma} is settled without sending the item back (Refunded)."),
    ],
)
def test_a_scan_that_must_not_be_received_says_why(client, parcel, session, status, returnless, expected):
    rma, code, _ = parcel
    req = session.scalars(select(ReturnRequest)).one()
    req.status, req.returnless = status, returnless
    session.commit()
    for scanned in (code, rma):
        answer, text, tone = scan(client, scanned)
        assert answer == 409 and expected.format(rma=rma) in text
        assert "Already received" not in text
        assert tone == ("warn" if expected.startswith(("Not shipped", "No parcel")) else "bad")
    assert session.scalars(select(ReceiptLine)).all() == []


def test_an_approved_return_without_a_pickup_is_not_shipped_yet(client, app, order, session):
    """Approved by the policy with no carrier booked: the courier never picked it up."""
    from datetime import UTC, datetime

    from portal.services.filing import LineRequest, open_return
    from portal.services.policies import active_policy
    from portal.storage import store_from_config

    order_row = session.scalars(select(Order)).one()
    req = open_return(
        session,
        order_row,
        [LineRequest("1", 1, "size_fit", "too_small", outcome="refund")],
        active_policy(session, app.config),
        datetime.now(UTC),
        "en",
        store_from_config(app.config),
    )
    assert (req.status, req.pickup_code) == ("approved", None)
    create_staff(session, "wh@example.com", "Wen", "warehouse", PASSWORD)
    sign_in(client, "wh@example.com")
    answer, text, tone = scan(client, req.rma)
    assert (answer, tone) == (409, "warn") and text.startswith(f"Not shipped yet: {req.rma} is approved")
    assert client.get(f"/warehouse/parcels/{req.rma}").status_code == 200  # "Open" shows it, nothing to record


def test_a_pickup_code_issued_but_not_collected_can_be_received(client, app, order, session):
    shopper = app.test_client()
    login_shopper(shopper)
    shopper.post(
        "/order/request", data=form_for(shopper, **{"0": {"quantity": "1", "reason": "size_fit", "outcome": "refund"}})
    )
    req = session.scalars(select(ReturnRequest)).one()
    assert req.status == "label_issued"
    create_staff(session, "wh@example.com", "Wen", "warehouse", PASSWORD)
    sign_in(client, "wh@example.com")
    response = client.get("/warehouse/", query_string={"code": req.pickup_code})
    assert response.status_code == 303 and response.headers["Location"].endswith("?scanned=1")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "has not reported picking this parcel up" in page and "Record receipt" in page


def test_a_cancelled_return_scans_as_cancelled(client, app, order, session):
    """The shopper cancelled after the label was issued: its pickup code scans as cancelled."""
    shopper = app.test_client()
    login_shopper(shopper)
    shopper.post(
        "/order/request", data=form_for(shopper, **{"0": {"quantity": "1", "reason": "size_fit", "outcome": "refund"}})
    )
    req = session.scalars(select(ReturnRequest)).one()
    from portal.domain.actors import SHOPPER
    from portal.services.filing import cancel_return

    cancel_return(session, req, SHOPPER)
    create_staff(session, "wh@example.com", "Wen", "warehouse", PASSWORD)
    sign_in(client, "wh@example.com")
    answer, text, tone = scan(client, req.pickup_code)
    assert (answer, tone) == (409, "bad") and text.startswith(f"Cancelled: {req.rma} was cancelled")


def test_a_received_parcel_scans_as_already_received_even_while_the_shopper_is_asked(client, parcel, session):
    rma, code, line_id = parcel
    assert receive(client, rma, line_id, **{"lines-0-quantity": "1"}).status_code == 303
    session.expire_all()
    req = session.scalars(select(ReturnRequest)).one()
    assert req.status == "discrepancy"
    answer, text, tone = scan(client, code)
    assert (answer, tone) == (409, "warn") and text.startswith(f"Already received: {rma} is ")
    req.status = "awaiting_shopper"  # an agent asked the shopper about the discrepancy
    session.commit()
    answer, text, _ = scan(client, rma)
    assert answer == 409 and text.startswith(f"Already received: {rma} is ")


def test_unknown_and_mistyped_codes_sound_the_error_tone(client, parcel):
    _, code, _ = parcel
    mistyped = code[:-1] + ("0" if code[-1] != "0" else "1")
    assert scan(client, "hello")[0::2] == (404, "bad")
    assert scan(client, mistyped)[0::2] == (422, "bad")
    assert scan(client, "")[0::2] == (200, "")


def test_the_parcel_page_confirms_a_scan_with_the_success_tone(client, parcel):
    rma, _, _ = parcel
    scanned = soup(client.get(f"/warehouse/parcels/{rma}", query_string={"scanned": "1"}))
    assert scanned.select_one("form[data-scan-tone]")["data-scan-tone"] == "ok"
    assert scanned.find("script", src="/static/js/scan.js") is not None
    opened = soup(client.get(f"/warehouse/parcels/{rma}"))
    assert opened.select_one("form[data-scan-tone]")["data-scan-tone"] == ""


def test_the_parcel_page_shows_reasons_in_words_and_expects_a_clean_parcel(client, app, order, session):
    shopper = app.test_client()
    login_shopper(shopper)
    shopper.post(
        "/order/request",
        data=form_for(
            shopper,
            **{"0": {"quantity": "2", "reason": "size_fit", "sub_reason": "too_small", "outcome": "refund"}},
        ),
    )
    req = session.scalars(select(ReturnRequest)).one()
    line = session.scalars(select(ReturnLine)).one()
    assert (line.reason, line.sub_reason, line.quantity) == ("size_fit", "too_small", 2)
    create_staff(session, "wh@example.com", "Wen", "warehouse", PASSWORD)
    sign_in(client, "wh@example.com")
    page = client.get(f"/warehouse/parcels/{req.rma}")
    reason = soup(page).select_one(".line .reason").get_text(" ", strip=True)
    assert reason == "It doesn't fit · Too small"
    assert "size_fit" not in soup(page).get_text() and "too_small" not in soup(page).get_text()
    shown = page_values(page)
    assert (shown["lines-0-quantity"], shown["lines-0-grade"], shown["lines-0-disposition"]) == ("2", "A", "restock")
    assert "lines-0-wear" not in shown and shown["lines-0-issue"] == ""
    # One click: the form as it stands records a clean receipt.
    recorded = client.post(f"/warehouse/parcels/{req.rma}", data=form_values(page, "form[enctype]"))
    assert recorded.status_code == 303
    session.expire_all()
    assert session.get(ReturnRequest, req.id).status == "inspected"
    receipt = session.scalars(select(ReceiptLine)).one()
    assert (receipt.quantity, receipt.grade, receipt.disposition, receipt.wear_confirmed) == (2, "A", "restock", False)
    assert session.scalars(select(Discrepancy)).all() == []


def test_the_parcel_page_shows_reasons_in_chinese(client, parcel):
    rma, _, _ = parcel
    page = client.get(f"/warehouse/parcels/{rma}", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert soup(page).select_one(".line .reason").get_text(" ", strip=True) == "尺码不合适"


def test_the_demo_approved_returns_have_pickup_codes_to_scan(client, app, session):
    from portal.demo import seed, seed_requests

    seed(session)
    assert seed_requests(app, session) > 0
    requests = session.scalars(select(ReturnRequest)).all()
    approved = [r for r in requests if r.status not in ("submitted", "pending_review", "rejected")]
    assert approved, [r.status for r in requests]
    for req in approved:
        assert req.pickup_code and req.status == "label_issued", (req.rma, req.status)
    # An approved demo return left without a code (by an older demo) gets one when the demo runs again.
    first = approved[0]
    first.status, first.pickup_code = "approved", None
    session.commit()
    assert seed_requests(app, session) == 0
    session.expire_all()
    assert session.get(ReturnRequest, first.id).pickup_code and session.get(ReturnRequest, first.id).status == (
        "label_issued"
    )
    create_staff(session, "wh@example.com", "Wen", "warehouse", PASSWORD)
    sign_in(client, "wh@example.com")
    response = client.get("/warehouse/", query_string={"code": approved[-1].pickup_code})
    assert response.status_code == 303 and f"/warehouse/parcels/{approved[-1].rma}" in response.headers["Location"]


def test_the_camera_fallback_is_the_pinned_decoder_served_by_the_portal(client, parcel):
    import hashlib
    import tomllib
    from pathlib import Path

    vendor = Path(__file__).parents[2] / "static" / "vendor"
    pinned = tomllib.loads((vendor / "VENDORED.toml").read_text())["zxing-browser"]
    page = client.get("/warehouse/")
    assert "script-src 'self';" in page.headers["Content-Security-Policy"]
    decoder = soup(page).select_one("form[data-decoder]")["data-decoder"]
    assert decoder == f"/static/vendor/{pinned['file']}" and pinned["version"] in decoder
    with client.get(decoder) as served:
        assert served.status_code == 200 and hashlib.sha256(served.data).hexdigest() == pinned["sha256"]
    assert "MIT License" in (vendor / pinned["license"]).read_text()


def test_scan_messages_speak_chinese(client, parcel, session):
    rma, code, _ = parcel
    req = session.scalars(select(ReturnRequest)).one()
    req.status = "approved"
    session.commit()
    page = client.get("/warehouse/", query_string={"code": code}, headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert page.status_code == 409
    assert (
        soup(page)
        .select_one(".scan-result")
        .get_text(" ", strip=True)
        .startswith(f"尚未寄出：{rma} 已批准，但快递员还未揽收。")
    )
