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


def test_a_missing_choice_is_named_not_read_as_a_refusal(client, order, session):
    from sqlalchemy import func, select

    from portal.db.models import ReturnRequest
    from tests.helpers import form_for

    assert login_shopper(client).status_code == 303
    data = form_for(client, **{"0": {"quantity": "1", "outcome": "refund"}})  # no reason yet
    live = soup(client.post("/order/check", data=data, headers={"HX-Request": "true"}))
    text = live.get_text(" ")
    assert "Almost there" in text and "T-shirt: Choose a reason." in text
    assert "Cannot be returned" not in text and not live.select(".badge-not_eligible")

    submitted = client.post("/order/request", data=data)
    assert submitted.status_code == 422
    page = soup(submitted)
    reason = page.select_one('select[name="lines-0-reason"]')
    assert reason["aria-invalid"] == "true"
    assert "Choose a reason." in reason.find_parent(class_="field").get_text(" ")
    assert session.scalar(select(func.count(ReturnRequest.id))) == 0

    exchange = form_for(client, **{"0": {"quantity": "1", "reason": "size_fit", "outcome": "exchange"}})
    live = soup(client.post("/order/check", data=exchange, headers={"HX-Request": "true"})).get_text(" ")
    assert "T-shirt: Choose the size or colour you want instead." in live


# --- photos are kept across Check, a refused submit and Back ---------------------------


def with_photo(data: dict, name: str = "torn.jpg") -> dict:
    import io

    from tests.helpers import jpeg

    return {**data, "lines-0-photos": [(io.BytesIO(jpeg()), name)]}


def test_photos_survive_the_check_without_javascript_and_are_filed(app, client, order, session):
    from pathlib import Path

    from sqlalchemy import select

    from portal.db.models import Photo
    from tests.helpers import form_for

    assert login_shopper(client).status_code == 303
    data = form_for(client, **{"0": {"quantity": "1", "reason": "damaged", "outcome": "refund"}})
    checked = client.post("/order/check", data=with_photo(data), content_type="multipart/form-data")
    assert checked.status_code == 200
    page = soup(checked)
    assert "Please add at least one photo" not in page.select_one("#decision").get_text(" ")
    kept = page.select('input[name="lines-0-remove_photo"]')
    assert len(kept) == 1
    thumb = page.select_one(".kept-photos img")["src"]
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
    kept = soup(refused).select('input[name="lines-0-remove_photo"]')
    assert len(kept) == 1
    data = form_for(client, **{"0": {"quantity": "1", "reason": "damaged", "outcome": "refund"}})
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

    from tests.helpers import csrf_token, jpeg

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
    page = soup(client.get("/order"))
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
