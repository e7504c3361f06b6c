"""Rejection reasons come from a list admins keep: staff pick one (their own words may follow), the
shopper reads it, the admin page counts rejections per reason, and every change is in the audit log."""

from __future__ import annotations

from sqlalchemy import select

from portal.db.models import AuditLog, OutboxMessage, RejectionReason, ReturnRequest
from portal.services.staff import create_staff
from tests.helpers import PASSWORD, csrf_token, sign_in, soup, submit_coat


def test_admins_keep_the_list_staff_pick_from_it_and_rejections_are_counted(client, app, desk, session):
    create_staff(session, "admin@example.com", "Ada Admin", "admin", PASSWORD)
    admin = app.test_client()
    sign_in(admin, "admin@example.com")
    page = admin.get("/admin/rejection-reasons").get_data(as_text=True)
    empty = admin.post("/admin/rejection-reasons", data={"csrf_token": csrf_token(page), "label": " ", "active": "y"})
    assert empty.status_code == 422 and "Write the reason." in empty.get_data(as_text=True)
    bad = admin.post(
        "/admin/rejection-reasons", data={"csrf_token": csrf_token(page), "label": "Worn", "position": "x"}
    )
    assert bad.status_code == 422 and "Position" in soup(bad).select_one(".has-error").get_text(" ")
    for label in ("Worn or washed", "Outside the return window"):
        saved = admin.post(
            "/admin/rejection-reasons", data={"csrf_token": csrf_token(page), "label": label, "active": "y"}
        )
        assert saved.status_code == 303
    worn = session.scalars(select(RejectionReason).where(RejectionReason.label == "Worn or washed")).one()
    assert {a.action for a in session.scalars(select(AuditLog))} >= {"create_rejection_reason"}

    rma = submit_coat(app)
    sign_in(client, "agent@example.com")
    ticket_page = soup(client.get(f"/staff/requests/{rma}"))
    options = [o.get_text() for o in ticket_page.select('select[name="rejection_reason"] option')]
    assert options[1:] == ["Worn or washed", "Outside the return window"]
    data = {"csrf_token": csrf_token(str(ticket_page)), "status": "pending_review", "action": "reject"}
    forged = client.post(f"/staff/requests/{rma}/decide", data={**data, "rejection_reason": "999"})
    assert forged.status_code == 422 and "Choose a rejection reason from the list." in forged.get_data(as_text=True)
    done = client.post(
        f"/staff/requests/{rma}/decide",
        data={**data, "rejection_reason": str(worn.id), "note": "The label is cut off."},
    )
    assert done.status_code == 303
    session.expire_all()
    req = session.scalars(select(ReturnRequest)).one()
    assert req.status == "rejected" and req.rejection_reason_id == worn.id
    told = [m.payload for m in session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "webhook"))]
    assert any(p.get("data", p).get("reason") == "Worn or washed. The label is cut off." for p in told), told

    report = soup(admin.get("/admin/rejection-reasons")).select_one("#rejection-report")
    assert [td.get_text(strip=True) for td in report.select("tbody tr")[0].select("td")] == ["Worn or washed", "1"]

    # A retired reason is no longer offered, and cannot be forged back in.
    assert (
        admin.post(
            f"/admin/rejection-reasons/{worn.id}", data={"csrf_token": csrf_token(page), "label": "Worn or washed"}
        ).status_code
        == 303
    )
    session.expire_all()
    assert session.get(RejectionReason, worn.id).active is False


def test_a_macro_sends_the_reply_and_records_its_decision_in_one_action(client, app, desk, session):
    from portal.db.models import CannedReplyRow, RequestEvent

    session.add_all(
        [
            CannedReplyRow(
                name="Fits badly: approve",
                locale="en",
                body="Sorry it did not fit; send it back.",
                reasons=["size_fit"],
                decision="approve",
            ),
            CannedReplyRow(
                name="Ask for the label",
                locale="en",
                body="Is the label still attached?",
                reasons=["size_fit"],
                decision="ask",
            ),
        ]
    )
    session.commit()
    approve, ask = session.scalars(select(CannedReplyRow).order_by(CannedReplyRow.id)).all()
    rma = submit_coat(app)
    sign_in(client, "agent@example.com")
    page = soup(client.get(f"/staff/requests/{rma}"))
    buttons = [b.get_text(strip=True) for b in page.select("section.replies button.primary")]
    assert buttons == ["Send and approve", "Send as a question"]
    data = {
        "csrf_token": csrf_token(str(page)),
        "status": "pending_review",
        "body": "Sorry it did not fit; send it back.",
    }
    stale = client.post(
        f"/staff/requests/{rma}/macro/{approve.id}", data={**data, "status": "approved"}, follow_redirects=True
    )
    assert "changed while you were looking" in stale.get_data(as_text=True)
    session.expire_all()
    assert session.scalars(select(ReturnRequest.status)).one() == "pending_review"
    assert not session.scalars(select(RequestEvent).where(RequestEvent.kind == "message")).all()  # nothing sent
    done = client.post(f"/staff/requests/{rma}/macro/{approve.id}", data=data, follow_redirects=True)
    assert "Approved and the reply sent." in done.get_data(as_text=True)
    session.expire_all()
    assert session.scalars(select(ReturnRequest.status)).one() == "label_issued"
    sent = session.scalars(select(RequestEvent).where(RequestEvent.kind == "message")).one()
    assert sent.note == "Sorry it did not fit; send it back."
    assert client.post(f"/staff/requests/{rma}/macro/999999", data=data).status_code == 404


def test_admins_make_a_reply_a_macro(client, app, session):
    from portal.db.models import CannedReplyRow

    create_staff(session, "admin@example.com", "Ada Admin", "admin", PASSWORD)
    sign_in(client, "admin@example.com")
    page = client.get("/admin/replies").get_data(as_text=True)
    data = {
        "csrf_token": csrf_token(page),
        "name": "Approve size",
        "locale": "en",
        "body": "Send it back.",
        "active": "y",
    }
    assert client.post("/admin/replies", data={**data, "decision": "sideways"}).status_code == 422
    assert client.post("/admin/replies", data={**data, "decision": "approve"}).status_code == 303
    row = session.scalars(select(CannedReplyRow)).one()
    assert row.decision == "approve"
    listed = soup(client.get("/admin/replies")).select_one("table.list tbody tr").get_text(" ")
    assert "approves" in listed
    audit = session.scalars(select(AuditLog).where(AuditLog.action == "create_reply")).one()
    assert audit.after["decision"] == "approve"
