"""What the order page tells a shopper before they choose: the return-by date in their language,
quality-only periods as a notice, no misleading "can still be returned" beside a refusal, no
Submit when nothing can be returned, and a gift order starting on an outcome it allows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from babel.dates import format_date

from portal.config import load
from tests.helpers import csrf_token, login_shopper, order_payload, post_json, soup


def open_order(client, number: str, **kw):
    post_json(client, "/api/v1/orders", order_payload(number, **kw))
    assert login_shopper(client, number=number).status_code == 303
    return soup(client.get("/order"))


def test_each_line_says_until_when_it_can_be_returned_in_the_shoppers_language(client, session):
    page = open_order(client, "BY-1", delivered_days_ago=2)
    delivered = (datetime.now(UTC) - timedelta(days=2)).date()
    until = format_date(delivered + timedelta(days=7), "medium", locale="en")
    assert [p.get_text(strip=True) for p in page.select("p.return-by")] == [
        f"You can return this item until {until}."
    ] * 2
    client.post("/lang", data={"lang": "zh_Hans", "csrf_token": csrf_token(str(page))})
    chinese = soup(client.get("/order"))
    assert (
        format_date(delivered + timedelta(days=7), "medium", locale="zh_Hans")
        in chinese.select_one("p.return-by").get_text()
    )


def test_past_the_usual_period_the_quality_window_is_a_notice(client, session):
    page = open_order(client, "BY-2", delivered_days_ago=10)
    notices = [p.get_text(" ", strip=True) for p in page.select("fieldset.line p.notice")]
    assert notices and all("we still accept returns of items that are faulty" in n for n in notices)
    assert not page.select("p.return-by")


def test_a_refused_line_does_not_also_say_it_can_be_returned(client, session):
    final = [dict(line, final_sale=True) for line in order_payload()["lines"]]
    page = open_order(client, "BY-3", lines=final)
    text = page.get_text(" ")
    assert "Can still be returned" not in text
    assert page.select(".badge-not_eligible")
    # Nothing to choose: no Check and no Submit, a sentence instead.
    assert not page.select('button[type="submit"].primary')
    assert "Nothing in this order can be returned now" in text


def test_a_gift_order_starts_on_an_outcome_it_allows(client, session):
    page = open_order(client, "BY-4", gift=True)
    outcomes = page.select('input[name="lines-0-outcome"]')
    assert [o["value"] for o in outcomes] == ["store_credit"]
    assert outcomes[0].has_attr("checked")


def test_the_request_limit_fits_every_photo_the_photo_limits_allow(tmp_path):
    config = load({"INSTANCE_PATH": str(tmp_path)})
    photos = config["MAX_PHOTOS_PER_REQUEST"] * config["MAX_PHOTO_BYTES"]
    assert config["MAX_CONTENT_LENGTH"] > photos
