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
    response = admin.post(
        "/admin/staff",
        data={
            "csrf_token": csrf_token(page),
            "email": "New@Example.com",
            "name": "Nu",
            "role": "finance",
            "password": PASSWORD,
        },
    )
    assert response.status_code == 303
    user = session.scalars(select(StaffUser).where(StaffUser.email == "new@example.com")).one()
    assert user.role == "finance"
    dup = admin.post(
        "/admin/staff",
        data={
            "csrf_token": csrf_token(page),
            "email": "new@example.com",
            "name": "Nu",
            "role": "finance",
            "password": PASSWORD,
        },
    )
    assert dup.status_code == 422 and "already has an account" in dup.get_data(as_text=True)
    bad = admin.post(
        "/admin/staff",
        data={"csrf_token": csrf_token(page), "email": "nope", "name": "X", "role": "root", "password": "short"},
    )
    assert bad.status_code == 422


def test_role_change_ends_sessions_and_is_audited(admin, app, session):
    agent_client = app.test_client()
    sign_in(agent_client, "agent@example.com")
    assert agent_client.get("/staff/queue").status_code == 200
    agent = session.scalars(select(StaffUser).where(StaffUser.email == "agent@example.com")).one()
    page = admin.get("/admin/staff").get_data(as_text=True)
    assert (
        admin.post(
            f"/admin/staff/{agent.id}/role", data={"csrf_token": csrf_token(page), "role": "warehouse"}
        ).status_code
        == 303
    )
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
    response = admin.post(
        f"/admin/staff/{me.id}/active", data={"csrf_token": csrf_token(page), "active": "0"}, follow_redirects=True
    )
    assert "cannot disable your own account" in response.get_data(as_text=True)
    response = admin.post(
        f"/admin/staff/{me.id}/role", data={"csrf_token": csrf_token(page), "role": "agent"}, follow_redirects=True
    )
    assert "cannot change your own role" in response.get_data(as_text=True)


def test_admin_rule_messages_follow_the_chosen_language(admin, session):
    me = session.scalars(select(StaffUser).where(StaffUser.email == "admin@example.com")).one()
    page = admin.get("/admin/staff").get_data(as_text=True)
    chinese = {"Accept-Language": "zh-CN,zh;q=0.9"}
    response = admin.post(
        f"/admin/staff/{me.id}/role",
        data={"csrf_token": csrf_token(page), "role": "agent"},
        headers=chinese,
        follow_redirects=True,
    )
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
    form = {
        "csrf_token": token,
        "name": "Expensive coats",
        "position": "5",
        "active": "y",
        "team": str(shoes.id),
        "priority": "urgent",
        "ticket_class": "A",
        "categories": "Outerwear, bags",
        "min_value": "1000",
        "needs_review": "yes",
        "frequent_returner": "",
    }
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
    assert bad.status_code == 422 and "Value at most: must not be below “Value at least”." in bad.get_data(as_text=True)
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
    assert (
        admin.post(
            f"/admin/teams/{team.id}",
            data={"csrf_token": token, f"t{team.id}-lead": str(lead.id), f"t{team.id}-manager": ""},
        ).status_code
        == 303
    )
    assert (
        admin.post(
            f"/admin/teams/{team.id}/members",
            data={"csrf_token": token, f"m{team.id}-staff": str(agent.id), f"m{team.id}-cap": "3"},
        ).status_code
        == 303
    )
    member = session.scalars(select(TeamMember)).one()
    assert (member.staff_id, member.cap, member.available) == (agent.id, 3, True)
    assert admin.post(f"/admin/members/{member.id}", data={"csrf_token": token, "cap": "7"}).status_code == 303
    assert admin.post(f"/admin/members/{member.id}", data={"csrf_token": token, "cap": "0"}).status_code == 422
    session.expire_all()
    member = session.get(TeamMember, member.id)
    assert (member.cap, member.available) == (7, False)
    assert session.get(Team, team.id).lead_id == lead.id


# --- every admin change is audited with the values before and after ---------------------------


def _audit(session, action):
    session.expire_all()
    return session.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)).all()


@pytest.fixture
def desk(session):
    """A team with an SLA policy on a business calendar (no tickets)."""
    from portal.db.models import BusinessCalendarRow, SlaPolicy
    from portal.services.tickets import ensure_team

    team = ensure_team(session, "service", "Customer service")
    calendar = BusinessCalendarRow(
        code="sh",
        name="Shanghai office",
        timezone="Asia/Shanghai",
        weekly={"mon": ["09:00-18:00"], "tue": ["09:00-18:00"]},
    )
    session.add(calendar)
    session.flush()
    policy = SlaPolicy(
        team_id=team.id,
        priority="normal",
        first_response_minutes=60,
        resolution_minutes=480,
        calendar_id=calendar.id,
        ladder=[{"key": "remind", "at_fraction": 0.75, "action": "remind"}],
    )
    session.add(policy)
    session.commit()
    return {"team": team, "calendar": calendar, "policy": policy}


def test_staff_account_changes_are_audited_with_before_and_after(admin, session):
    page = admin.get("/admin/staff").get_data(as_text=True)
    token = csrf_token(page)
    admin.post(
        "/admin/staff",
        data={"csrf_token": token, "email": "fin@example.com", "name": "Fin", "role": "finance", "password": PASSWORD},
    )
    user = session.scalars(select(StaffUser).where(StaffUser.email == "fin@example.com")).one()
    (created,) = _audit(session, "create_staff")
    assert (created.target, created.before, created.after) == (
        f"staff:{user.id}",
        None,
        {"email": "fin@example.com", "name": "Fin", "role": "finance", "active": True},
    )
    assert "password" not in str(created.after)
    admin.post(f"/admin/staff/{user.id}/role", data={"csrf_token": token, "role": "agent"})
    (role,) = _audit(session, "change_role")
    assert (role.before["role"], role.after["role"]) == ("finance", "agent")
    admin.post(f"/admin/staff/{user.id}/active", data={"csrf_token": token, "active": "0"})
    (disabled,) = _audit(session, "disable")
    assert (disabled.before["active"], disabled.after["active"]) == (True, False)
    me = session.scalars(select(StaffUser).where(StaffUser.email == "admin@example.com")).one()
    assert {created.actor_id, role.actor_id, disabled.actor_id} == {me.id}


def test_routing_rule_changes_are_audited(admin, session, desk):
    from portal.db.models import RoutingRuleRow

    token = csrf_token(admin.get("/admin/routing").get_data(as_text=True))
    form = {
        "csrf_token": token,
        "name": "Coats",
        "position": "5",
        "active": "y",
        "team": str(desk["team"].id),
        "priority": "high",
        "ticket_class": "A",
        "categories": "Outerwear",
        "needs_review": "",
        "frequent_returner": "",
    }
    assert admin.post("/admin/routing", data=form).status_code == 303
    rule = session.scalars(select(RoutingRuleRow)).one()
    (created,) = _audit(session, "create_rule")
    assert created.target == f"routing_rule:{rule.id}" and created.before is None
    assert created.after == {
        "name": "Coats",
        "position": 5,
        "active": True,
        "team_id": desk["team"].id,
        "priority": "high",
        "ticket_class": "A",
        "conditions": {"categories": ["outerwear"]},
    }
    assert admin.post(f"/admin/routing/{rule.id}", data={**form, "priority": "low"}).status_code == 303
    (updated,) = _audit(session, "update_rule")
    assert updated.before == created.after and updated.after == {**created.after, "priority": "low"}
    # A refused change writes nothing.
    assert (
        admin.post(f"/admin/routing/{rule.id}", data={**form, "min_value": "50", "max_value": "10"}).status_code == 422
    )
    assert len(_audit(session, "update_rule")) == 1


def test_reply_changes_are_audited(admin, session):
    from portal.db.models import CannedReplyRow

    token = csrf_token(admin.get("/admin/replies").get_data(as_text=True))
    form = {
        "csrf_token": token,
        "name": "Late",
        "locale": "en",
        "reasons": ["late_delivery"],
        "keywords": "late, slow",
        "body": "Sorry",
        "active": "y",
    }
    assert admin.post("/admin/replies", data=form).status_code == 303
    row = session.scalars(select(CannedReplyRow)).one()
    (created,) = _audit(session, "create_reply")
    assert (created.target, created.before) == (f"canned_reply:{row.id}", None)
    assert created.after == {
        "name": "Late",
        "locale": "en",
        "body": "Sorry",
        "active": True,
        "reasons": ["late_delivery"],
        "keywords": ["late", "slow"],
        "decision": None,
    }
    assert admin.post(f"/admin/replies/{row.id}", data={**form, "locale": "zh_Hans"}).status_code == 303
    (updated,) = _audit(session, "update_reply")
    assert updated.before == created.after and updated.after == {**created.after, "locale": "zh_Hans"}


def test_sla_policy_and_calendar_changes_are_audited(admin, session, desk):
    policy, calendar = desk["policy"], desk["calendar"]
    token = csrf_token(admin.get(f"/admin/sla/{policy.id}").get_data(as_text=True))
    ladder = {"ladder-0-key": "lead", "ladder-0-amount": "0", "ladder-0-when": "after_deadline"}
    response = admin.post(
        f"/admin/sla/{policy.id}",
        data={
            "csrf_token": token,
            "first_response_minutes": "30",
            "resolution_minutes": "240",
            **ladder,
            "ladder-0-action": "move_to_lead",
        },
    )
    assert response.status_code == 303
    (entry,) = _audit(session, "update_sla_policy")
    assert entry.target == f"sla_policy:{policy.id}"
    assert entry.before == {
        "first_response_minutes": 60,
        "resolution_minutes": 480,
        "ladder": [{"key": "remind", "at_fraction": 0.75, "action": "remind"}],
    }
    assert entry.after == {
        "first_response_minutes": 30,
        "resolution_minutes": 240,
        "ladder": [{"key": "lead", "after_breach_minutes": 0, "action": "move_to_lead"}],
    }
    form = {
        "csrf_token": token,
        "mon": "09:00-12:00, 13:00-18:00",
        "tue": "",
        "wed": "",
        "thu": "",
        "fri": "",
        "sat": "",
        "sun": "",
        "exceptions": "2026-12-25 closed Christmas",
    }
    assert admin.post(f"/admin/calendars/{calendar.id}", data=form).status_code == 303
    (cal,) = _audit(session, "update_calendar")
    assert cal.target == f"business_calendar:{calendar.id}"
    assert cal.before == {"weekly": {"mon": ["09:00-18:00"], "tue": ["09:00-18:00"]}, "exceptions": {}}
    assert cal.after == {
        "weekly": {"mon": ["09:00-12:00", "13:00-18:00"]},
        "exceptions": {"2026-12-25": {"hours": [], "note": "Christmas"}},
    }


def test_team_and_member_changes_are_audited(admin, session, desk):
    from portal.db.models import TeamMember

    team = desk["team"]
    lead = create_staff(session, "lead@example.com", "Lee", "lead", PASSWORD)
    agent = session.scalars(select(StaffUser).where(StaffUser.email == "agent@example.com")).one()
    token = csrf_token(admin.get("/admin/teams").get_data(as_text=True))
    admin.post(
        f"/admin/teams/{team.id}",
        data={"csrf_token": token, f"t{team.id}-lead": str(lead.id), f"t{team.id}-manager": ""},
    )
    (entry,) = _audit(session, "update_team")
    assert (entry.target, entry.before, entry.after) == (
        f"team:{team.id}",
        {"lead_id": None, "manager_id": None},
        {"lead_id": lead.id, "manager_id": None},
    )
    admin.post(
        f"/admin/teams/{team.id}/members",
        data={"csrf_token": token, f"m{team.id}-staff": str(agent.id), f"m{team.id}-cap": "3"},
    )
    member = session.scalars(select(TeamMember)).one()
    (added,) = _audit(session, "add_member")
    assert (added.target, added.before, added.after) == (
        f"team_member:{member.id}",
        None,
        {"team_id": team.id, "staff_id": agent.id, "cap": 3, "available": True},
    )
    admin.post(f"/admin/members/{member.id}", data={"csrf_token": token, "cap": "7"})
    (changed,) = _audit(session, "update_member")
    assert (changed.before["cap"], changed.after["cap"], changed.after["available"]) == (3, 7, False)


def test_audit_page_lists_changes_newest_first_paginated(admin, session, monkeypatch):
    from portal.web.admin import routes

    me = session.scalars(select(StaffUser).where(StaffUser.email == "admin@example.com")).one()
    agent = session.scalars(select(StaffUser).where(StaffUser.email == "agent@example.com")).one()
    token = csrf_token(admin.get("/admin/staff").get_data(as_text=True))
    for role in ("lead", "manager", "finance"):
        admin.post(f"/admin/staff/{agent.id}/role", data={"csrf_token": token, "role": role})
    monkeypatch.setattr(routes, "AUDIT_PAGE_SIZE", 2)
    first = admin.get("/admin/audit").get_data(as_text=True)
    assert "manager -&gt; finance" in first and "lead -&gt; manager" in first and "agent -&gt; lead" not in first
    assert first.index("manager -&gt; finance") < first.index("lead -&gt; manager")
    assert me.name in first and "change_role" in first and "Page 1 of 2" in first
    second = admin.get("/admin/audit?page=2").get_data(as_text=True)
    assert "agent -&gt; lead" in second and "manager -&gt; finance" not in second


def test_audit_page_is_for_admins_only(client, session):
    create_staff(session, "mgr@example.com", "Mo", "manager", PASSWORD)
    sign_in(client, "mgr@example.com")
    assert client.get("/admin/audit").status_code == 403


# --- ladder and calendar mistakes are shown in the admin's language ----------------------------


@pytest.fixture
def chinese_admin(admin):
    token = csrf_token(admin.get("/admin/staff").get_data(as_text=True))
    admin.post("/lang", data={"csrf_token": token, "lang": "zh_Hans", "next": "/admin/staff"})
    return admin


def test_bad_ladder_is_explained_in_chinese_and_nothing_is_saved(chinese_admin, session, desk):
    policy = desk["policy"]
    token = csrf_token(chinese_admin.get(f"/admin/sla/{policy.id}").get_data(as_text=True))
    form = {
        "csrf_token": token,
        "first_response_minutes": "10",
        "resolution_minutes": "20",
        "ladder-0-key": "x",
        "ladder-0-amount": "half",
        "ladder-0-when": "used",
        "ladder-0-action": "remind",
    }
    response = chinese_admin.post(f"/admin/sla/{policy.id}", data=form)
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "第 1 步" in body and "目标" in body
    assert 'value="half"' in body  # what was typed is still in the form
    session.expire_all()
    assert (policy.first_response_minutes, policy.resolution_minutes) == (60, 480)
    assert policy.ladder == [{"key": "remind", "at_fraction": 0.75, "action": "remind"}]
    assert _audit(session, "update_sla_policy") == []


@pytest.mark.parametrize(
    ("field", "value", "chinese"),
    [
        ("mon", "18:00-09:00", "工作时段"),
        ("exceptions", "2026-12-25 9-5 staff party", "第 1 行"),
        ("exceptions", "christmas closed", "不是有效日期"),
    ],
)
def test_bad_calendar_is_explained_in_chinese_and_nothing_is_saved(chinese_admin, session, desk, field, value, chinese):
    calendar = desk["calendar"]
    token = csrf_token(chinese_admin.get(f"/admin/calendars/{calendar.id}").get_data(as_text=True))
    form = {
        "csrf_token": token,
        "mon": "09:00-18:00",
        "tue": "09:00-18:00",
        "wed": "",
        "thu": "",
        "fri": "",
        "sat": "",
        "sun": "",
        "exceptions": "",
    }
    response = chinese_admin.post(f"/admin/calendars/{calendar.id}", data={**form, field: value})
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert chinese in body and value.split()[0] in body
    assert value in body  # the typed text is kept in the form
    session.expire_all()
    assert calendar.weekly == {"mon": ["09:00-18:00"], "tue": ["09:00-18:00"]} and calendar.exceptions == []
    assert _audit(session, "update_calendar") == []


def test_bad_routing_bounds_are_explained_in_chinese_and_nothing_is_saved(chinese_admin, session, desk):
    from portal.db.models import AuditLog, RoutingRuleRow

    token = csrf_token(chinese_admin.get("/admin/routing").get_data(as_text=True))
    form = {
        "csrf_token": token,
        "name": "Odd bounds",
        "position": "1",
        "active": "y",
        "team": str(desk["team"].id),
        "priority": "normal",
        "ticket_class": "B",
        "min_value": "50",
        "max_value": "10",
        "needs_review": "",
        "frequent_returner": "",
    }
    response = chinese_admin.post("/admin/routing", data=form)
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "金额不高于：不能低于“金额不低于”。" in body and "must not be below" not in body
    assert 'value="Odd bounds"' in body  # what was typed is still in the form
    assert session.scalars(select(RoutingRuleRow)).all() == []
    assert session.scalars(select(AuditLog).where(AuditLog.action.like("routing%"))).all() == []
