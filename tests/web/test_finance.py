"""Finance pages: preview, approve, second approval, execute, retry, export; and the CLI export."""

from __future__ import annotations

from datetime import UTC

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from portal.db.models import LedgerEntry, Refund, ReturnRequest
from portal.services.staff import create_staff
from tests.helpers import PASSWORD, csrf_token, finance_user, form_values, inspected, login_shopper, sign_in, soup


@pytest.fixture
def clerk(app, session):
    create_staff(session, "fin@example.com", "Fin", "finance", PASSWORD)
    create_staff(session, "fin2@example.com", "Fin Two", "finance", PASSWORD)
    client = app.test_client()
    sign_in(client, "fin@example.com")
    return client


def test_approve_and_execute_from_the_page(app, client, order, session, clerk):
    req = inspected(app, client, session)
    page = clerk.get("/finance/").get_data(as_text=True)
    assert req.rma in page and "188.00" in page
    approve = form_values(page, f'form[action="/finance/requests/{req.rma}/approve"]')
    assert approve["provider"] == "sandbox" and approve["basis"]  # the preview's basis rides in the form
    token = approve["csrf_token"]
    assert clerk.post(f"/finance/requests/{req.rma}/approve", data=approve).status_code == 303
    refund = session.scalars(select(Refund)).one()
    assert refund.status == "approved"
    # A posted amount is not a field the server reads: the approved amount is the preview's.
    clerk.post(f"/finance/refunds/{refund.id}/execute", data={"csrf_token": token, "amount": "0.01"})
    session.expire_all()
    assert session.get(Refund, refund.id).status == "succeeded"
    assert session.scalars(select(LedgerEntry.amount)).one() == refund.amount
    assert session.get(ReturnRequest, req.id).status == "refunded"
    csv_text = clerk.get("/finance/export.csv").get_data(as_text=True)
    assert csv_text.splitlines()[0] == "day,method,currency,kind,count,total"
    assert ",alipay,CNY,refund,1,188.00" in csv_text


def test_stale_basis_is_refused(app, client, order, session, clerk):
    req = inspected(app, client, session)
    page = clerk.get("/finance/").get_data(as_text=True)
    response = clerk.post(
        f"/finance/requests/{req.rma}/approve",
        data={"csrf_token": csrf_token(page), "basis": "x" * 64, "provider": "sandbox"},
        follow_redirects=True,
    )
    assert "changed since you looked at it" in response.get_data(as_text=True)
    assert session.scalars(select(Refund)).all() == []


def test_second_approval_by_another_clerk(app, client, order, session, clerk):
    app.config["SECOND_APPROVAL_ABOVE"] = "100"
    req = inspected(app, client, session)
    page = clerk.get("/finance/").get_data(as_text=True)
    approve = form_values(page, f'form[action="/finance/requests/{req.rma}/approve"]')
    clerk.post(f"/finance/requests/{req.rma}/approve", data=approve)
    refund = session.scalars(select(Refund)).one()
    same = clerk.post(
        f"/finance/refunds/{refund.id}/second", data={"csrf_token": csrf_token(page)}, follow_redirects=True
    )
    assert "must come from another finance user" in same.get_data(as_text=True)
    other = app.test_client()
    sign_in(other, "fin2@example.com")
    confirm = form_values(
        other.get(f"/finance/refunds/{refund.id}/second"), f'form[action="/finance/refunds/{refund.id}/second"]'
    )
    assert confirm["confirm"] == "yes"
    assert other.post(f"/finance/refunds/{refund.id}/second", data=confirm).status_code == 303
    other.post(f"/finance/refunds/{refund.id}/execute", data={"csrf_token": confirm["csrf_token"]})
    session.expire_all()
    assert session.get(Refund, refund.id).status == "succeeded"


def test_failure_is_visible_and_retry_works(app, client, order, session, clerk):
    req = inspected(app, client, session)
    app.config["SANDBOX_MODE"] = "fail"
    page = clerk.get("/finance/").get_data(as_text=True)
    approve = form_values(page, f'form[action="/finance/requests/{req.rma}/approve"]')
    token = approve["csrf_token"]
    clerk.post(f"/finance/requests/{req.rma}/approve", data=approve)
    refund = session.scalars(select(Refund)).one()
    failed = clerk.post(
        f"/finance/refunds/{refund.id}/execute", data={"csrf_token": token}, follow_redirects=True
    ).get_data(as_text=True)
    assert "card declined" in failed and "you can retry" in failed
    app.config["SANDBOX_MODE"] = "ok"
    clerk.post(f"/finance/refunds/{refund.id}/retry", data={"csrf_token": token})
    clerk.post(f"/finance/refunds/{refund.id}/execute", data={"csrf_token": token})
    session.expire_all()
    assert session.get(Refund, refund.id).status == "succeeded" and session.get(Refund, refund.id).attempts == 2


def test_cli_export(app, client, order, session, monkeypatch, tmp_path):
    from datetime import datetime

    from portal.adapters.payments import SandboxGateway
    from portal.cli import main
    from portal.services.refunds import approve_refund, execute_refund, preview_refund

    req = inspected(app, client, session)
    preview = preview_refund(session, req)
    refund = approve_refund(session, req, finance_user(session, "fay"), preview.basis_hash, "sandbox", 10**6)
    execute_refund(
        app.extensions["portal.sessionmaker"], refund.id, SandboxGateway(app.extensions["portal.sessionmaker"])
    )
    for key in ("INSTANCE_PATH", "DATABASE_URL", "SECRET_KEY", "API_SECRET"):
        monkeypatch.setenv(f"PORTAL_{key}", app.config[key])
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    out = tmp_path / "rec.csv"
    result = CliRunner().invoke(
        main, ["finance", "export", "--from", today, "--to", today, "-o", str(out)], catch_exceptions=False
    )
    assert result.exit_code == 0 and ",alipay,CNY,refund,1,188.00" in out.read_text()


def test_customer_return_fee_on_label_and_in_the_refund(app, client, order, session, clerk):
    app.config["CUSTOMER_RETURN_FEE"] = "8.00"
    req = inspected(app, client, session)
    shopper = app.test_client()

    login_shopper(shopper, number="RF-1")
    label = shopper.get(f"/requests/{req.rma}/label").get_data(as_text=True)
    assert "A return shipping fee of CN¥8.00 will be deducted" in label
    page = clerk.get("/finance/").get_data(as_text=True)
    assert "180.00" in page  # 188.00 minus the 8.00 fee for a customer-responsibility return


def test_manual_refund_without_a_reference_is_a_form_error_that_changes_nothing(app, client, order, session, clerk):
    from portal.db.models import OutboxMessage

    req = inspected(app, client, session)
    page = clerk.get("/finance/").get_data(as_text=True)
    approve = form_values(page, f'form[action="/finance/requests/{req.rma}/approve"]')
    assert clerk.post(f"/finance/requests/{req.rma}/approve", data={**approve, "provider": "manual"}).status_code == 303
    refund = session.scalars(select(Refund)).one()
    assert refund.provider == "manual"
    token = approve["csrf_token"]
    missing = clerk.post(f"/finance/refunds/{refund.id}/execute", data={"csrf_token": token, "reference": "  "})
    assert missing.status_code == 422
    box = soup(missing).find(id=f"ref-{refund.id}")
    assert box is not None and box.get("aria-invalid") == "true"
    assert "Enter the reference of the payment you made elsewhere." in missing.get_data(as_text=True)
    session.expire_all()
    assert session.get(Refund, refund.id).status == "approved" and session.get(Refund, refund.id).attempts == 0
    topics = set(session.scalars(select(OutboxMessage.topic)))
    assert "refund.failed" not in topics
    done = clerk.post(f"/finance/refunds/{refund.id}/execute", data={"csrf_token": token, "reference": "BANK-77"})
    assert done.status_code == 303
    session.expire_all()
    assert (session.get(Refund, refund.id).status, session.get(Refund, refund.id).provider_ref) == (
        "succeeded",
        "BANK-77",
    )
