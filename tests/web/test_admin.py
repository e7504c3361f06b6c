"""Admin: create accounts, change roles (sessions end), disable and enable, all audited."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.db.models import AuditLog, StaffUser
from portal.services.staff import create_staff
from tests.helpers import PASSWORD, csrf_token, login_shopper, sign_in, submit_coat


@pytest.fixture
def admin(client, session):
    create_staff(session, "admin@example.com", "Ada Admin", "admin", PASSWORD)
    create_staff(session, "agent@example.com", "Al Agent", "agent", PASSWORD)
    sign_in(client, "admin@example.com")
    return client


def test_create_account(admin, session):
    page = admin.get("/admin/staff").get_data(as_text=True)
    response = admin.post("/admin/staff", data={"csrf_token": csrf_token(page), "email": "New@Example.com", "name": "Nu", "role": "finance", "password": PASSWORD})
    assert response.status_code == 303
    user = session.scalars(select(StaffUser).where(StaffUser.email == "new@example.com")).one()
    assert user.role == "finance"
    dup = admin.post("/admin/staff", data={"csrf_token": csrf_token(page), "email": "new@example.com", "name": "Nu", "role": "finance", "password": PASSWORD})
    assert dup.status_code == 422 and "already has an account" in dup.get_data(as_text=True)
    bad = admin.post("/admin/staff", data={"csrf_token": csrf_token(page), "email": "nope", "name": "X", "role": "root", "password": "short"})
    assert bad.status_code == 422


def test_role_change_ends_sessions_and_is_audited(admin, app, session):
    agent_client = app.test_client()
    sign_in(agent_client, "agent@example.com")
    assert agent_client.get("/staff/queue").status_code == 200
    agent = session.scalars(select(StaffUser).where(StaffUser.email == "agent@example.com")).one()
    page = admin.get("/admin/staff").get_data(as_text=True)
    assert admin.post(f"/admin/staff/{agent.id}/role", data={"csrf_token": csrf_token(page), "role": "warehouse"}).status_code == 303
    assert agent_client.get("/staff/queue").status_code == 303  # signed out
    sign_in(agent_client, "agent@example.com")
    assert agent_client.get("/staff/queue").status_code == 403  # warehouse now
    entry = session.scalars(select(AuditLog).where(AuditLog.action == "change_role")).one()
    assert entry.detail == "agent -> warehouse"


def test_disable_and_enable(admin, app, session):
    agent = session.scalars(select(StaffUser).where(StaffUser.email == "agent@example.com")).one()
    page = admin.get("/admin/staff").get_data(as_text=True)
    admin.post(f"/admin/staff/{agent.id}/active", data={"csrf_token": csrf_token(page), "active": "0"})
    session.expire_all()
    assert session.get(StaffUser, agent.id).active is False
    assert sign_in(app.test_client(), "agent@example.com").status_code == 422
    admin.post(f"/admin/staff/{agent.id}/active", data={"csrf_token": csrf_token(page), "active": "1"})
    assert sign_in(app.test_client(), "agent@example.com").status_code == 303
    assert [a.action for a in session.scalars(select(AuditLog).order_by(AuditLog.id))] == ["disable", "enable"]


def test_admin_cannot_lock_themselves_out(admin, session):
    me = session.scalars(select(StaffUser).where(StaffUser.email == "admin@example.com")).one()
    page = admin.get("/admin/staff").get_data(as_text=True)
    response = admin.post(f"/admin/staff/{me.id}/active", data={"csrf_token": csrf_token(page), "active": "0"}, follow_redirects=True)
    assert "cannot disable your own account" in response.get_data(as_text=True)
    response = admin.post(f"/admin/staff/{me.id}/role", data={"csrf_token": csrf_token(page), "role": "agent"}, follow_redirects=True)
    assert "cannot change your own role" in response.get_data(as_text=True)


def test_admin_rule_messages_follow_the_chosen_language(admin, session):
    me = session.scalars(select(StaffUser).where(StaffUser.email == "admin@example.com")).one()
    page = admin.get("/admin/staff").get_data(as_text=True)
    chinese = {"Accept-Language": "zh-CN,zh;q=0.9"}
    response = admin.post(f"/admin/staff/{me.id}/role", data={"csrf_token": csrf_token(page), "role": "agent"}, headers=chinese,
                          follow_redirects=True)
    assert "您不能更改自己的角色。" in response.get_data(as_text=True)


@pytest.mark.parametrize("role", ["agent", "lead", "manager", "warehouse", "finance"])
def test_only_admins(client, session, role):
    create_staff(session, f"{role}@example.com", role, role, PASSWORD)
    sign_in(client, f"{role}@example.com")
    assert client.get("/admin/staff").status_code == 403


def test_anonymous_and_shopper_are_sent_to_sign_in(client, order):
    assert client.get("/admin/staff").status_code == 303
    login_shopper(client)
    assert client.get("/admin/staff").status_code == 303


def test_routing_rules_are_editable_and_route_new_requests(admin, app, session):
    from portal.db.models import RoutingRuleRow, Ticket
    from portal.services.tickets import ensure_team

    shoes = ensure_team(session, "shoes", "Shoe desk")
    session.commit()
    page = admin.get("/admin/routing").get_data(as_text=True)
    token = csrf_token(page)
    form = {"csrf_token": token, "name": "Expensive coats", "position": "5", "active": "y", "team": str(shoes.id), "priority": "urgent",
            "ticket_class": "A", "categories": "Outerwear, bags", "min_value": "1000", "needs_review": "yes", "frequent_returner": ""}
    assert admin.post("/admin/routing", data=form).status_code == 303
    rule = session.scalars(select(RoutingRuleRow)).one()
    assert rule.conditions == {"categories": ["bags", "outerwear"], "min_value": "1000", "needs_review": True}
    submit_coat(app)
    ticket = session.scalars(select(Ticket)).one()
    assert (ticket.team_id, ticket.priority, ticket.rule["name"]) == (shoes.id, "urgent", "Expensive coats")
    # Edit: bad bounds are refused with a message, nothing saved.
    edit = admin.get(f"/admin/routing/{rule.id}").get_data(as_text=True)
    assert 'value="Outerwear' not in edit and 'value="bags, outerwear"' in edit
    bad = admin.post(f"/admin/routing/{rule.id}", data={**form, "min_value": "50", "max_value": "10"})
    assert bad.status_code == 422 and "min_value is above max_value" in bad.get_data(as_text=True)
    assert admin.post(f"/admin/routing/{rule.id}", data={**form, "priority": "low"}).status_code == 303
    session.expire_all()
    assert session.get(RoutingRuleRow, rule.id).priority == "low"


def test_teams_lead_members_caps_and_availability(admin, session):
    from portal.db.models import Team, TeamMember
    from portal.services.tickets import ensure_team

    team = ensure_team(session, "service", "Customer service")
    lead = create_staff(session, "lead@example.com", "Lee", "lead", PASSWORD)
    agent = session.scalars(select(StaffUser).where(StaffUser.email == "agent@example.com")).one()
    session.commit()
    page = admin.get("/admin/teams").get_data(as_text=True)
    token = csrf_token(page)
    assert admin.post(f"/admin/teams/{team.id}", data={"csrf_token": token, f"t{team.id}-lead": str(lead.id), f"t{team.id}-manager": ""}).status_code == 303
    assert admin.post(f"/admin/teams/{team.id}/members", data={"csrf_token": token, f"m{team.id}-staff": str(agent.id), f"m{team.id}-cap": "3"}).status_code == 303
    member = session.scalars(select(TeamMember)).one()
    assert (member.staff_id, member.cap, member.available) == (agent.id, 3, True)
    assert admin.post(f"/admin/members/{member.id}", data={"csrf_token": token, "cap": "7"}).status_code == 303
    assert admin.post(f"/admin/members/{member.id}", data={"csrf_token": token, "cap": "0"}).status_code == 400
    session.expire_all()
    member = session.get(TeamMember, member.id)
    assert (member.cap, member.available) == (7, False)
    assert session.get(Team, team.id).lead_id == lead.id
