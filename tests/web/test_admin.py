"""Admin: create accounts, change roles (sessions end), disable and enable, all audited."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.db.models import AuditLog, StaffUser
from portal.services.staff import create_staff
from tests.conftest import csrf_from, login_shopper
from tests.web.test_staff import PASSWORD, sign_in


@pytest.fixture
def admin(client, session):
    create_staff(session, "admin@example.com", "Ada Admin", "admin", PASSWORD)
    create_staff(session, "agent@example.com", "Al Agent", "agent", PASSWORD)
    sign_in(client, "admin@example.com")
    return client


def test_create_account(admin, session):
    page = admin.get("/admin/staff").get_data(as_text=True)
    response = admin.post("/admin/staff", data={"csrf_token": csrf_from(page), "email": "New@Example.com", "name": "Nu", "role": "finance", "password": PASSWORD})
    assert response.status_code == 303
    user = session.scalars(select(StaffUser).where(StaffUser.email == "new@example.com")).one()
    assert user.role == "finance"
    dup = admin.post("/admin/staff", data={"csrf_token": csrf_from(page), "email": "new@example.com", "name": "Nu", "role": "finance", "password": PASSWORD})
    assert dup.status_code == 422 and "already has an account" in dup.get_data(as_text=True)
    bad = admin.post("/admin/staff", data={"csrf_token": csrf_from(page), "email": "nope", "name": "X", "role": "root", "password": "short"})
    assert bad.status_code == 422


def test_role_change_ends_sessions_and_is_audited(admin, app, session):
    agent_client = app.test_client()
    sign_in(agent_client, "agent@example.com")
    assert agent_client.get("/staff/queue").status_code == 200
    agent = session.scalars(select(StaffUser).where(StaffUser.email == "agent@example.com")).one()
    page = admin.get("/admin/staff").get_data(as_text=True)
    assert admin.post(f"/admin/staff/{agent.id}/role", data={"csrf_token": csrf_from(page), "role": "warehouse"}).status_code == 303
    assert agent_client.get("/staff/queue").status_code == 303  # signed out
    sign_in(agent_client, "agent@example.com")
    assert agent_client.get("/staff/queue").status_code == 403  # warehouse now
    entry = session.scalars(select(AuditLog).where(AuditLog.action == "change_role")).one()
    assert entry.detail == "agent -> warehouse"


def test_disable_and_enable(admin, app, session):
    agent = session.scalars(select(StaffUser).where(StaffUser.email == "agent@example.com")).one()
    page = admin.get("/admin/staff").get_data(as_text=True)
    admin.post(f"/admin/staff/{agent.id}/active", data={"csrf_token": csrf_from(page), "active": "0"})
    session.expire_all()
    assert session.get(StaffUser, agent.id).active is False
    assert sign_in(app.test_client(), "agent@example.com").status_code == 422
    admin.post(f"/admin/staff/{agent.id}/active", data={"csrf_token": csrf_from(page), "active": "1"})
    assert sign_in(app.test_client(), "agent@example.com").status_code == 303
    assert [a.action for a in session.scalars(select(AuditLog).order_by(AuditLog.id))] == ["disable", "enable"]


def test_admin_cannot_lock_themselves_out(admin, session):
    me = session.scalars(select(StaffUser).where(StaffUser.email == "admin@example.com")).one()
    page = admin.get("/admin/staff").get_data(as_text=True)
    response = admin.post(f"/admin/staff/{me.id}/active", data={"csrf_token": csrf_from(page), "active": "0"}, follow_redirects=True)
    assert "cannot disable your own account" in response.get_data(as_text=True)
    response = admin.post(f"/admin/staff/{me.id}/role", data={"csrf_token": csrf_from(page), "role": "agent"}, follow_redirects=True)
    assert "cannot change your own role" in response.get_data(as_text=True)


@pytest.mark.parametrize("role", ["agent", "lead", "manager", "warehouse", "finance"])
def test_only_admins(client, session, role):
    create_staff(session, f"{role}@example.com", role, role, PASSWORD)
    sign_in(client, f"{role}@example.com")
    assert client.get("/admin/staff").status_code == 403


def test_anonymous_and_shopper_are_sent_to_sign_in(client, order):
    assert client.get("/admin/staff").status_code == 303
    login_shopper(client)
    assert client.get("/admin/staff").status_code == 303
