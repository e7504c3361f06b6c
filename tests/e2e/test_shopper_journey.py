"""The shopper's happy path in a real browser: look up, go through the steps, submit, follow, cancel."""

from __future__ import annotations

import re

from tests.helpers import PRODUCTS, order_payload, post_json


def test_shopper_returns_an_item(client, live_server, page):
    post_json(client, "/api/v1/products", PRODUCTS)
    post_json(client, "/api/v1/orders", order_payload())

    page.goto(live_server + "/")
    page.get_by_label("Order number").fill("SO-1001")
    page.get_by_label("Email or postcode").fill("li.wei@example.com")
    page.get_by_role("button", name="Find my order").click()
    page.wait_for_url(re.compile(r".*/order$"))

    # One step per screen, each answered by htmx without reloading the page.
    page.get_by_text("T-shirt").first.click()
    page.get_by_label("How many to return").select_option("1")
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("heading", name=re.compile("Why are you returning them")).wait_for()
    page.get_by_label("It doesn't fit").check()
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Too small").check()
    page.get_by_label("Anything else we should know?").fill("Runs small")
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Refund to the original payment method").check()
    page.get_by_role("button", name="Continue").click()
    page.locator("#decision").get_by_text("Can be returned").wait_for()
    page.get_by_role("button", name="Submit return request").click()
    page.wait_for_url(re.compile(r".*/requests/R-"))
    assert "has been received" in page.content()
    assert page.locator(".status-now").inner_text().endswith("Pickup code issued")
    code = page.locator(".pickup-code").first.inner_text()
    assert re.fullmatch(
        r"P-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{3}", code
    )  # read aloud: no ~ * $ =
    page.get_by_role("link", name="Show the label").click()
    page.wait_for_url(re.compile(r".*/label$"))
    assert page.locator("svg").count() >= 2 and code in page.content()
    page.go_back()

    page.get_by_role("link", name="Cancel this return").click()
    page.get_by_role("button", name="Yes, cancel this return").click()
    page.get_by_text("Your return request has been cancelled.").wait_for()
    assert page.locator(".status-now").inner_text().endswith("Cancelled")


def test_shopper_switches_to_chinese(live_server, page):
    page.goto(live_server + "/")
    page.get_by_role("button", name="简体中文").click()
    page.get_by_role("heading", name="申请退货").wait_for()
    assert page.locator("html").get_attribute("lang") == "zh-Hans"
