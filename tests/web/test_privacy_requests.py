"""A shopper asks for a copy of their data or for its erasure from the return page; leads answer
it within 30 days; the copy goes only to that shopper, the erasure keeps what finance needs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from portal.adapters.payments import SandboxGateway
from portal.db.models import (
    AuditLog,
    LedgerEntry,
    Order,
    OutboxMessage,
    Photo,
    PrivacyRequest,
    Refund,
    StaffNotification,
    StaffUser,
)
from portal.services.refunds import approve_refund, execute_refund, preview_refund
from portal.services.staff import create_staff
from portal.services.tickets import ensure_team
from portal.storage import StorageError, store_from_config
from tests.helpers import (
    PASSWORD,
    csrf_token,
    finance_user,
    form_for,
    inspected,
    jpeg,
    login_shopper,
    order_payload,
    post_json,
    sign_in,
)


def _shopper_with_request(app, number="SO-1001", email="li.wei@example.com"):
    shopper = app.test_client()
    login_shopper(shopper, number=number, contact=email)
    filed = shopper.post(
        "/order/request", data=form_for(shopper, **{"0": {"quantity": "1", "reason": "size_fit", "outcome": "refund"}})
    )
    return shopper, filed.headers["Location"].rsplit("/", 1)[1]


def _ask(shopper, rma, **data):
    page = shopper.get(f"/requests/{rma}/privacy").get_data(as_text=True)
    return shopper.post(f"/requests/{rma}/privacy", data={"csrf_token": csrf_token(page), **data})


def _lead(app, session):
    if session.scalars(select(StaffUser).where(StaffUser.email == "lead@example.com")).first() is None:
        create_staff(session, "lead@example.com", "Lena Lead", "lead", PASSWORD)
    lead = app.test_client()
    sign_in(lead, "lead@example.com")
    return lead


def _complete(staff, row_id, **data):
    page = staff.get(f"/staff/privacy/{row_id}").get_data(as_text=True)
    return staff.post(f"/staff/privacy/{row_id}/complete", data={"csrf_token": csrf_token(page), **data})


def test_copy_of_data_end_to_end(app, client, order, session):
    shopper, rma = _shopper_with_request(app)
    status = shopper.get(f"/requests/{rma}").get_data(as_text=True)
    assert f"/requests/{rma}/privacy" in status
    # Bad input: nothing chosen, an unknown kind, no CSRF token.
    assert _ask(shopper, rma).status_code == 422
    bad = _ask(shopper, rma, kind="everything")
    assert bad.status_code == 422 and "Choose what you would like us to do" in bad.get_data(as_text=True)
    assert shopper.post(f"/requests/{rma}/privacy", data={"kind": "copy"}).status_code == 400
    assert session.scalars(select(PrivacyRequest)).all() == []

    # A privacy team: its lead is told of each request.
    lead_user = create_staff(session, "lead@example.com", "Lena Lead", "lead", PASSWORD)
    team = ensure_team(session, "privacy", "Privacy")
    team.lead_id = lead_user.id
    session.commit()
    before = datetime.now(UTC)
    asked = _ask(shopper, rma, kind="copy")
    assert asked.status_code == 303
    assert _ask(shopper, rma, kind="copy").status_code == 303  # asking twice keeps one request
    row = session.scalars(select(PrivacyRequest)).one()
    assert (row.kind, row.status, row.team_id) == ("copy", "open", team.id)
    (note,) = session.scalars(select(StaffNotification).where(StaffNotification.staff_id == lead_user.id)).all()
    assert note.kind == "data_request" and "SO-1001" in note.message and row.due_at.strftime("%Y-%m-%d") in note.message
    assert row.due_at - row.asked_at == timedelta(days=30) and row.asked_at >= before
    page = shopper.get(f"/requests/{rma}/privacy").get_data(as_text=True)
    assert "Being handled" in page and row.due_at.strftime("%Y-%m-%d") in page and "copy.json" not in page

    # Staff: agents cannot see data requests; a lead sees it with its due date and answers it.
    create_staff(session, "agent@example.com", "Ann Agent", "agent", PASSWORD)
    agent = app.test_client()
    sign_in(agent, "agent@example.com")
    assert agent.get("/staff/privacy").status_code == 403
    lead = _lead(app, session)
    assert "Data request" in lead.get("/staff/notifications").get_data(as_text=True)
    queue = lead.get("/staff/privacy").get_data(as_text=True)
    assert "SO-1001" in queue and row.due_at.strftime("%Y-%m-%d") in queue and "29 days left" in queue
    detail = lead.get(f"/staff/privacy/{row.id}").get_data(as_text=True)
    assert "li.wei@example.com" not in detail  # masked on the ticket
    assert lead.get("/staff/privacy/999999").status_code == 404
    done = _complete(lead, row.id)
    assert done.status_code == 303
    session.expire_all()
    row = session.get(PrivacyRequest, row.id)
    assert row.status == "done" and row.copy_until is not None and row.completed_by is not None
    email = session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "privacy_copy_ready")).one()
    assert email.payload["to"] == "li.wei@example.com"
    again = _complete(lead, row.id)
    assert again.status_code == 303
    assert "already been completed" in lead.get(f"/staff/privacy/{row.id}").get_data(as_text=True)

    # Only the signed-in shopper of this order gets the copy.
    url = f"/requests/{rma}/privacy/{row.id}/copy.json"
    assert url in shopper.get(f"/requests/{rma}/privacy").get_data(as_text=True)
    copy = shopper.get(url)
    assert copy.status_code == 200 and copy.headers["Content-Type"].startswith("application/json")
    data = json.loads(copy.get_data(as_text=True))
    assert data["order"]["email"] == "li.wei@example.com" and data["returns"][0]["rma"] == rma
    assert lead.get(url).status_code == 303  # staff have no shopper session: sent to the start page
    post_json(client, "/api/v1/orders", order_payload("SO-2002", email="other@example.com"))
    other = app.test_client()
    login_shopper(other, number="SO-2002", contact="other@example.com")
    assert other.get(url).status_code == 404
    downloads = session.scalars(select(AuditLog).where(AuditLog.action == "privacy_copy_downloaded")).all()
    assert len(downloads) == 1 and downloads[0].order_number == "SO-1001"
    # After its few days the copy is gone.
    row.copy_until = datetime.now(UTC) - timedelta(minutes=1)
    session.commit()
    assert shopper.get(url).status_code == 404
    kinds = {e.action for e in session.scalars(select(AuditLog).where(AuditLog.order_number == "SO-1001"))}
    assert {"privacy_asked", "privacy_copy_ready", "privacy_copy_downloaded"} <= kinds


def _refund(app, session, req) -> Refund:
    factory = app.extensions["portal.sessionmaker"]
    preview = preview_refund(session, req)
    refund = approve_refund(
        session, req, finance_user(session, f"fay{req.id}"), preview.basis_hash, "sandbox", Decimal(10000)
    )
    return execute_refund(factory, refund.id, SandboxGateway(factory))


def test_erasure_end_to_end_keeps_finance_rows(app, client, order, session):
    req = inspected(app, client, session)
    store = store_from_config(app.config)
    store.put("photos/test/erase.jpg", jpeg(), "image/jpeg")
    session.add(
        Photo(
            request_id=req.id,
            line_id=req.lines[0].id,
            storage_key="photos/test/erase.jpg",
            content_type="image/jpeg",
            width=640,
            height=480,
            size=1000,
            sha256="e" * 64,
        )
    )
    session.commit()
    refund = _refund(app, session, req)
    money = [(r.amount, r.provider_ref, r.status) for r in session.scalars(select(Refund))]
    ledger = [(e.amount, e.reference, e.kind) for e in session.scalars(select(LedgerEntry))]
    assert refund.status and ledger
    shopper = app.test_client()
    login_shopper(shopper, number="RF-1")
    rma = req.rma
    unconfirmed = _ask(shopper, rma, kind="erasure")
    assert unconfirmed.status_code == 422 and "Please confirm" in unconfirmed.get_data(as_text=True)
    assert _ask(shopper, rma, kind="erasure", confirm="y").status_code == 303
    row = session.scalars(select(PrivacyRequest)).one()
    assert row.kind == "erasure" and row.due_at - row.asked_at == timedelta(days=30)

    lead = _lead(app, session)
    refused = _complete(lead, row.id)
    assert refused.status_code == 422 and "Confirm the erasure" in refused.get_data(as_text=True)
    session.expire_all()
    assert session.get(Order, req.order_id).customer_email == "li.wei@example.com"
    assert _complete(lead, row.id, confirm="y").status_code == 303
    session.expire_all()
    erased = session.get(Order, req.order_id)
    assert (erased.customer_name, erased.customer_email, erased.customer_phone) == ("", None, None)
    assert erased.anonymised_at is not None and erased.payment_reference == "PAY-1"  # the reference stays
    with pytest.raises(StorageError):
        store.get("photos/test/erase.jpg")
    assert [(r.amount, r.provider_ref, r.status) for r in session.scalars(select(Refund))] == money
    assert [(e.amount, e.reference, e.kind) for e in session.scalars(select(LedgerEntry))] == ledger
    confirmation = session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "privacy_erased")).one()
    assert confirmation.payload["to"] == "li.wei@example.com"
    assert confirmation.sent_at is not None and confirmation.last_error is None
    # Once sent, the periodic job takes the address off it too (retention itself is off here).
    from portal.jobs.retention import retention_purge

    assert retention_purge(app)["confirmations_scrubbed"] == 1
    session.expire_all()
    assert session.get(OutboxMessage, confirmation.id).payload["to"] == ""
    # Staff pages still work for the anonymised order; its photo is simply gone.
    assert lead.get(f"/staff/requests/{rma}").status_code == 200
    photo_id = session.scalars(select(Photo.id).where(Photo.request_id == req.id)).one()
    assert lead.get(f"/staff/photos/{photo_id}").status_code == 404
    assert lead.get("/staff/queue").status_code == 200
    entry = session.scalars(select(AuditLog).where(AuditLog.action == "privacy_erased")).one()
    assert entry.after["photos"] == 1 and entry.order_number == "RF-1"
    # The shopper's page says so, and asking again is refused with a clear message.
    page = shopper.get(f"/requests/{rma}/privacy").get_data(as_text=True)
    assert "already been removed" in page
    again = shopper.post(f"/requests/{rma}/privacy", data={"csrf_token": csrf_token(page), "kind": "copy"})
    assert again.status_code == 422 and "already been removed" in again.get_data(as_text=True)


def test_pages_in_chinese(app, client, order, session):
    shopper, rma = _shopper_with_request(app)
    page = shopper.get(f"/requests/{rma}/privacy").get_data(as_text=True)
    shopper.post("/lang", data={"lang": "zh_Hans", "csrf_token": csrf_token(page)})
    zh = shopper.get(f"/requests/{rma}/privacy")
    assert zh.status_code == 200 and 'lang="zh' in zh.get_data(as_text=True)
    assert _ask(shopper, rma, kind="erasure").status_code == 422  # unconfirmed, in Chinese too
    assert _ask(shopper, rma, kind="copy").status_code == 303
    row = session.scalars(select(PrivacyRequest)).one()
    assert row.locale.startswith("zh")  # the emails about it go out in Chinese
    create_staff(session, "admin@example.com", "Ada Admin", "admin", PASSWORD)
    admin = app.test_client()
    sign_in(admin, "admin@example.com")
    token = csrf_token(admin.get("/staff/privacy").get_data(as_text=True))
    admin.post("/lang", data={"csrf_token": token, "lang": "zh_Hans", "next": "/staff/privacy"})
    for url in ("/staff/privacy", f"/staff/privacy/{row.id}", "/admin/audit?kind=privacy_asked"):
        answer = admin.get(url)
        assert answer.status_code == 200 and 'lang="zh' in answer.get_data(as_text=True), url
    assert _complete(admin, row.id).status_code == 303
    email = session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "privacy_copy_ready")).one()
    assert email.payload["locale"].startswith("zh")
    assert email.sent_at is not None and email.last_error is None  # the email rendered and went out
