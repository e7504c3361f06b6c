"""The guided return in a real browser on a phone, in both languages, with and without JavaScript:
tap the item, give the reason, add a photo, choose the outcome, review the estimate, go Back and
forth (the photo stays), submit; the estimate shown is what the refund pays once the parcel is in."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from tests.helpers import PRODUCTS, browser_shopper_sign_in, jpeg, order_payload, post_json, refund_once_back_as_new

TITLES = {
    "en": {"reasons": "Why are you returning them?", "review": "Check and submit"},
    "zh_Hans": {"reasons": "退货原因是什么？", "review": "确认并提交"},
}


def on_step(page, name: str) -> None:
    page.locator(f'input[name="step"][value="{name}"]').wait_for(state="attached")


def go_on(page) -> None:
    page.locator(".step-nav button.primary").click()


@pytest.mark.parametrize("js", [True, False], ids=["js", "no-js"])
@pytest.mark.parametrize("lang", ["en", "zh_Hans"])
def test_the_guided_return_end_to_end(app, client, session, live_server, browser, lang, js):
    from portal.db.models import ReturnRequest
    from portal.services.review import approve_return
    from tests.helpers import warehouse_worker

    post_json(client, "/api/v1/products", PRODUCTS)
    post_json(client, "/api/v1/orders", order_payload())
    context = browser.new_context(viewport={"width": 390, "height": 844}, java_script_enabled=js)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        browser_shopper_sign_in(page, live_server)
        if lang == "zh_Hans":
            page.get_by_role("button", name="简体中文").click()
            page.get_by_role("button", name="下一步").wait_for()
        on_step(page, "items")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the phone

        page.locator("label.item-card").first.click()  # a tap on the card chooses it
        page.locator('select[name="lines-0-quantity"]').select_option("1")
        go_on(page)
        on_step(page, "reasons")
        assert TITLES[lang]["reasons"] in page.locator(".step-title").inner_text()
        page.locator('label.choice:has(input[value="damaged"])').click()
        go_on(page)
        on_step(page, "details")

        # No photo yet: the step says so and stays.
        go_on(page)
        page.locator('[role="alert"]').first.wait_for()
        on_step(page, "details")
        photo = {"name": "torn.jpg", "mimeType": "image/jpeg", "buffer": jpeg()}
        page.locator('input[name="lines-0-photos"]').set_input_files(photo)
        if js:  # sent at once, shown with Remove
            page.locator('[data-kept="1"] .kept').first.wait_for()
        go_on(page)
        on_step(page, "outcome")
        page.locator('label.choice:has(input[value="refund"])').click()
        go_on(page)
        on_step(page, "review")
        assert TITLES[lang]["review"] in page.locator(".step-title").inner_text()
        shown = page.locator("td.refund-total").inner_text()

        # Back twice: the photo is still there; forward again to the same review.
        page.locator(".step-nav button.secondary").click()
        on_step(page, "outcome")
        assert page.locator('input[name="lines-0-outcome"][value="refund"]').is_checked()
        page.locator(".step-nav button.secondary").click()
        on_step(page, "details")
        assert page.locator('input[name="lines-0-remove_photo"]').count() == 1
        go_on(page)
        on_step(page, "outcome")
        go_on(page)
        on_step(page, "review")
        assert page.locator("td.refund-total").inner_text() == shown
        go_on(page)  # Submit
        page.wait_for_url(re.compile(r".*/requests/R-"))
    finally:
        context.close()
    assert not errors, errors

    # The parcel comes back as new: the refund is the estimate.
    req = session.scalars(select(ReturnRequest)).one()
    assert len(req.lines[0].photos) == 1
    if req.status == "pending_review":
        from portal.domain.actors import Actor

        approve_return(session, req, Actor.staff(warehouse_worker(session)))
        session.refresh(req)
    paid = refund_once_back_as_new(app, client, session, req)
    assert re.sub(r"[^\d.]", "", shown) == f"{paid.refund_total:.2f}"
