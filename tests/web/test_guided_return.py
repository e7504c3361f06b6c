"""The guided return, step by step, as a browser without JavaScript and as htmx would send it:
each step shows only its own fields and carries the others, never lands past an incomplete step,
keeps photos across steps and Back, and ends on a review whose estimate is the refund later paid."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from sqlalchemy import select

from portal.db.models import Photo, ReturnRequest
from tests.helpers import (
    csrf_token,
    form_values,
    jpeg,
    login_shopper,
    order_payload,
    post_json,
    refund_once_back_as_new,
    soup,
    step,
)


@pytest.fixture
def shopper(client, order):
    assert login_shopper(client).status_code == 303
    return client


def shown_step(page) -> str:
    return page.select_one('input[name="step"]')["value"]


def test_the_items_step_shows_cards_to_tap_with_picture_price_and_return_by_date(shopper):
    page = soup(shopper.get("/order"))
    assert shown_step(page) == "items"
    cards = page.select("label.item-card")
    assert len(cards) == 2
    tee = cards[0]
    assert tee.select_one('input[type="checkbox"][name="lines-0-pick"]') is not None
    assert tee.select_one("img")["src"] == "/images/sku/TEE-S"
    text = tee.get_text(" ", strip=True)
    # 2 x 99.00 less a 10.00 discount: 94.00 each.
    assert "Paid CN¥94.00 each" in text and "You can return this item until" in text
    # How many only where more than one can go back: the T-shirt (2), not the scarf (1).
    assert page.select_one('select[name="lines-0-quantity"]') is not None
    assert page.select_one('select[name="lines-1-quantity"]') is None
    # Nothing chosen yet: the next step asks for one.
    refused = step(shopper, form_values(str(page), "form.return-form"), "items")
    assert refused.status_code == 422
    assert "Choose at least one item to return." in soup(refused).select_one('[role="alert"]').get_text(" ")
    assert shown_step(soup(refused)) == "items"


def walk_to(client, stop: str, **choices) -> tuple:
    """From the items step to ``stop``, choosing the T-shirt with ``choices`` on the way."""
    page = soup(client.get("/order"))
    data = form_values(str(page), "form.return-form")
    data["lines-0-pick"] = "1"
    for name, value in choices.items():
        data[f"lines-0-{name}"] = value
    at = "items"
    while at != stop:
        response = step(client, data, at)
        assert response.status_code == 200, soup(response).select_one('[role="alert"]')
        page = soup(response)
        at = shown_step(page)
        data = {**form_values(str(page), "form.return-form"), **{f"lines-0-{k}": v for k, v in choices.items()}}
    return page, data


def test_each_step_shows_its_own_fields_and_carries_the_others(shopper):
    page, data = walk_to(shopper, "reasons", quantity="2")
    assert [i["value"] for i in page.select('input[name="lines-0-reason"]')][:1] == ["defective"]
    assert page.select_one('input[type="hidden"][name="lines-0-quantity"]')["value"] == "2"
    assert not page.select('input[type="radio"][name="lines-1-reason"]')  # the scarf is not going back: nothing to ask
    assert not page.select('input[type="file"]')

    page, data = walk_to(shopper, "details", quantity="2", reason="size_fit")
    assert [i["value"] for i in page.select('input[name="lines-0-sub_reason"]')] == ["too_small", "too_large"]
    assert not page.select('input[type="file"]')  # a size problem needs no photo
    page, data = walk_to(shopper, "details", quantity="2", reason="damaged")
    assert page.select_one('input[type="file"][name="lines-0-photos"]') is not None
    assert page.select_one('input[type="hidden"][name="lines-0-reason"]')["value"] == "damaged"


def test_a_missing_photo_keeps_the_shopper_on_the_step_with_the_item_named(shopper, app, session):
    page, data = walk_to(shopper, "details", reason="damaged")
    refused = step(shopper, data, "details")
    assert refused.status_code == 422
    page = soup(refused)
    assert shown_step(page) == "details"
    assert "T-shirt: Please add at least one photo" in page.select_one('[role="alert"]').get_text(" ")
    photo = page.select_one('input[name="lines-0-photos"]')
    assert photo["aria-invalid"] == "true"

    # Without JavaScript the photo goes with the form; it is kept across Next, Back and Next again.
    sent = step(shopper, {**data, "lines-0-photos": (io.BytesIO(jpeg()), "torn.jpg")}, "details")
    assert sent.status_code == 200
    page = soup(sent)
    assert shown_step(page) == "outcome"
    back = soup(step(shopper, form_values(str(page), "form.return-form"), "outcome", go="back"))
    assert shown_step(back) == "details"
    assert len(back.select('input[name="lines-0-remove_photo"]')) == 1
    review, data = walk_to(shopper, "review", reason="damaged", outcome="refund")
    assert "1 photo" in review.select_one(".review-lines").get_text(" ")
    filed = shopper.post("/order/request", data=form_values(str(review), "form.return-form"))
    assert filed.status_code == 303
    assert len(session.scalars(select(Photo)).all()) == 1


def test_a_later_step_is_never_shown_while_an_earlier_one_is_incomplete(shopper):
    page = soup(shopper.get("/order"))
    data = {**form_values(str(page), "form.return-form"), "lines-0-quantity": "1", "lines-0-outcome": "refund"}
    # A forged jump to the review with no reason lands on the reasons step, the missing choice marked.
    response = step(shopper, data, "outcome")
    assert response.status_code == 422
    page = soup(response)
    assert shown_step(page) == "reasons"
    assert "T-shirt: Choose a reason." in page.select_one('[role="alert"]').get_text(" ")
    # Submitting such a form files nothing and shows the same step.
    submitted = shopper.post("/order/request", data=data)
    assert submitted.status_code == 422 and shown_step(soup(submitted)) == "reasons"


def test_htmx_gets_the_next_step_as_a_fragment(shopper):
    page = soup(shopper.get("/order"))
    data = {**form_values(str(page), "form.return-form"), "lines-0-pick": "1"}
    fragment = step(shopper, data, "items", htmx=True)
    assert fragment.status_code == 200 and "HX-Request" in fragment.headers["Vary"]
    body = fragment.get_data(as_text=True)
    assert body.lstrip().startswith('<div id="wizard"') and "<html" not in body
    assert shown_step(soup(body)) == "reasons"
    form = soup(body).select_one("form.return-form")
    assert form["hx-post"] == "/order/step" and form["hx-target"] == "#wizard"


def test_the_outcome_step_offers_exchanges_in_stock_with_pictures_and_store_credit_with_its_bonus(app, shopper):
    app.config["STORE_CREDIT_BONUS_PERCENT"] = "10"
    page, _ = walk_to(shopper, "outcome", reason="size_fit")
    outcomes = [i["value"] for i in page.select('input[name="lines-0-outcome"]')]
    assert outcomes == ["refund", "store_credit", "exchange"]
    assert "plus a 10% bonus" in page.select_one(".bonus").get_text()
    variants = page.select(".variant-card")
    assert [v.select_one("input")["value"] for v in variants] == ["TEE-L"]  # M is out of stock
    assert variants[0].select_one("img")["src"] == "/images/sku/TEE-L"
    refused = step(shopper, {**form_values(str(page), "form.return-form"), "lines-0-outcome": "exchange"}, "outcome")
    assert refused.status_code == 422
    assert "Choose the size or colour you want instead." in soup(refused).get_text(" ")


def test_a_gift_order_offers_only_what_its_policy_allows(client, order, session):
    post_json(client, "/api/v1/orders", order_payload("GIFT-2", gift=True))
    assert login_shopper(client, number="GIFT-2").status_code == 303
    page, _ = walk_to(client, "outcome", reason="size_fit")
    assert [i["value"] for i in page.select('input[name="lines-0-outcome"]')] == ["store_credit"]


@pytest.mark.parametrize(
    ("outcome", "bonus", "total_class"),
    [("refund", "", "refund-total"), ("store_credit", "10", "credit-total")],
)
def test_the_review_estimate_is_the_refund_later_paid(app, client, order, session, outcome, bonus, total_class):
    app.config["CUSTOMER_RETURN_FEE"] = "15.00"
    app.config["STORE_CREDIT_BONUS_PERCENT"] = bonus
    assert login_shopper(client).status_code == 303
    review, data = walk_to(client, "review", quantity="2", reason="size_fit", outcome=outcome)
    table = review.select_one("table.estimate")
    rows = {
        r.select_one("td").get_text(strip=True): r.select_one("td.amount").get_text(strip=True)
        for r in table.select("tbody tr")
        if r.select_one("td")
    }
    assert rows["Price paid"] == "CN¥198.00" and rows["Share of the discount"] == "-CN¥10.00"
    assert rows["Return shipping fee"] == "-CN¥15.00"
    shown = table.select_one(f"td.{total_class}").get_text(strip=True)
    assert "A return shipping fee of CN¥15.00 will be deducted" in review.select_one(".postage").get_text()

    assert client.post("/order/request", data=data).status_code == 303
    paid = refund_once_back_as_new(app, client, session, session.scalars(select(ReturnRequest)).one())
    total = paid.refund_total if outcome == "refund" else paid.store_credit_total
    assert shown == f"CN¥{total:,.2f}"
    if bonus:
        assert paid.bonus_total > Decimal(0)


def test_the_steps_speak_chinese(shopper):
    page = soup(shopper.get("/order"))
    shopper.post("/lang", data={"lang": "zh_Hans", "csrf_token": csrf_token(str(page))})
    page, _ = walk_to(shopper, "reasons")
    title = page.select_one("h2.step-title").get_text(" ", strip=True)
    assert "第 2 步" in title and "Why" not in title
