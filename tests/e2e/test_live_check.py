"""The live check on the order page counts the photos already chosen, as the submit will."""

from __future__ import annotations

import re

from tests.helpers import PRODUCTS, browser_shopper_sign_in, jpeg, order_payload, post_json


def test_the_live_check_sees_the_chosen_photos(client, live_server, page):
    post_json(client, "/api/v1/products", PRODUCTS)
    post_json(client, "/api/v1/orders", order_payload())
    browser_shopper_sign_in(page, live_server)

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


def test_a_large_photo_is_shrunk_in_the_browser_and_kept_at_once(client, live_server, page):
    from PIL import Image

    from tests.helpers import encode

    post_json(client, "/api/v1/products", PRODUCTS)
    post_json(client, "/api/v1/orders", order_payload())
    browser_shopper_sign_in(page, live_server)
    page.get_by_label("How many to return").first.select_option("1")
    page.get_by_label("Reason").first.select_option("damaged")

    big = encode(Image.effect_noise((4000, 3000), 60).convert("RGB"), "JPEG", quality=95)
    sent: list[int] = []
    page.on(
        "request", lambda r: sent.append(len(r.post_data_buffer or b"")) if r.url.endswith("/order/photos") else None
    )
    page.locator('input[type="file"]').first.set_input_files(
        {"name": "big.jpg", "mimeType": "image/jpeg", "buffer": big}
    )
    kept = page.locator('[data-kept="1"] .kept')
    kept.first.wait_for()
    assert kept.count() == 1 and page.locator('[data-kept="1"]').is_visible()
    assert sent and sent[0] < len(big)  # shrunk to 2048 px before it left the phone
    assert page.locator('input[type="file"]').first.evaluate("e => e.files.length") == 0
    from playwright.sync_api import expect

    expect(page.locator("#decision").get_by_text("Please add at least one photo")).to_have_count(0)
    page.get_by_role("button", name="Submit return request").click()
    page.wait_for_url(re.compile(r".*/requests/R-"))
