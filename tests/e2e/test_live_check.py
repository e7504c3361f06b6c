"""The live check on the order page counts the photos already chosen, as the submit will."""

from __future__ import annotations

import re

from tests.helpers import PRODUCTS, jpeg, order_payload, post_json


def test_the_live_check_sees_the_chosen_photos(client, live_server, page):
    post_json(client, "/api/v1/products", PRODUCTS)
    post_json(client, "/api/v1/orders", order_payload())
    page.goto(live_server + "/")
    page.get_by_label("Order number").fill("SO-1001")
    page.get_by_label("Email or postcode").fill("li.wei@example.com")
    page.get_by_role("button", name="Find my order").click()
    page.wait_for_url(re.compile(r".*/order$"))

    page.get_by_label("How many to return").first.select_option("1")
    page.get_by_label("Reason").first.select_option("damaged")
    decision = page.locator("#decision")
    decision.get_by_text("Please add at least one photo").wait_for()

    page.locator('input[type="file"]').first.set_input_files(
        {"name": "torn.jpg", "mimeType": "image/jpeg", "buffer": jpeg()}
    )
    from playwright.sync_api import expect

    expect(decision.get_by_text("Please add at least one photo")).to_have_count(0)
    assert "Cannot be returned" not in decision.inner_text()

    # Submitting agrees with what the check said.
    page.get_by_role("button", name="Submit return request").click()
    page.wait_for_url(re.compile(r".*/requests/R-"))
