"""Reasons back to products in a real browser with JavaScript switched off: a lead picks a month
with the month picker, opens the product from the ranked list and sees its trend chart load."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy import update

from portal.db.models import Order, ReturnRequest
from portal.services.staff import create_staff
from tests.helpers import PASSWORD, submit_coat


def test_a_lead_picks_a_month_and_opens_a_product_without_javascript(app, session, live_server, browser):
    submit_coat(app, number="HV-9")
    session.execute(update(Order).values(placed_at=datetime(2026, 11, 2, tzinfo=UTC)))
    # 23:30 on 30 November in Shanghai: November's return.
    session.execute(update(ReturnRequest).values(created_at=datetime(2026, 11, 30, 15, 30, tzinfo=UTC)))
    session.commit()
    create_staff(session, "lead@example.com", "Lena Lead", "lead", PASSWORD)

    context = browser.new_context(viewport={"width": 1280, "height": 900}, java_script_enabled=False)
    page = context.new_page()
    charts: list[tuple[int, str]] = []
    page.on(
        "response",
        lambda r: charts.append((r.status, r.headers.get("content-type", ""))) if "trend.svg" in r.url else None,
    )
    try:
        page.goto(live_server + "/staff/login")
        page.get_by_label("Email").fill("lead@example.com")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(r".*/staff/$"))
        page.get_by_role("link", name="Products").click()
        page.wait_for_url(re.compile(r".*/staff/products$"))
        page.get_by_label("Month").fill("2026-12")
        page.get_by_role("button", name="Show").click()
        page.wait_for_url(re.compile(r".*/staff/products\?month=2026-12$"))
        assert page.locator("#fix-list tr[data-product]").count() == 0
        page.get_by_role("link", name="Previous month").click()
        page.wait_for_url(re.compile(r".*month=2026-11$"))
        row = page.locator('#fix-list tr[data-product="COAT-M"]')
        assert row.locator("td").nth(4).inner_text() == "1"
        row.get_by_role("link", name="Coat").click()
        page.wait_for_url(re.compile(r".*/staff/products/COAT-M\?month=2026-11$"))
        page.wait_for_load_state("networkidle")
        assert page.locator('#product-summary dd[data-figure="returned"]').inner_text() == "1"
        assert page.locator('#trend tr[data-month="2026-11"] td').nth(2).inner_text() == "1"
        assert charts and charts[-1][0] == 200 and charts[-1][1].startswith("image/svg+xml")
    finally:
        context.close()
