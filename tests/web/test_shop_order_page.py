"""What the order page tells a shopper before they choose: the return-by date in their language,
quality-only periods as a notice, no misleading "can still be returned" beside a refusal, no
Submit when nothing can be returned, and a gift order starting on an outcome it allows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from babel.dates import format_date

from portal.config import load
from tests.helpers import csrf_token, form_values, login_shopper, order_payload, post_json, soup


def open_order(client, number: str, **kw):
    post_json(client, "/api/v1/orders", order_payload(number, **kw))
    assert login_shopper(client, number=number).status_code == 303
    return soup(client.get("/order"))


def test_each_line_says_until_when_it_can_be_returned_in_the_shoppers_language(client, session):
    page = open_order(client, "BY-1", delivered_days_ago=2)
    # Days are counted in the policy's time zone (the default policy's: Asia/Shanghai), not in UTC.
    delivered = (datetime.now(UTC) - timedelta(days=2)).astimezone(ZoneInfo("Asia/Shanghai")).date()
    until = format_date(delivered + timedelta(days=7), "medium", locale="en")
    assert [p.get_text(strip=True) for p in page.select(".return-by")] == [
        f"You can return this item until {until}."
    ] * 2
    client.post("/lang", data={"lang": "zh_Hans", "csrf_token": csrf_token(str(page))})
    chinese = soup(client.get("/order"))
    assert (
        format_date(delivered + timedelta(days=7), "medium", locale="zh_Hans")
        in chinese.select_one(".return-by").get_text()
    )


def test_past_the_usual_period_the_quality_window_is_a_notice(client, session):
    page = open_order(client, "BY-2", delivered_days_ago=10)
    notices = [p.get_text(" ", strip=True) for p in page.select(".item-card .notice")]
    assert notices and all("we still accept returns of items that are faulty" in n for n in notices)
    assert not page.select(".return-by")
    # The reasons step then offers the quality reasons only.
    data = {**form_values(str(page), "form.return-form"), "lines-0-pick": "1", "step": "items", "go": "next"}
    reasons = soup(client.post("/order/step", data=data))
    offered = [i["value"] for i in reasons.select('input[name="lines-0-reason"]')]
    assert offered == ["defective", "damaged", "wrong_item", "not_as_described"]


def test_a_refused_line_does_not_also_say_it_can_be_returned(client, session):
    final = [dict(line, final_sale=True) for line in order_payload()["lines"]]
    page = open_order(client, "BY-3", lines=final)
    text = page.get_text(" ")
    assert "Can still be returned" not in text
    assert page.select(".badge-not_eligible")
    # Nothing to choose: no steps and no Submit, a sentence instead.
    assert not page.select('button[type="submit"].primary')
    assert "Nothing in this order can be returned now" in text


def test_a_gift_order_starts_on_an_outcome_it_allows(client, session):
    page = open_order(client, "BY-4", gift=True)
    assert page.select_one('input[name="lines-0-outcome"]')["value"] == "store_credit"


def test_the_request_limit_fits_every_photo_the_photo_limits_allow(tmp_path):
    config = load({"INSTANCE_PATH": str(tmp_path)})
    photos = config["MAX_PHOTOS_PER_REQUEST"] * config["MAX_PHOTO_BYTES"]
    assert config["MAX_CONTENT_LENGTH"] > photos


def test_a_missing_choice_is_named_not_read_as_a_refusal(client, order, session):
    from sqlalchemy import func, select

    from portal.db.models import ReturnRequest
    from tests.helpers import form_for

    assert login_shopper(client).status_code == 303
    data = form_for(client, **{"0": {"quantity": "1", "outcome": "refund"}})  # no reason yet
    submitted = client.post("/order/request", data=data)
    assert submitted.status_code == 422
    page = soup(submitted)
    text = page.get_text(" ")
    assert "T-shirt: Choose a reason." in text
    assert "Cannot be returned" not in text and not page.select(".badge-not_eligible")
    reason = page.select('input[name="lines-0-reason"]')
    assert reason and "Choose a reason." in reason[0].find_parent("fieldset").get_text(" ")
    assert session.scalar(select(func.count(ReturnRequest.id))) == 0

    exchange = form_for(client, **{"0": {"quantity": "1", "reason": "size_fit", "outcome": "exchange"}})
    refused = soup(client.post("/order/request", data=exchange)).get_text(" ")
    assert "T-shirt: Choose the size or colour you want instead." in refused


# --- photos are kept across Check, a refused submit and Back ---------------------------


def with_photo(data: dict, name: str = "torn.jpg") -> dict:
    import io

    from tests.helpers import jpeg

    return {**data, "lines-0-photos": [(io.BytesIO(jpeg()), name)]}


def test_photos_survive_a_step_without_javascript_and_are_filed(app, client, order, session):
    from pathlib import Path

    from sqlalchemy import select

    from portal.db.models import Photo
    from tests.helpers import form_for

    assert login_shopper(client).status_code == 303
    data = form_for(client, **{"0": {"quantity": "1", "reason": "damaged", "outcome": "refund"}})
    checked = client.post("/order/step", data={**with_photo(data), "step": "details", "go": "next"})
    assert checked.status_code == 200
    page = soup(checked)
    assert page.select_one('input[name="step"]')["value"] == "outcome"
    back = soup(client.post("/order/step", data={**data, "step": "outcome", "go": "back"}))
    kept = back.select('input[name="lines-0-remove_photo"]')
    assert len(kept) == 1
    thumb = back.select_one(".kept-photos img")["src"]
    assert client.get(thumb).status_code == 200 and client.get(thumb).mimetype == "image/jpeg"
    stranger = app.test_client()
    login_shopper(stranger, number="SO-1001")  # the same order, another session: not its photos
    assert stranger.get(thumb).status_code == 404

    # Submitting without choosing the photo again files it.
    filed = client.post(
        "/order/request", data=form_for(client, **{"0": {"quantity": "1", "reason": "damaged", "outcome": "refund"}})
    )
    assert filed.status_code == 303
    assert len(session.scalars(select(Photo)).all()) == 1
    staged_dir = Path(app.config["PHOTO_PATH"]) / "staging"
    assert staged_dir.is_dir() and not [p for p in staged_dir.rglob("*") if p.is_file()]  # staged copies dropped
    assert client.get(thumb).status_code == 404


def test_a_refused_submit_keeps_the_photos_and_a_removed_one_is_gone(app, client, order, session):
    from sqlalchemy import func, select

    from portal.db.models import ReturnRequest
    from tests.helpers import form_for

    assert login_shopper(client).status_code == 303
    no_reason = form_for(client, **{"0": {"quantity": "1", "outcome": "refund"}})
    refused = client.post("/order/request", data=with_photo(no_reason), content_type="multipart/form-data")
    assert refused.status_code == 422
    data = form_for(client, **{"0": {"quantity": "1", "reason": "damaged", "outcome": "refund"}})
    details = soup(client.post("/order/step", data={**data, "step": "outcome", "go": "back"}))
    kept = details.select('input[name="lines-0-remove_photo"]')
    assert len(kept) == 1
    removed = client.post("/order/request", data={**data, "lines-0-remove_photo": kept[0]["value"]})
    assert removed.status_code == 422 and "Please add at least one photo" in removed.get_data(as_text=True)
    assert not soup(removed).select('input[name="lines-0-remove_photo"]')
    assert session.scalar(select(func.count(ReturnRequest.id))) == 0


def test_cancelling_asks_first_and_says_what_it_does(client, order, session):
    from sqlalchemy import select

    from portal.db.models import ReturnRequest
    from tests.helpers import form_for

    assert login_shopper(client).status_code == 303
    data = form_for(client, **{"0": {"quantity": "1", "reason": "size_fit", "outcome": "refund"}})
    rma = client.post("/order/request", data=data).headers["Location"].rsplit("/", 1)[1]
    status = soup(client.get(f"/requests/{rma}"))
    link = status.select_one(f'a[href="/requests/{rma}/cancel"]')
    assert link is not None and not status.select(f'form[action="/requests/{rma}/cancel"]')
    confirm = soup(client.get(link["href"]))
    text = confirm.get_text(" ")
    assert "pickup is called off" in text and "Nothing will be refunded" in text
    assert session.scalars(select(ReturnRequest.status)).one() == "label_issued"  # asking changed nothing
    form = confirm.select_one(f'form[action="/requests/{rma}/cancel"]')
    values = {i["name"]: i.get("value", "") for i in form.select("input[name]")}
    assert client.post(form["action"], data=values).status_code == 303
    session.expire_all()
    assert session.scalars(select(ReturnRequest.status)).one() == "cancelled"
    # Cancelled: the confirmation page no longer offers it.
    assert client.get(f"/requests/{rma}/cancel").status_code == 303


def test_a_photo_sent_as_soon_as_it_is_chosen_is_kept_or_refused_with_the_reason(app, client, order, session):
    import io

    from tests.helpers import csrf_token, form_for, jpeg

    assert login_shopper(client).status_code == 303
    token = csrf_token(client.get("/order").get_data(as_text=True))

    def send(line_id: str, data: bytes, name: str = "torn.jpg"):
        return client.post(
            "/order/photos",
            data={"line_id": line_id, "photo": (io.BytesIO(data), name)},
            headers={"X-CSRFToken": token},
            content_type="multipart/form-data",
        )

    kept = send("1", jpeg())
    assert kept.status_code == 200
    entry = soup(kept).select_one('input[type="checkbox"]')
    assert entry["name"] == "lines-0-remove_photo"
    data = {**form_for(client, **{"0": {"quantity": "1", "reason": "damaged"}}), "step": "outcome", "go": "back"}
    page = soup(client.post("/order/step", data=data))
    assert [i["value"] for i in page.select('input[name="lines-0-remove_photo"]')] == [entry["value"]]

    refused = send("1", b"not a picture", "notes.txt")
    assert refused.status_code == 422 and "is not a JPEG, PNG, WebP or HEIC photo" in refused.get_data(as_text=True)
    assert send("nope", jpeg()).status_code == 400
    for _ in range(app.config["MAX_PHOTOS_PER_LINE"] - 1):
        assert send("1", jpeg()).status_code == 200
    full = send("1", jpeg())
    assert full.status_code == 422 and "at most" in full.get_data(as_text=True)
    # Without the token nothing is kept.
    assert client.post("/order/photos", data={"line_id": "2"}).status_code == 400
