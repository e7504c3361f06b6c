"""An admin edits an escalation ladder in a real browser: add a step, fill its controls by their
labels, save with Enter, remove a step; no JSON anywhere."""

from __future__ import annotations

from portal.db.models import BusinessCalendarRow, SlaPolicy
from portal.services.staff import create_staff
from portal.services.tickets import ensure_team
from tests.helpers import PASSWORD


def test_admin_edits_the_ladder_with_form_controls(session, live_server, page):
    create_staff(session, "admin@example.com", "Ada Admin", "admin", PASSWORD)
    team = ensure_team(session, "service", "Customer service")
    calendar = BusinessCalendarRow(
        code="sh", name="Shanghai", timezone="Asia/Shanghai", weekly={"mon": ["09:00-18:00"]}
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

    page.goto(live_server + "/staff/login")
    page.get_by_label("Email").fill("admin@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"{live_server}/admin/sla/{policy.id}")
    assert page.get_by_label("Step 1: Threshold").input_value() == "75"
    page.get_by_role("button", name="Add step").click()
    page.get_by_label("Step 2: When").select_option(label="minutes after the deadline")
    page.get_by_label("Step 2: Action").select_option(label="Move to the team lead")
    page.get_by_label("Step 2: Threshold").fill("-1")
    page.get_by_label("Step 2: Threshold").press("Enter")  # Enter saves; it does not remove step 1
    page.get_by_text("Step 2, threshold: give whole business minutes after the deadline").wait_for()
    assert page.get_by_label("Step 1: Threshold").input_value() == "75"
    page.get_by_label("Step 2: Threshold").fill("30")
    page.get_by_label("Step 2: Threshold").press("Enter")
    page.get_by_text("Policy saved").wait_for()
    session.expire_all()
    assert session.get(SlaPolicy, policy.id).ladder == [
        {"key": "remind", "at_fraction": 0.75, "action": "remind"},
        {"key": "move_to_lead-2", "after_breach_minutes": 30, "action": "move_to_lead"},
    ]
    page.goto(f"{live_server}/admin/sla/{policy.id}")
    page.get_by_role("button", name="Remove step 1").click()
    assert page.get_by_label("Step 1: Threshold").input_value() == "30"
    page.get_by_role("button", name="Save policy", exact=True).last.click()
    page.get_by_text("Policy saved").wait_for()
    session.expire_all()
    assert session.get(SlaPolicy, policy.id).ladder == [
        {"key": "move_to_lead-2", "after_breach_minutes": 30, "action": "move_to_lead"}
    ]
