"""Attempt limits: a stranger cannot lock an owner out, limits hold under concurrency, staff
accounts are protected per account (and told), and a lookup costs the same for a hit and a miss."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import event, select

from portal.db import get_engine
from portal.db.models import AuditLog, Order, OutboxMessage
from portal.services.staff import create_staff
from tests.helpers import PASSWORD, get_csrf, soup


def lookup(client, token, number="SO-1001", contact="bad@example.com", addr="10.0.0.1"):
    return client.post(
        "/lookup",
        data={"csrf_token": token, "order_number": number, "contact": contact},
        environ_base={"REMOTE_ADDR": addr},
    )


def test_a_stranger_cannot_lock_the_owner_out(client, order):
    token = get_csrf(client)
    for i in range(20):
        assert lookup(client, token, addr=f"10.9.0.{i}").status_code == 422
    # The order's allowance is spent: a wrong email and even the right postcode wait...
    wrong = lookup(client, token, addr="10.9.1.1")
    assert wrong.status_code == 429
    assert "enter the email address you ordered with" in wrong.get_data(as_text=True)
    assert lookup(client, token, contact="200001", addr="10.9.1.2").status_code == 429
    # ...but the owner, with the email address they ordered with, gets straight in.
    owner = lookup(client, token, contact="Li.Wei@example.com", addr="10.9.1.3")
    assert owner.status_code == 303


def _together(n: int, call) -> Counter:
    start = threading.Barrier(n)

    def one(i: int) -> int:
        start.wait()
        return call(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return Counter(pool.map(one, range(n)))


def test_concurrent_lookups_cannot_slip_past_the_limit(app, order):
    token_client = app.test_client()
    token = get_csrf(token_client)

    def wrong(i: int) -> int:
        client = app.test_client()
        client.set_cookie("session", token_client.get_cookie("session").value)
        return lookup(client, token, number=f"NOPE-{i}", addr="10.8.0.1").status_code

    statuses = _together(40, wrong)
    assert statuses == Counter({422: 20, 429: 20})


@pytest.fixture
def account(session):
    create_staff(session, "ann@example.com", "Ann Agent", "agent", PASSWORD)
    session.commit()


def sign_in_from(client, token, password, addr, email="ann@example.com"):
    return client.post(
        "/staff/login",
        data={"csrf_token": token, "email": email, "password": password},
        environ_base={"REMOTE_ADDR": addr},
    )


def test_one_account_tried_from_many_addresses_is_paused_and_its_owner_told(client, session, account):
    token = get_csrf(client, "/staff/login")
    for i in range(10):
        assert sign_in_from(client, token, "guess-{i}", f"10.7.0.{i}").status_code == 422
    for i in range(5):
        assert sign_in_from(client, token, "guess", f"10.7.1.{i}").status_code == 429
    assert sign_in_from(client, token, PASSWORD, "10.7.2.1").status_code == 429  # paused for everyone
    mails = session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "staff_login_throttled")).all()
    assert [m.payload["to"] for m in mails] == ["ann@example.com"]  # told once, not once per try
    assert session.scalars(select(AuditLog).where(AuditLog.action == "login_throttled")).one()
    # Another account is not affected, and an unknown address gets no email.
    for i in range(11):
        sign_in_from(client, token, "guess", f"10.6.0.{i}", email="nobody@example.com")
    assert len(session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "staff_login_throttled")).all()) == 1


def test_concurrent_wrong_passwords_cannot_slip_past_the_limit(app, account):
    token_client = app.test_client()
    token = get_csrf(token_client, "/staff/login")

    def wrong(i: int) -> int:
        client = app.test_client()
        client.set_cookie("session", token_client.get_cookie("session").value)
        return sign_in_from(client, token, f"guess-{i}", "10.5.0.1", email=f"user{i}@example.com").status_code

    assert _together(30, wrong) == Counter({422: 10, 429: 20})


def test_a_known_order_with_the_wrong_contact_costs_what_an_unknown_order_costs(app, client, order):
    """The same statements run and no order row is turned into an object, hit or miss."""
    token = get_csrf(client)
    engine = get_engine(app)
    statements: list[str] = []

    def record(_conn, _cursor, statement, _params, _context, _many):
        statements.append(statement)

    loaded: list[object] = []

    def on_load(target, _context):
        loaded.append(target)

    event.listen(engine, "before_cursor_execute", record)
    event.listen(Order, "load", on_load)
    try:
        assert lookup(client, token, number="SO-1001").status_code == 422
        hit = list(statements)
        statements.clear()
        assert lookup(client, token, number="NOPE-1").status_code == 422
        miss = list(statements)
    finally:
        event.remove(engine, "before_cursor_execute", record)
        event.remove(Order, "load", on_load)
    assert hit == miss
    assert any("shop_order" in s for s in hit)
    assert loaded == []


def test_the_pause_page_says_what_happened_and_offers_a_way_on(client, order):
    token = get_csrf(client)
    for _ in range(40):
        response = lookup(client, token, contact="wrong@example.com", addr="10.9.9.9")
        if response.status_code == 429:
            break
    assert response.status_code == 429
    page = soup(response)
    text = page.get_text(" ")
    assert "Nothing has happened to your order" in text and "account" not in text.lower()
    assert page.select_one('a[href="/"]') is not None  # back to the lookup
