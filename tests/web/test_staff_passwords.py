"""Staff passwords: an admin's one-time link, changing your own with the current password, and
"forgot password" that never says whether an address has an account. Setting a password ends
every session of the account."""

from __future__ import annotations

import re
import time

import pytest
from itsdangerous import TimestampSigner
from sqlalchemy import select

from portal.db.models import AuditLog, OutboxMessage, StaffUser
from portal.jobs import build_email
from portal.services.staff import create_staff
from tests.helpers import PASSWORD, csrf_token, email_text, get_csrf, sign_in

NEW = "a brand new passphrase"


@pytest.fixture
def people(session):
    admin = create_staff(session, "admin@example.com", "Ada Admin", "admin", PASSWORD)
    agent = create_staff(session, "agent@example.com", "Al Agent", "agent", PASSWORD)
    return {"admin": admin.id, "agent": agent.id}


@pytest.fixture
def admin(app, people):
    client = app.test_client()
    sign_in(client, "admin@example.com")
    return client


def _user(session, user_id) -> StaffUser:
    session.expire_all()
    return session.get(StaffUser, user_id)


def _admin_link(admin, user_id, email=False) -> str:
    token = csrf_token(admin.get("/admin/staff").get_data(as_text=True))
    data = {"csrf_token": token, **({f"r{user_id}-email": "y"} if email else {})}
    response = admin.post(f"/admin/staff/{user_id}/reset", data=data)
    assert response.status_code == 200
    return re.search(r'id="reset-link"[^>]*value="([^"]+)"', response.get_data(as_text=True)).group(1)


def _set_password(client, link, password=NEW, confirm=None):
    path = link.replace("http://localhost", "")
    opened = client.get(path)
    if opened.status_code != 303:
        return opened
    assert opened.headers["Location"] == "/staff/password/reset"  # the token leaves the address bar
    page = client.get("/staff/password/reset")
    assert page.status_code == 200
    return client.post(
        "/staff/password/reset",
        data={
            "csrf_token": csrf_token(page.get_data(as_text=True)),
            "password": password,
            "confirm": confirm or password,
        },
    )


# --- an admin's link -----------------------------------------------------------------------


def test_admin_reset_link_works_once_and_ends_old_sessions(app, admin, session, people):
    agent_client = app.test_client()
    sign_in(agent_client, "agent@example.com")
    assert agent_client.get("/staff/queue").status_code == 200
    link = _admin_link(admin, people["agent"])
    assert link.startswith("http://localhost/staff/password/reset/")
    # Making the link changes nothing yet.
    assert agent_client.get("/staff/queue").status_code == 200
    version = _user(session, people["agent"]).session_version

    stranger = app.test_client()
    done = _set_password(stranger, link)
    assert done.status_code == 303 and done.headers["Location"] == "/staff/login"
    assert _user(session, people["agent"]).session_version == version + 1
    assert agent_client.get("/staff/queue").status_code == 303  # the old session has ended
    assert sign_in(app.test_client(), "agent@example.com").status_code == 422  # old password gone
    assert sign_in(app.test_client(), "agent@example.com", NEW).status_code == 303

    # The same link again: it says it was used, with a 4xx page.
    again = app.test_client().get(link.replace("http://localhost", ""))
    assert again.status_code == 410
    assert "already been used" in again.get_data(as_text=True)

    actions = [a.action for a in session.scalars(select(AuditLog).order_by(AuditLog.id))]
    assert actions == ["password_reset_link", "password_reset"]
    entry = session.scalars(select(AuditLog).where(AuditLog.action == "password_reset_link")).one()
    assert entry.actor_id == people["admin"] and entry.target == f"staff:{people['agent']}"
    assert link.rsplit("/", 1)[1] not in (entry.detail or "")  # the link itself is not written down


def test_admin_reset_link_expires(app, admin, people, monkeypatch):
    link = _admin_link(admin, people["agent"])
    later = int(time.time()) + 61 * 60
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: later)
    response = app.test_client().get(link.replace("http://localhost", ""))
    assert response.status_code == 410 and "has expired" in response.get_data(as_text=True)


def test_link_kept_in_the_session_expires_too(app, admin, people, monkeypatch):
    """Opened in time but submitted too late: refused, nothing changed."""
    link = _admin_link(admin, people["agent"])
    client = app.test_client()
    assert client.get(link.replace("http://localhost", "")).status_code == 303
    page = client.get("/staff/password/reset").get_data(as_text=True)
    later = int(time.time()) + 61 * 60
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: later)
    late = client.post("/staff/password/reset", data={"csrf_token": csrf_token(page), "password": NEW, "confirm": NEW})
    assert late.status_code == 410
    monkeypatch.undo()
    assert sign_in(app.test_client(), "agent@example.com").status_code == 303


def test_tampered_or_missing_link_is_a_clear_4xx(app, admin, people):
    link = _admin_link(admin, people["agent"])
    tampered = app.test_client().get(link.replace("http://localhost", "")[:-3] + "xyz")
    assert tampered.status_code == 400 and "not valid" in tampered.get_data(as_text=True)
    assert app.test_client().get("/staff/password/reset").status_code == 400


def test_admin_can_email_the_link_through_the_outbox(app, admin, session, people):
    link = _admin_link(admin, people["agent"], email=True)
    mail = session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "staff_password_reset")).one()
    assert mail.payload["to"] == "agent@example.com" and mail.payload["context"]["link"] == link
    email = build_email(app, mail)
    text = email_text(email)
    assert email["Subject"] == "Set a new password for the returns portal"
    assert link in text and "Your administrator has made a link" in text and "within 60 minutes" in text


def test_new_password_must_be_long_and_typed_twice(app, admin, session, people):
    link = _admin_link(admin, people["agent"])
    short = _set_password(app.test_client(), link, password="short")
    body = short.get_data(as_text=True)
    assert short.status_code == 422 and "New password: Field must be between 10 and 1024" in body
    typo = _set_password(app.test_client(), link, password=NEW, confirm=NEW + "!")
    assert typo.status_code == 422 and "New password again: Type the same new password twice." in typo.get_data(
        as_text=True
    )
    assert sign_in(app.test_client(), "agent@example.com").status_code == 303  # unchanged


def test_only_admins_make_links(app, people):
    client = app.test_client()
    sign_in(client, "agent@example.com")
    token = get_csrf(client, "/staff/")
    assert client.post(f"/admin/staff/{people['admin']}/reset", data={"csrf_token": token}).status_code == 403


# --- changing my own password ------------------------------------------------------------------


def _change(client, current, new=NEW, confirm=None):
    page = client.get("/staff/password").get_data(as_text=True)
    return client.post(
        "/staff/password",
        data={"csrf_token": csrf_token(page), "current_password": current, "password": new, "confirm": confirm or new},
    )


def test_change_password_needs_the_current_one(app, session, people):
    me = app.test_client()
    sign_in(me, "agent@example.com")
    elsewhere = app.test_client()
    sign_in(elsewhere, "agent@example.com")
    wrong = _change(me, "not my password")
    assert wrong.status_code == 422
    assert "Current password: The current password is not right." in wrong.get_data(as_text=True)
    assert sign_in(app.test_client(), "agent@example.com").status_code == 303  # unchanged

    done = _change(me, PASSWORD)
    assert done.status_code == 303
    assert me.get("/staff/").status_code == 200  # this session carries on
    assert elsewhere.get("/staff/").status_code == 303  # the others end
    assert sign_in(app.test_client(), "agent@example.com", NEW).status_code == 303
    entry = session.scalars(select(AuditLog).where(AuditLog.action == "change_password")).one()
    assert entry.actor_id == people["agent"]


def test_change_password_is_for_signed_in_staff(app, people):
    assert app.test_client().get("/staff/password").status_code == 303


def test_wrong_current_passwords_use_up_the_sign_in_allowance(app, people):
    me = app.test_client()
    sign_in(me, "agent@example.com")
    statuses = [_change(me, f"wrong {i}").status_code for i in range(11)]
    assert statuses[:10] == [422] * 10 and statuses[10] == 429
    # The account's sign-in allowance is the same one.
    assert sign_in(app.test_client(), "agent@example.com").status_code == 429


# --- forgot password ---------------------------------------------------------------------------


def _forgot(client, email, addr="10.1.0.1"):
    token = get_csrf(client, "/staff/password/forgot")
    return client.post(
        "/staff/password/forgot", data={"csrf_token": token, "email": email}, environ_base={"REMOTE_ADDR": addr}
    )


def _without_token(text: str) -> str:
    """The page with its CSRF tokens (form fields and the hx-headers of <body>) taken out."""
    text = re.sub(r'name="csrf_token" value="[^"]+"', "", text)
    return re.sub(r'"X-CSRFToken": "[^"]+"', "", text)


def test_forgot_password_does_not_reveal_whether_the_address_exists(app, session, people):
    login = app.test_client().get("/staff/login").get_data(as_text=True)
    assert 'href="/staff/password/forgot"' in login
    known = _forgot(app.test_client(), "Agent@Example.com", addr="10.1.0.1")
    unknown = _forgot(app.test_client(), "nobody@example.com", addr="10.1.0.2")
    assert known.status_code == unknown.status_code == 200
    assert _without_token(known.get_data(as_text=True)) == _without_token(unknown.get_data(as_text=True))
    mails = session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "staff_password_reset")).all()
    assert [m.payload["to"] for m in mails] == ["agent@example.com"]
    link = mails[0].payload["context"]["link"]
    assert mails[0].payload["context"]["by_admin"] is False
    assert _set_password(app.test_client(), link).status_code == 303
    assert sign_in(app.test_client(), "agent@example.com", NEW).status_code == 303


def test_forgot_password_is_rate_limited(app, session, people):
    # Per account (whatever address asks): the fourth request within the hour waits.
    statuses = [_forgot(app.test_client(), "agent@example.com", addr=f"10.2.0.{i}").status_code for i in range(4)]
    assert statuses == [200, 200, 200, 429]
    # An unknown address is limited the same way, so the limit says nothing either.
    statuses = [_forgot(app.test_client(), "ghost@example.com", addr=f"10.3.0.{i}").status_code for i in range(4)]
    assert statuses == [200, 200, 200, 429]
    # Per client address: the sixth request from one address waits, whatever it asks for.
    statuses = [_forgot(app.test_client(), f"x{i}@example.com", addr="10.4.0.1").status_code for i in range(6)]
    assert statuses == [200] * 5 + [429]
    assert len(session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "staff_password_reset")).all()) == 3


def test_a_disabled_account_gets_no_link(app, session, admin, people):
    token = csrf_token(admin.get("/admin/staff").get_data(as_text=True))
    admin.post(f"/admin/staff/{people['agent']}/active", data={"csrf_token": token, "active": "0"})
    assert _forgot(app.test_client(), "agent@example.com").status_code == 200
    assert session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "staff_password_reset")).all() == []
