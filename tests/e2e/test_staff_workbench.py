"""A lead at volume in a real browser: ticks rows by keyboard and acts on them in bulk, decides a
ticket and lands on the next one of the same queue, and sees a colleague on the same ticket."""

from __future__ import annotations

import re

from sqlalchemy import select

from portal.db.models import ReturnRequest, Ticket
from portal.services.staff import create_staff
from tests.helpers import PASSWORD, submit_coat


def staff_sign_in(page, base: str, email: str) -> None:
    page.goto(base + "/staff/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/staff/$"))


def test_bulk_by_keyboard_then_decide_and_go_to_the_next(app, session, desk, live_server, page):
    create_staff(session, "lead@example.com", "Lee Lead", "lead", PASSWORD)
    rmas = [submit_coat(app, f"WB-{n}", email=f"s{n}@example.com") for n in range(3)]
    staff_sign_in(page, live_server, "lead@example.com")
    page.goto(live_server + "/staff/queue?view=all&sort=age")
    body = page.locator("body")
    for key in ("j", "x", "j", "x"):
        body.press(key)
    assert page.locator("input[name='tickets']:checked").count() == 2
    page.get_by_label("With the chosen tickets").select_option("take")
    page.get_by_role("button", name="Apply to the chosen tickets").click()
    page.get_by_text("2 tickets done.").wait_for()
    session.expire_all()
    mine = session.scalars(select(Ticket).where(Ticket.assignee_id.is_not(None))).all()
    assert sum(1 for t in mine if t.assignee.email == "lead@example.com") == 2

    # Decide and go on: the next ticket of the same queue opens.
    page.goto(live_server + f"/staff/requests/{rmas[0]}?queue=all")
    page.keyboard.press("a")
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "/staff/requests/R-" in url and rmas[0] not in url and "queue=all" in url)
    page.get_by_text("Approved. The shopper has been told.").wait_for()
    session.expire_all()
    assert session.scalars(select(ReturnRequest.status).where(ReturnRequest.rma == rmas[0])).one() == "label_issued"


def test_a_colleague_on_the_same_ticket_is_named(app, session, desk, live_server, browser, page):
    rma = submit_coat(app, "WB-9")
    staff_sign_in(page, live_server, "agent@example.com")
    page.goto(live_server + f"/staff/requests/{rma}")
    assert page.locator(".collision").count() == 0
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    other = context.new_page()
    try:
        staff_sign_in(other, live_server, "other@example.com")
        other.goto(live_server + f"/staff/requests/{rma}")
        assert "Ann Agent also has this ticket open" in other.locator(".collision").inner_text()
        # The first page hears of the second on its next presence check (every 20 seconds).
        page.get_by_text("Olly Other also has this ticket open").wait_for(timeout=30_000)
    finally:
        context.close()
