"""Shopper emails: text and HTML twins with a Date header, the items and their amounts, the next
step and working links; shop-supplied text is escaped in the HTML."""

from __future__ import annotations

from email.utils import parsedate_to_datetime

from bs4 import BeautifulSoup
from sqlalchemy import select

from portal.db.models import OutboxMessage
from portal.jobs import build_email
from tests.helpers import email_text, form_for, login_shopper, order_payload, post_json


def first_email(app, session, template: str):
    for message in session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "email")):
        if message.payload["template"] == template:
            return build_email(app, message)
    raise AssertionError(f"no {template} email")


def test_the_approval_email_has_both_parts_the_items_and_a_date(app, client, session):
    lines = order_payload()["lines"]
    lines[0]["product_name"] = "T-shirt <b>bold</b>"
    post_json(client, "/api/v1/orders", order_payload("EM-1", lines=lines))
    assert login_shopper(client, number="EM-1").status_code == 303
    client.post(
        "/order/request", data=form_for(client, **{"0": {"quantity": "1", "reason": "size_fit", "outcome": "refund"}})
    )
    email = first_email(app, session, "return_approved")
    assert email.get_content_type() == "multipart/alternative"
    assert parsedate_to_datetime(email["Date"]).tzinfo is not None
    text = email_text(email)
    assert "Items:" in text and "- 1 × T-shirt <b>bold</b> (S): CN¥94.00" in text
    html = email.get_body(("html",)).get_content()
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    page = BeautifulSoup(html, "html.parser")
    items = [li.get_text() for li in page.select("ul li")]
    assert "1 × T-shirt <b>bold</b> (S): CN¥94.00" in items
    links = [a["href"] for a in page.select("a[href]")]
    assert any("/label/" in href for href in links)


def test_the_submitted_email_says_what_happens_next(app, client, session):
    lines = order_payload()["lines"]
    lines[0]["unit_price"] = "2999.00"  # above the auto-approval limit: reviewed first
    post_json(client, "/api/v1/orders", order_payload("EM-2", lines=lines))
    assert login_shopper(client, number="EM-2").status_code == 303
    client.post(
        "/order/request", data=form_for(client, **{"0": {"quantity": "1", "reason": "size_fit", "outcome": "refund"}})
    )
    text = email_text(first_email(app, session, "return_submitted"))
    assert "Items:" in text and "Next: our team checks it" in text
