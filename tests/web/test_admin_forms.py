"""Admin forms: the escalation ladder as rows of controls, routing errors beside their field, the
add-member list, and messages that name the field they are about."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from portal.db.models import AuditLog, SlaPolicy, StaffUser
from portal.services.staff import create_staff
from tests.helpers import PASSWORD, csrf_token, form_for, login_shopper, sign_in


@pytest.fixture
def admin(client, session):
    create_staff(session, "admin@example.com", "Ada Admin", "admin", PASSWORD)
    create_staff(session, "agent@example.com", "Al Agent", "agent", PASSWORD)
    sign_in(client, "admin@example.com")
    return client


@pytest.fixture
def policy(session):
    from portal.db.models import BusinessCalendarRow
    from portal.services.tickets import ensure_team

    team = ensure_team(session, "service", "Customer service")
    calendar = BusinessCalendarRow(
        code="sh", name="Shanghai", timezone="Asia/Shanghai", weekly={"mon": ["09:00-18:00"]}
    )
    session.add(calendar)
    session.flush()
    row = SlaPolicy(
        team_id=team.id,
        priority="normal",
        first_response_minutes=60,
        resolution_minutes=480,
        calendar_id=calendar.id,
        ladder=[
            {"key": "remind", "at_fraction": 0.75, "action": "remind"},
            {"key": "lead", "after_breach_minutes": 30, "action": "move_to_lead"},
        ],
    )
    session.add(row)
    session.commit()
    return row


def _control(page: str, name: str) -> str:
    """The value a text input shows, or the selected option of a select."""
    tag = re.search(rf'<input[^>]*name="{name}"[^>]*>', page)
    if tag:
        value = re.search(r'value="([^"]*)"', tag.group(0))
        return value.group(1) if value else ""
    select_ = re.search(rf'<select[^>]*name="{name}"[^>]*>(.*?)</select>', page, re.S)
    assert select_, name
    chosen = re.search(r'<option selected value="([^"]*)"', select_.group(1))
    return chosen.group(1) if chosen else ""


def _invalid(page: str, name: str) -> bool:
    tag = re.search(rf'<(?:input|select)[^>]*name="{name}"[^>]*>', page)
    return bool(tag) and 'aria-invalid="true"' in tag.group(0)


def _policy_form(page: str, **rows: str) -> dict:
    return {"csrf_token": csrf_token(page), "first_response_minutes": "60", "resolution_minutes": "480", **rows}


# --- escalation ladder ------------------------------------------------------------------------


def test_ladder_is_shown_as_rows_of_controls(admin, policy):
    page = admin.get(f"/admin/sla/{policy.id}").get_data(as_text=True)
    assert "JSON" not in page and "<textarea" not in page
    assert [_control(page, f"ladder-0-{f}") for f in ("key", "amount", "when", "action")] == [
        "remind",
        "75",
        "used",
        "remind",
    ]
    assert [_control(page, f"ladder-1-{f}") for f in ("key", "amount", "when", "action")] == [
        "lead",
        "30",
        "after_deadline",
        "move_to_lead",
    ]
    assert 'for="ladder-1-amount"' in page  # every control has a label
    assert 'name="add_step"' in page and 'name="remove_step" value="1"' in page


def test_ladder_round_trips_through_the_form(admin, session, policy):
    page = admin.get(f"/admin/sla/{policy.id}").get_data(as_text=True)
    form = _policy_form(
        page,
        **{
            "ladder-0-key": "remind",
            "ladder-0-amount": "75",
            "ladder-0-when": "used",
            "ladder-0-action": "remind",
            "ladder-1-key": "lead",
            "ladder-1-amount": "30",
            "ladder-1-when": "after_deadline",
            "ladder-1-action": "move_to_lead",
        },
    )
    assert admin.post(f"/admin/sla/{policy.id}", data=form).status_code == 303
    session.expire_all()
    assert session.get(SlaPolicy, policy.id).ladder == [
        {"key": "remind", "at_fraction": 0.75, "action": "remind"},
        {"key": "lead", "after_breach_minutes": 30, "action": "move_to_lead"},
    ]
    # The services read the stored form unchanged.
    from portal.services.sla import ladder_of

    steps = ladder_of(session.get(SlaPolicy, policy.id))
    assert [(s.key, s.at_fraction, s.after_breach_minutes) for s in steps] == [
        ("remind", 0.75, None),
        ("lead", None, 30),
    ]


def test_add_and_remove_steps_without_javascript(admin, session, policy):
    page = admin.get(f"/admin/sla/{policy.id}").get_data(as_text=True)
    typed = {
        "ladder-0-key": "remind",
        "ladder-0-amount": "80",
        "ladder-0-when": "used",
        "ladder-0-action": "remind",
        "ladder-1-key": "lead",
        "ladder-1-amount": "30",
        "ladder-1-when": "after_deadline",
        "ladder-1-action": "move_to_lead",
    }
    added = admin.post(f"/admin/sla/{policy.id}", data={**_policy_form(page, **typed), "add_step": "1"})
    body = added.get_data(as_text=True)
    assert added.status_code == 200
    assert _control(body, "ladder-2-amount") == "" and _control(body, "ladder-0-amount") == "80"  # typed values kept
    session.expire_all()
    assert session.get(SlaPolicy, policy.id).ladder[0]["at_fraction"] == 0.75  # nothing saved yet
    # Fill the new row (no name: one is made), remove the first, then save.
    new_row = {
        "ladder-2-key": "",
        "ladder-2-amount": "120",
        "ladder-2-when": "used",
        "ladder-2-action": "notify_manager",
    }
    removed = admin.post(f"/admin/sla/{policy.id}", data={**_policy_form(page, **typed, **new_row), "remove_step": "0"})
    body = removed.get_data(as_text=True)
    assert removed.status_code == 200 and 'value="80"' not in body and _control(body, "ladder-2-amount") == "120"
    kept = {k: v for k, v in {**typed, **new_row}.items() if not k.startswith("ladder-0-")}
    assert admin.post(f"/admin/sla/{policy.id}", data=_policy_form(page, **kept)).status_code == 303
    session.expire_all()
    assert session.get(SlaPolicy, policy.id).ladder == [
        {"key": "lead", "after_breach_minutes": 30, "action": "move_to_lead"},
        {"key": "notify_manager-2", "at_fraction": 1.2, "action": "notify_manager"},
    ]


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        ({"ladder-1-amount": "soon"}, "amount", "Step 2, threshold: give whole business minutes after the deadline"),
        ({"ladder-1-amount": "-5"}, "amount", "Step 2, threshold: give whole business minutes after the deadline"),
        ({"ladder-1-when": "used", "ladder-1-amount": "0"}, "amount", "Step 2, threshold: give the percentage"),
        ({"ladder-1-key": "remind"}, "key", "Step 2, name: step 1 already has this name."),
    ],
)
def test_bad_ladder_row_is_refused_naming_the_row_and_field(admin, session, policy, row, field, message):
    page = admin.get(f"/admin/sla/{policy.id}").get_data(as_text=True)
    rows = {
        "ladder-0-key": "remind",
        "ladder-0-amount": "75",
        "ladder-0-when": "used",
        "ladder-0-action": "remind",
        "ladder-1-key": "lead",
        "ladder-1-amount": "30",
        "ladder-1-when": "after_deadline",
        "ladder-1-action": "move_to_lead",
        **row,
    }
    response = admin.post(f"/admin/sla/{policy.id}", data=_policy_form(page, **rows))
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert message in body
    assert _invalid(body, f"ladder-1-{field}") and not _invalid(body, "ladder-0-amount")
    session.expire_all()
    assert session.get(SlaPolicy, policy.id).ladder[1] == {
        "key": "lead",
        "after_breach_minutes": 30,
        "action": "move_to_lead",
    }
    assert session.scalars(select(AuditLog)).all() == []


def test_unknown_action_is_refused(admin, session, policy):
    page = admin.get(f"/admin/sla/{policy.id}").get_data(as_text=True)
    rows = {"ladder-0-key": "x", "ladder-0-amount": "50", "ladder-0-when": "used", "ladder-0-action": "explode"}
    response = admin.post(f"/admin/sla/{policy.id}", data=_policy_form(page, **rows))
    assert response.status_code == 422
    assert "Action" in response.get_data(as_text=True) or "action" in response.get_data(as_text=True)
    session.expire_all()
    assert len(session.get(SlaPolicy, policy.id).ladder) == 2


# --- routing rules: errors beside the field, conditions in words --------------------------------


def test_routing_bounds_error_names_the_field_and_conditions_read_as_words(admin, session):
    from portal.db.models import RoutingRuleRow
    from portal.services.tickets import ensure_team

    team = ensure_team(session, "service", "Customer service")
    session.commit()
    token = csrf_token(admin.get("/admin/routing").get_data(as_text=True))
    form = {
        "csrf_token": token,
        "name": "Dear",
        "position": "1",
        "active": "y",
        "team": str(team.id),
        "priority": "high",
        "ticket_class": "A",
        "categories": "coats",
        "min_value": "50",
        "max_value": "10",
        "needs_review": "yes",
        "frequent_returner": "",
    }
    bad = admin.post("/admin/routing", data=form)
    body = bad.get_data(as_text=True)
    assert bad.status_code == 422
    assert "Value at most: must not be below “Value at least”." in body and _invalid(body, "max_value")
    assert not _invalid(body, "name")
    assert session.scalars(select(RoutingRuleRow)).all() == []
    assert admin.post("/admin/routing", data={**form, "max_value": "500"}).status_code == 303
    page = admin.get("/admin/routing").get_data(as_text=True)
    assert "Categories: coats" in page and "Value at least: 50" in page and "Policy says needs review: yes" in page
    assert "{&#34;" not in page and '{"categories"' not in page  # no raw JSON


def test_new_account_errors_name_their_field(admin):
    page = admin.get("/admin/staff").get_data(as_text=True)
    response = admin.post(
        "/admin/staff",
        data={"csrf_token": csrf_token(page), "email": "nope", "name": "", "role": "agent", "password": "short"},
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Email: Enter an email address." in body, re.findall(r'role="alert">([^<]*)', body)
    assert "Name: This field is required." in body
    assert "Initial password: Field must be between 10 and 1024 characters long." in body


# --- teams: the add-member list offers only people not in the team -----------------------------


def test_add_member_lists_only_people_not_already_in_the_team(admin, session):
    from portal.db.models import TeamMember
    from portal.services.tickets import ensure_team

    team = ensure_team(session, "service", "Customer service")
    other = ensure_team(session, "shoes", "Shoe desk")
    lee = create_staff(session, "lee@example.com", "Lee Lead", "lead", PASSWORD)
    agent = session.scalars(select(StaffUser).where(StaffUser.email == "agent@example.com")).one()
    session.commit()

    def choices(page: str, team_id: int) -> set[str]:
        options = re.search(rf'<select[^>]*name="m{team_id}-staff"[^>]*>(.*?)</select>', page, re.S).group(1)
        return set(re.findall(r'<option[^>]*value="(\d+)"', options))

    page = admin.get("/admin/teams").get_data(as_text=True)
    assert {str(agent.id), str(lee.id)} <= choices(page, team.id)
    token = csrf_token(page)
    added = admin.post(
        f"/admin/teams/{team.id}/members",
        data={"csrf_token": token, f"m{team.id}-staff": str(agent.id), f"m{team.id}-cap": "5"},
    )
    assert added.status_code == 303
    page = admin.get("/admin/teams").get_data(as_text=True)
    assert str(agent.id) not in choices(page, team.id) and str(lee.id) in choices(page, team.id)
    assert str(agent.id) in choices(page, other.id)  # still offered to the other team
    # Posting a member again is refused with a message naming the field, nothing added.
    again = admin.post(
        f"/admin/teams/{team.id}/members",
        data={"csrf_token": token, f"m{team.id}-staff": str(agent.id), f"m{team.id}-cap": "5"},
    )
    assert again.status_code == 422 and "Add member:" in again.get_data(as_text=True)
    assert len(session.scalars(select(TeamMember)).all()) == 1


def test_bad_member_cap_says_whose_and_which_field(admin, session):
    from portal.db.models import TeamMember
    from portal.services.tickets import ensure_team

    team = ensure_team(session, "service", "Customer service")
    agent = session.scalars(select(StaffUser).where(StaffUser.email == "agent@example.com")).one()
    member = TeamMember(team_id=team.id, staff_id=agent.id, cap=4, available=True)
    session.add(member)
    session.commit()
    token = csrf_token(admin.get("/admin/teams").get_data(as_text=True))
    response = admin.post(f"/admin/members/{member.id}", data={"csrf_token": token, "cap": "0"})
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "Al Agent: Cap: Number must be between 1 and 1000." in body, re.findall(r'role="alert">([^<]*)', body)
    session.expire_all()
    assert session.get(TeamMember, member.id).cap == 4


# --- the audit page: filters, contact reveals and every admin change ------------------------------


def test_audit_page_shows_reveals_and_admin_changes_and_filters_them(admin, app, session, policy, order):
    ada = session.scalars(select(StaffUser).where(StaffUser.email == "admin@example.com")).one()
    agent = session.scalars(select(StaffUser).where(StaffUser.email == "agent@example.com")).one()
    # A shopper files a return; an agent reveals the shopper's contact details on the request page.
    shopper = app.test_client()
    login_shopper(shopper)
    filed = shopper.post(
        "/order/request", data=form_for(shopper, **{"0": {"quantity": "1", "reason": "size_fit", "outcome": "refund"}})
    )
    rma = filed.headers["Location"].rsplit("/", 1)[1]
    agent_client = app.test_client()
    sign_in(agent_client, "agent@example.com")
    detail = agent_client.get(f"/staff/requests/{rma}").get_data(as_text=True)
    revealed = agent_client.post(
        f"/staff/requests/{rma}/contact",
        data={"csrf_token": csrf_token(detail), "reason": "shopper called about the pickup"},
    )
    assert revealed.status_code == 200 and "li.wei@example.com" in revealed.get_data(as_text=True)
    # The admin changes a role, the SLA policy and makes a password link.
    page = admin.get("/admin/staff").get_data(as_text=True)
    token = csrf_token(page)
    admin.post(f"/admin/staff/{agent.id}/role", data={"csrf_token": token, "role": "lead"})
    rows = {"ladder-0-key": "r", "ladder-0-amount": "50", "ladder-0-when": "used", "ladder-0-action": "remind"}
    admin.post(f"/admin/sla/{policy.id}", data=_policy_form(page, **rows))
    admin.post(f"/admin/staff/{agent.id}/reset", data={"csrf_token": token})

    def actions(body: str) -> list[str]:
        return re.findall(r'<tr data-action="([^"]+)"', body)

    everything = admin.get("/admin/audit").get_data(as_text=True)
    # (the policy version taken in at the first start is recorded before all of these)
    assert actions(everything)[:4] == ["password_reset_link", "update_sla_policy", "change_role", "reveal_contact"]
    assert "Revealed a shopper's contact details" in everything and "order:SO-1001" in everything
    oldest = admin.get("/admin/audit?order=oldest").get_data(as_text=True)
    assert actions(oldest) == list(reversed(actions(everything)))
    by_agent = admin.get(f"/admin/audit?who={agent.id}").get_data(as_text=True)
    assert actions(by_agent) == ["reveal_contact"]
    by_admin = admin.get(f"/admin/audit?who={ada.id}").get_data(as_text=True)
    assert actions(by_admin) == ["password_reset_link", "update_sla_policy", "change_role"]
    reveals = admin.get("/admin/audit?kind=reveal_contact").get_data(as_text=True)
    assert actions(reveals) == ["reveal_contact"] and "1 entry" in reveals
    both = admin.get(f"/admin/audit?who={ada.id}&kind=reveal_contact").get_data(as_text=True)
    assert actions(both) == [] and "Nothing matches these filters." in both
    # The filters offer the people who acted and the kinds recorded.
    assert f'<option value="{agent.id}"' in everything and 'value="update_sla_policy"' in everything
    assert admin.get("/admin/audit?who=abc&kind=" + "x" * 500 + "&page=-3").status_code == 200


def test_audit_pager_keeps_the_filters(admin, session, monkeypatch):
    from portal.web.admin import routes

    agent = session.scalars(select(StaffUser).where(StaffUser.email == "agent@example.com")).one()
    token = csrf_token(admin.get("/admin/staff").get_data(as_text=True))
    for role in ("lead", "manager", "finance"):
        admin.post(f"/admin/staff/{agent.id}/role", data={"csrf_token": token, "role": role})
    monkeypatch.setattr(routes, "AUDIT_PAGE_SIZE", 2)
    first = admin.get("/admin/audit?kind=change_role&order=oldest").get_data(as_text=True)
    assert "agent -&gt; lead" in first and "manager -&gt; finance" not in first
    assert "kind=change_role" in first and "order=oldest" in first and "page=2" in first
