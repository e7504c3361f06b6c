"""Retention: finished requests older than the setting lose their personal data and photos, the
dashboard and finance rows stay as they were, a dry run changes nothing, and running again is a no-op."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from portal.adapters.payments import SandboxGateway
from portal.cli import main
from portal.db.models import (
    AuditLog,
    LedgerEntry,
    Order,
    OutboxMessage,
    Photo,
    Refund,
    RequestEvent,
    ReturnLine,
    ReturnRequest,
)
from portal.domain import insights as calc
from portal.domain.privacy import parse_retention_days, retention_cutoff
from portal.services.insights import Filters, Settings, dashboard
from portal.services.privacy import ERASED_PREFIX, purge
from portal.services.refunds import approve_refund, execute_refund, preview_refund
from portal.storage import StorageError, store_from_config
from tests.helpers import finance_user, form_for, inspected, jpeg, login_shopper

NOW = datetime.now(UTC)
LATER = NOW + timedelta(days=400)  # the day the retention job runs, long after the requests finished


def _refund(app, session, req) -> Refund:
    factory = app.extensions["portal.sessionmaker"]
    preview = preview_refund(session, req)
    refund = approve_refund(
        session, req, finance_user(session, f"fay{req.id}"), preview.basis_hash, "sandbox", Decimal(10000)
    )
    return execute_refund(factory, refund.id, SandboxGateway(factory))


def _photo(app, session, req, n: int) -> Photo:
    store = store_from_config(app.config)
    key, thumb = f"photos/test/{req.id}-{n}.jpg", f"photos/test/{req.id}-{n}-t.jpg"
    store.put(key, jpeg(), "image/jpeg")
    store.put(thumb, jpeg(size=(64, 48)), "image/jpeg")
    photo = Photo(
        request_id=req.id,
        line_id=req.lines[0].id,
        storage_key=key,
        thumb_key=thumb,
        content_type="image/jpeg",
        width=640,
        height=480,
        size=1000,
        sha256=f"{req.id:032d}{n:032d}",
        score_state="scored",
        wear_probability=0.8,
        wear_label="wear",
        model_version="wear-v1",
    )
    session.add(photo)
    session.commit()
    return photo


@pytest.fixture
def finished(app, client, order, session):
    """RF-1 refunded (with a comment, a photo and ledger rows); SO-1001 has a request still open."""
    req = inspected(app, client, session)
    req.lines[0].comment = "Call me on +86 138 0000 0000, Li Wei"
    session.commit()
    _photo(app, session, req, 1)
    _refund(app, session, req)
    session.expire_all()
    shopper = app.test_client()
    login_shopper(shopper)
    shopper.post(
        "/order/request", data=form_for(shopper, **{"0": {"quantity": "1", "reason": "size_fit", "outcome": "refund"}})
    )
    session.expire_all()
    rf1 = session.scalars(select(ReturnRequest).where(ReturnRequest.order.has(order_number="RF-1"))).one()
    assert rf1.status == "refunded"
    return rf1


def _board(session):
    period = calc.period_for("90", calc.local_day(NOW, "Asia/Shanghai"), "Asia/Shanghai")
    return dataclasses.asdict(dashboard(session, period, Filters(), Settings(), NOW, source="raw"))


def _money(session):
    refunds = [(r.id, r.amount, r.store_credit, r.status, r.provider_ref) for r in session.scalars(select(Refund))]
    ledger = [(e.id, e.kind, e.amount, e.reference, e.at) for e in session.scalars(select(LedgerEntry))]
    return refunds, ledger


def test_settings_and_cutoff():
    assert parse_retention_days(None) == 0 and parse_retention_days("off") == 0 and parse_retention_days("365") == 365
    with pytest.raises(ValueError):
        parse_retention_days("-3")
    with pytest.raises(ValueError):
        parse_retention_days("a year")
    assert retention_cutoff(NOW, 0) is None
    assert retention_cutoff(NOW, 30) == NOW - timedelta(days=30)


def test_dry_run_then_purge_keeps_figures_and_money_and_removes_photos(app, session, finished):
    store = store_from_config(app.config)
    photo = session.scalars(select(Photo).where(Photo.request_id == finished.id)).one()
    key, thumb = photo.storage_key, photo.thumb_key
    board, money = _board(session), _money(session)

    # Not old enough yet: nothing is due.
    assert purge(session, store, 365, NOW, dry_run=True).erased.orders == 0

    dry = purge(session, store, 365, LATER, dry_run=True)
    assert dry.order_numbers == ["RF-1"] and (dry.erased.orders, dry.erased.requests, dry.erased.photos) == (1, 1, 1)
    session.expire_all()
    rf1 = session.scalars(select(Order).where(Order.order_number == "RF-1")).one()
    assert rf1.customer_email == "li.wei@example.com" and rf1.anonymised_at is None
    assert store.get(key) and not session.scalars(select(AuditLog).where(AuditLog.action == "retention_purge")).all()

    def about_rf1():
        session.expire_all()
        return [
            m.payload
            for m in session.scalars(select(OutboxMessage).where(OutboxMessage.sent_at.is_not(None)))
            if (m.payload.get("context") or {}).get("rma") == finished.rma or m.payload.get("erased")
        ]

    sent = about_rf1()
    assert sent and all(p["to"] == "li.wei@example.com" for p in sent)
    done = purge(session, store, 365, LATER, batch=1)
    assert done.order_numbers == ["RF-1"] and done.erased.orders == 1 and done.erased.photos == 1
    assert done.erased.messages == len(sent) and all(p["to"] == "" and p["erased"] for p in about_rf1())
    session.expire_all()
    rf1 = session.scalars(select(Order).where(Order.order_number == "RF-1")).one()
    assert (rf1.customer_name, rf1.customer_email, rf1.customer_phone, rf1.customer_postcode) == ("", None, None, None)
    assert rf1.anonymised_at is not None
    req = session.get(ReturnRequest, finished.id)
    assert req.customer_email is None and req.status == "refunded"
    assert all(
        line.comment == "" for line in session.scalars(select(ReturnLine).where(ReturnLine.request_id == req.id))
    )
    for gone in (key, thumb):
        with pytest.raises(StorageError):
            store.get(gone)
    kept = session.scalars(select(Photo).where(Photo.request_id == req.id)).one()
    assert kept.storage_key.startswith(ERASED_PREFIX) and kept.wear_probability == 0.8  # the model report keeps it
    # The open request's order is untouched.
    open_order = session.scalars(select(Order).where(Order.order_number == "SO-1001")).one()
    assert open_order.customer_email == "li.wei@example.com" and open_order.anonymised_at is None
    # Figures and money are the same; what was done is recorded (counts only).
    assert _board(session) == board
    assert _money(session) == money
    entry = session.scalars(select(AuditLog).where(AuditLog.action == "retention_purge")).one()
    assert entry.after["orders"] == 1 and entry.after["photos"] == 1 and "li.wei" not in str(entry.after)

    # Again: nothing left to do, nothing recorded twice.
    again = purge(session, store, 365, LATER)
    assert again.erased.orders == 0
    assert len(session.scalars(select(AuditLog).where(AuditLog.action == "retention_purge")).all()) == 1
    # Off means off.
    assert purge(session, store, 0, LATER).cutoff is None


def test_command_line_dry_run_and_purge(app, session, finished, monkeypatch, database_url):
    for name, value in (
        ("INSTANCE_PATH", app.config["INSTANCE_PATH"]),
        ("DATABASE_URL", database_url),
        ("SECRET_KEY", app.config["SECRET_KEY"]),
        ("API_SECRET", app.config["API_SECRET"]),
        ("RETENTION_DAYS", "0"),
    ):
        monkeypatch.setenv(f"PORTAL_{name}", value)
    run = CliRunner()

    def cli(*args):
        return run.invoke(main, list(args), catch_exceptions=False)

    off = cli("privacy", "purge", "--dry-run")
    assert off.exit_code == 1 and "Retention is off" in off.output
    assert cli("privacy", "purge", "--days", "0").exit_code == 2  # not a number of days
    # The refunded request finished 400 days ago.
    long_ago = NOW - timedelta(days=400)
    session.execute(update(RequestEvent).where(RequestEvent.request_id == finished.id).values(at=long_ago))
    session.execute(update(ReturnRequest).where(ReturnRequest.id == finished.id).values(created_at=long_ago))
    session.commit()
    monkeypatch.setenv("PORTAL_RETENTION_DAYS", "365")
    dry = cli("privacy", "purge", "--dry-run")
    assert (
        dry.exit_code == 0 and "Would anonymise 1 orders (1 requests, 1 photos)" in dry.output and "RF-1" in dry.output
    )
    session.expire_all()
    assert session.scalars(select(Order).where(Order.order_number == "RF-1")).one().anonymised_at is None
    real = cli("privacy", "purge")
    assert real.exit_code == 0 and "Anonymised 1 orders (1 requests, 1 photos" in real.output, real.output
    assert "RF-1" not in real.output
    session.expire_all()
    assert session.scalars(select(Order).where(Order.order_number == "RF-1")).one().customer_email is None
    entry = session.scalars(select(AuditLog).where(AuditLog.action == "retention_purge")).one()
    assert entry.address == "cli" and entry.actor_id is None
    assert "Anonymised 0 orders" in cli("privacy", "purge").output


def test_the_retention_job_is_registered_and_runs(app, session, finished):
    from portal.jobs import registry
    from portal.jobs.retention import retention_purge

    job = registry.get("retention_purge")
    assert job is not None and job.periodic and job.func is retention_purge
    assert retention_purge(app)["off"] is True  # the default: retention off
    long_ago = NOW - timedelta(days=400)
    session.execute(update(RequestEvent).where(RequestEvent.request_id == finished.id).values(at=long_ago))
    session.execute(update(ReturnRequest).where(ReturnRequest.id == finished.id).values(created_at=long_ago))
    session.commit()
    app.config["RETENTION_DAYS"] = "365"
    assert retention_purge(app)["orders"] == 1
    assert retention_purge(app)["orders"] == 0
    entry = session.scalars(select(AuditLog).where(AuditLog.action == "retention_purge")).one()
    assert entry.address == "scheduler"
