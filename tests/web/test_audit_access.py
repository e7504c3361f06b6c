"""Access you can read: reveals (with a reason), exports and admin changes are in the audit log with
the person, time and client address; the audit page filters them and exports them as CSV without
personal data (that export recorded too)."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from portal.db.models import AuditLog, StaffUser
from portal.services.staff import create_staff
from tests.helpers import PASSWORD, csrf_token, form_for, login_shopper, sign_in

OFFICE = "203.0.113.7"


def _client(app, address=OFFICE):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


@pytest.fixture
def people(app, session, order):
    create_staff(session, "admin@example.com", "Ada Admin", "admin", PASSWORD)
    create_staff(session, "agent@example.com", "Al Agent", "agent", PASSWORD)
    create_staff(session, "fin@example.com", "Fei Finance", "finance", PASSWORD)
    create_staff(session, "lead@example.com", "Lu Lead", "lead", PASSWORD)
    clients = {}
    for role, email in (("admin", "admin"), ("agent", "agent"), ("finance", "fin"), ("lead", "lead")):
        clients[role] = _client(app)
        sign_in(clients[role], f"{email}@example.com")
    shopper = app.test_client()
    login_shopper(shopper)
    filed = shopper.post(
        "/order/request", data=form_for(shopper, **{"0": {"quantity": "1", "reason": "size_fit", "outcome": "refund"}})
    )
    clients["rma"] = filed.headers["Location"].rsplit("/", 1)[1]
    return clients


def _rows(session, action):
    session.expire_all()
    return list(session.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))


def test_reveal_needs_a_reason_and_is_recorded_with_address(people, session):
    agent, rma = people["agent"], people["rma"]
    page = agent.get(f"/staff/requests/{rma}").get_data(as_text=True)
    assert "Reason for showing the contact details" in page and "li.wei@example.com" not in page
    token = csrf_token(page)
    missing = agent.post(f"/staff/requests/{rma}/contact", data={"csrf_token": token, "reason": "  "})
    assert missing.status_code == 422 and "li.wei@example.com" not in missing.get_data(as_text=True)
    too_long = agent.post(f"/staff/requests/{rma}/contact", data={"csrf_token": token, "reason": "x" * 201})
    assert too_long.status_code == 422
    assert agent.post(f"/staff/requests/{rma}/contact", data={"reason": "no token"}).status_code == 400
    assert _rows(session, "reveal_contact") == []
    shown = agent.post(
        f"/staff/requests/{rma}/contact",
        data={"csrf_token": token, "reason": "Shopper called about the pickup"},
        headers={"HX-Request": "true"},
    )
    assert shown.status_code == 200 and "li.wei@example.com" in shown.get_data(as_text=True)
    (entry,) = _rows(session, "reveal_contact")
    agent_id = session.scalars(select(StaffUser.id).where(StaffUser.email == "agent@example.com")).one()
    assert (entry.actor_id, entry.address, entry.reason, entry.order_number) == (
        agent_id,
        OFFICE,
        "Shopper called about the pickup",
        "SO-1001",
    )
    assert datetime.now(UTC) - entry.at < timedelta(minutes=1)


def test_exports_and_admin_changes_are_recorded(people, session):
    fin, lead, admin = people["finance"], people["lead"], people["admin"]
    assert fin.get("/finance/export.csv?from=2026-01-01&to=2026-01-31").status_code == 200
    assert fin.get("/finance/ledger.csv").status_code == 200
    month = datetime.now(UTC).strftime("%Y-%m")
    assert lead.get(f"/staff/products/export.csv?month={month}").status_code == 200
    assert fin.get("/finance/export.csv?from=not-a-day").status_code == 400  # refused: nothing exported
    exports = _rows(session, "export")
    assert [e.target for e in exports] == ["export:reconciliation", "export:ledger", "export:product_returns"]
    assert all(e.address == OFFICE and e.actor_id for e in exports)
    assert exports[0].detail == "2026-01-01..2026-01-31"

    agent = session.scalars(select(StaffUser).where(StaffUser.email == "agent@example.com")).one()
    page = admin.get("/admin/staff").get_data(as_text=True)
    admin.post(f"/admin/staff/{agent.id}/role", data={"csrf_token": csrf_token(page), "role": "lead"})
    (change,) = _rows(session, "change_role")
    assert change.address == OFFICE and change.before["role"] == "agent" and change.after["role"] == "lead"


def test_audit_page_filters_pages_and_exports_without_personal_data(app, people, session):
    admin, agent, rma = people["admin"], people["agent"], people["rma"]
    page = agent.get(f"/staff/requests/{rma}").get_data(as_text=True)
    agent.post(f"/staff/requests/{rma}/contact", data={"csrf_token": csrf_token(page), "reason": "Call li.wei back"})
    people["finance"].get("/finance/ledger.csv")
    # Older entries, for the date filter and paging.
    long_ago = datetime(2026, 1, 15, 12, tzinfo=UTC)
    for n in range(60):
        session.add(
            AuditLog(at=long_ago, actor_id=None, action="update_team", target=f"team:{n}", address="198.51.100.9")
        )
    session.commit()

    def actions(body):
        return re.findall(r'<tr data-action="([^"]+)"', body)

    everything = admin.get("/admin/audit").get_data(as_text=True)
    assert "Page 1 of 2" in everything and OFFICE in everything and "Call li.wei back" in everything
    total = len(session.scalars(select(AuditLog.id)).all())
    assert 60 < total <= 100 and len(actions(admin.get("/admin/audit?page=2").get_data(as_text=True))) == total - 50
    by_order = admin.get("/admin/audit?order_number=so-1001").get_data(as_text=True)
    assert actions(by_order) == ["reveal_contact"]
    by_kind = admin.get("/admin/audit?kind=export").get_data(as_text=True)
    assert actions(by_kind) == ["export"]
    agent_id = session.scalars(select(StaffUser.id).where(StaffUser.email == "agent@example.com")).one()
    assert actions(admin.get(f"/admin/audit?who={agent_id}").get_data(as_text=True)) == ["reveal_contact"]
    january = admin.get("/admin/audit?since=2026-01-01&until=2026-01-15&order=oldest").get_data(as_text=True)
    assert "60 entries" in january and set(actions(january)) == {"update_team"}
    assert "0 entries" in admin.get("/admin/audit?since=2026-01-16&until=2026-01-31").get_data(as_text=True)
    for bad in ("since=yesterday", "since=2026-02-01&until=2026-01-01", "until=2026-02-30"):
        answer = admin.get(f"/admin/audit?{bad}")
        assert answer.status_code == 400 and 'role="alert"' in answer.get_data(as_text=True)
    assert admin.get("/admin/audit.csv?since=2026-13-01").status_code == 400

    exported = admin.get("/admin/audit.csv?kind=reveal_contact")
    assert exported.status_code == 200 and exported.headers["Content-Type"].startswith("text/csv")
    body = exported.get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [r["action"] for r in rows] == ["reveal_contact"]
    assert rows[0]["order_number"] == "SO-1001" and rows[0]["network"] == "203.0.113.0/24"
    assert rows[0]["actor_role"] == "agent" and rows[0]["has_reason"] == "yes"
    for personal in ("li.wei", "Li Wei", "agent@example.com", "Al Agent", OFFICE, "Call"):
        assert personal not in body
    whole = admin.get("/admin/audit.csv").get_data(as_text=True)
    assert "198.51.100.0/24" in whole and "198.51.100.9" not in whole and "@" not in whole
    recorded = [e for e in _rows(session, "export") if e.target == "export:audit_log"]
    assert len(recorded) == 2 and recorded[0].address == OFFICE and "kind=reveal_contact" in recorded[0].detail
    assert people["lead"].get("/admin/audit.csv").status_code == 403
