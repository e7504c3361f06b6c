"""An agent works the queue from the keyboard in a real browser: j/k, open, a, Enter."""

from __future__ import annotations

import re

from sqlalchemy import select

from portal.db.models import ReturnRequest, RoutingRuleRow, TeamMember
from portal.services.staff import create_staff
from portal.services.tickets import ensure_team
from tests.helpers import PASSWORD, submit_coat


def test_agent_approves_from_the_keyboard(app, session, live_server, page):
    agent = create_staff(session, "agent@example.com", "Ann Agent", "agent", PASSWORD)
    team = ensure_team(session, "finance", "Finance desk")
    session.add(TeamMember(team_id=team.id, staff_id=agent.id))
    session.add(
        RoutingRuleRow(
            position=1,
            name="High value",
            conditions={"min_value": "1000"},
            team=team,
            priority="high",
            ticket_class="A",
        )
    )
    session.commit()
    first = submit_coat(app, "KB-1")
    submit_coat(app, "KB-2", email="wang@example.com")

    page.goto(live_server + "/staff/login")
    page.get_by_label("Email").fill("agent@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(live_server + "/staff/queue?view=mine")
    page.locator("body").press("j")
    page.locator("body").press("j")
    assert page.locator("tr[data-row].selected").count() == 1
    page.keyboard.press("k")
    selected = page.locator("tr[data-row].selected a").first.inner_text()
    page.keyboard.press("o")
    page.wait_for_url(re.compile(r".*/staff/requests/R-"))
    assert selected in page.url
    page.keyboard.press("a")
    assert page.locator("input[name='action'][value='approve']").is_checked()
    page.keyboard.press("Enter")
    page.get_by_text("Approved. The shopper has been told.").wait_for()
    session.expire_all()
    approved = session.scalars(select(ReturnRequest.rma).where(ReturnRequest.status == "label_issued")).all()
    assert approved == [selected] and selected in (first, approved[0])


def test_active_search_updates_as_you_type(app, session, live_server, page):
    create_staff(session, "lead@example.com", "Lee Lead", "lead", PASSWORD)
    submit_coat(app, "AS-1")
    submit_coat(app, "AS-2", email="wang@example.com")
    page.goto(live_server + "/staff/login")
    page.get_by_label("Email").fill("lead@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(live_server + "/staff/queue?view=all")
    assert page.locator("tr[data-row]").count() == 2
    # On a 390 px phone the page itself never scrolls sideways (the table scrolls in its box)
    # and an RMA stays on one line.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    rma = page.locator("tr[data-row] td a").first
    assert rma.evaluate("e => e.getClientRects().length") == 1
    # Shoppers' details are encrypted: they are found by the whole email (a blind index), not a part.
    page.get_by_label("Search RMA, order, pickup code, SKU, customer or phone").fill("wang@example.com")
    from playwright.sync_api import expect

    expect(page.locator("tr[data-row]")).to_have_count(1)
    assert "AS-2" in page.locator("#queue-rows").inner_text()
