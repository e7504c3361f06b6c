"""The insights dashboard in a real browser: the SVG charts load and draw under the page's strict
Content-Security-Policy (nothing blocked, and each chart's own styles apply), and changing the
period swaps the board through htmx and puts the period in the address."""

from __future__ import annotations

import re

from portal.services.staff import create_staff
from tests.helpers import PASSWORD, inspected


def _sign_in(page, base: str, email: str) -> None:
    page.goto(base + "/staff/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/staff/$"))


def test_charts_draw_under_the_policy_and_the_period_swaps_the_board(app, client, order, session, live_server, page):
    create_staff(session, "lead@example.com", "Lee Lead", "lead", PASSWORD)
    inspected(app, client, session)
    blocked: list[str] = []
    page.on(
        "console", lambda message: blocked.append(message.text) if "Content Security Policy" in message.text else None
    )
    _sign_in(page, live_server, "lead@example.com")
    page.get_by_role("link", name="Insights").click()
    page.wait_for_url(re.compile(r".*/insights/$"))
    charts = page.locator("img.insight-chart")
    assert charts.count() >= 10
    page.wait_for_function(
        "() => [...document.querySelectorAll('img.insight-chart')].every(i => i.complete && i.naturalWidth > 0)"
    )
    assert page.locator('#return-rates tr[data-key="TEE-S"]').count() == 1
    # The chart's own stylesheet applies where it is served (its background is white, not SVG's black).
    src = charts.first.get_attribute("src")
    page.goto(live_server + src)
    fill = page.evaluate("() => getComputedStyle(document.querySelector('rect.background')).fill")
    assert fill == "rgb(255, 255, 255)"
    page.go_back()
    page.get_by_label("Period").select_option("7")
    page.wait_for_url(re.compile(r".*/insights/\?.*period=7"))
    page.wait_for_function("() => document.querySelector('#board img.insight-chart').src.includes('period=7')")
    assert page.locator("#board").count() == 1 and page.locator("h1").count() == 1  # swapped, not nested
    assert blocked == []
