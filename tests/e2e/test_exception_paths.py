"""The exception paths in a real browser, end to end: an agent approves only some lines, a
shopper cancels after the label was issued, and an agent settles a warehouse discrepancy (asks
the shopper, who answers, then refuses an item)."""

from __future__ import annotations

import re

from sqlalchemy import select

from portal.db.models import ReturnRequest
from portal.services.staff import create_staff
from tests.helpers import (
    COAT,
    PASSWORD,
    PRODUCTS,
    browser_shopper_files,
    browser_shopper_sign_in,
    form_for,
    inspected,
    login_shopper,
    order_payload,
    post_json,
)

SCARF = order_payload()["lines"][1]


def staff_sign_in(page, live_server, email: str) -> None:
    page.goto(live_server + "/staff/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/staff/"))


def test_agent_approves_some_lines_and_the_shopper_ships_only_those(app, client, session, live_server, browser, page):
    create_staff(session, "agent@example.com", "Ann Agent", "agent", PASSWORD)
    post_json(client, "/api/v1/orders", order_payload("PA-9", lines=COAT + [SCARF]))
    filer = app.test_client()
    login_shopper(filer, number="PA-9")
    data = form_for(
        filer,
        **{
            "0": {"quantity": "1", "reason": "size_fit", "outcome": "refund"},
            "1": {"quantity": "1", "reason": "changed_mind", "outcome": "refund"},
        },
    )
    rma = filer.post("/order/request", data=data).headers["Location"].rsplit("/", 1)[1]
    assert session.scalars(select(ReturnRequest.status)).one() == "pending_review"

    staff_sign_in(page, live_server, "agent@example.com")
    page.goto(f"{live_server}/staff/requests/{rma}")
    page.locator("input[name='action'][value='approve']").check()
    page.get_by_label(re.compile(r"1 × Silk scarf")).uncheck()
    page.get_by_label(re.compile(r"^Reason, question or note")).fill("Scarves cannot be returned once worn")
    page.get_by_role("button", name="Record decision").click()
    page.get_by_text("Approved. The shopper has been told.").wait_for()
    assert "Not accepted: Scarves cannot be returned once worn" in page.inner_text("main")

    shopper = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
    browser_shopper_sign_in(shopper, live_server, "PA-9")
    shopper.goto(f"{live_server}/requests/{rma}")
    status = shopper.inner_text("main")
    assert "Not accepted" in status and "Scarves cannot be returned once worn" in status
    shopper.get_by_role("link", name="Show the label").click()
    shopper.wait_for_url(re.compile(r".*/label$"))
    label = shopper.inner_text("body")
    assert "Coat" in label and "Silk scarf" not in label
    shopper.context.close()


def test_shopper_cancels_after_the_label_and_the_label_stops_working(client, live_server, page):
    post_json(client, "/api/v1/products", PRODUCTS)
    post_json(client, "/api/v1/orders", order_payload())
    browser_shopper_sign_in(page, live_server, "SO-1001")
    browser_shopper_files(page)
    status_url = page.url
    page.get_by_role("link", name="Show the label").click()
    page.wait_for_url(re.compile(r".*/label$"))
    label_url = page.url
    # On a 390 px phone the label fits the screen: nothing scrolls sideways, the barcode keeps
    # its quiet zone (it is drawn whole, scaled), and the pickup code stays on one line.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    barcode = page.locator(".barcode svg").bounding_box()
    assert barcode is not None and barcode["x"] >= 0 and barcode["x"] + barcode["width"] <= 390
    code = page.locator(".pickup-code")
    assert code.evaluate("e => e.getClientRects().length") == 1
    line_height = code.evaluate("e => parseFloat(getComputedStyle(e).lineHeight) || 0")
    assert code.bounding_box()["height"] < 2 * max(line_height, 16)
    page.go_back()

    page.get_by_role("link", name="Cancel this return").click()
    page.get_by_role("button", name="Yes, cancel this return").click()
    page.get_by_text("Your return request has been cancelled.").wait_for()
    text = page.inner_text("main")
    assert "Give this code to the courier" not in text and "no longer work" in text
    assert page.get_by_role("link", name="Show the label").count() == 0
    response = page.goto(label_url)
    assert response is not None and response.status == 410
    assert "Please do not send the parcel" in page.inner_text("body")
    page.goto(status_url)
    assert page.locator(".status-now").inner_text().endswith("Cancelled")


def test_agent_settles_a_discrepancy_with_the_shopper(app, client, session, live_server, browser, page):
    create_staff(session, "agent@example.com", "Ann Agent", "agent", PASSWORD)
    request = inspected(app, client, session, number="SO-1001", quantity="2", missing=1)
    rma = request.rma

    staff_sign_in(page, live_server, "agent@example.com")
    page.goto(f"{live_server}/staff/requests/{rma}")
    row = page.locator("#arrivals tbody tr").first
    assert [row.locator("td").nth(i).inner_text() for i in (1, 2)] == ["2", "1"]
    page.get_by_label("Question for the shopper").fill("We received one T-shirt of two. Did you keep one?")
    page.get_by_role("button", name="Send the question").click()
    page.get_by_text("Question sent.").wait_for()

    shopper = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
    browser_shopper_sign_in(shopper, live_server, "SO-1001")
    shopper.goto(f"{live_server}/requests/{rma}")
    assert "Did you keep one?" in shopper.inner_text("main")
    assert shopper.get_by_role("link", name="Cancel this return").count() == 0
    shopper.get_by_label("Your answer").fill("Yes, I kept one; only one was sent.")
    shopper.get_by_role("button", name="Send answer").click()
    shopper.wait_for_url(re.compile(rf".*/requests/{re.escape(rma)}$"))

    page.goto(f"{live_server}/staff/requests/{rma}")
    page.get_by_label(re.compile(r"2 × T-shirt")).check()
    page.get_by_label("Reason the shopper sees").fill("The T-shirt that arrived has been worn.")
    page.get_by_label("What happens to the items").select_option("return_to_shopper")
    page.get_by_role("button", name="Refuse the chosen items").click()
    page.get_by_text("Refused. The shopper has been told why").wait_for()
    session.expire_all()
    assert session.scalars(select(ReturnRequest.status).where(ReturnRequest.rma == rma)).one() == "closed"

    shopper.goto(f"{live_server}/requests/{rma}")
    text = shopper.inner_text("main")
    assert "The T-shirt that arrived has been worn." in text and "send it back to you" in text
    shopper.context.close()
