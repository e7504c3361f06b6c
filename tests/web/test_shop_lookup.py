"""Arriving: lookup form, signed QR links, throttling, equal answers for misses."""

from __future__ import annotations

import re
import time

import pytest
import time_machine
from itsdangerous import URLSafeTimedSerializer

from portal.links import RETURN_LINK_SALT, make_return_token
from tests.helpers import get_csrf, login_shopper, soup


def strip_tokens(page) -> str:
    """The page without the CSRF token and the shopper's own typed values (echoed back into the form)."""
    doc = soup(page)
    for field in doc.find_all("input", attrs={"name": ["csrf_token", "order_number", "contact"]}):
        field["value"] = ""
    for el in doc.find_all(attrs={"hx-headers": True}):
        el["hx-headers"] = "TOKEN"
    return str(doc)


def test_start_page_has_labelled_fields(client):
    html = client.get("/").get_data(as_text=True)
    assert '<label for="order_number">' in html
    assert '<label for="contact">' in html
    assert 'action="/lookup"' in html and 'method="post"' in html


@pytest.mark.parametrize("contact", ["li.wei@example.com", "LI.WEI@example.com ", "200001", " 200 001 "])
def test_lookup_by_email_or_postcode(client, order, contact):
    response = login_shopper(client, contact=contact)
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/order")
    page = client.get("/order")
    assert page.status_code == 200
    assert "SO-1001" in page.get_data(as_text=True)


def test_order_number_is_case_and_space_insensitive(client, order):
    assert login_shopper(client, number=" so-1001 ").status_code == 303


def test_unknown_order_and_wrong_contact_look_the_same(client, order):
    token = get_csrf(client)
    unknown = client.post(
        "/lookup", data={"csrf_token": token, "order_number": "NOPE-1", "contact": "li.wei@example.com"}
    )
    wrong = client.post(
        "/lookup", data={"csrf_token": token, "order_number": "SO-1001", "contact": "other@example.com"}
    )
    assert unknown.status_code == wrong.status_code == 422
    assert strip_tokens(unknown.get_data(as_text=True)) == strip_tokens(wrong.get_data(as_text=True))
    assert "could not find an order" in wrong.get_data(as_text=True)


def test_lookup_without_csrf_token_is_refused(client, order):
    response = client.post("/lookup", data={"order_number": "SO-1001", "contact": "li.wei@example.com"})
    assert response.status_code == 400


def test_empty_fields_get_a_clear_message(client):
    token = get_csrf(client)
    response = client.post("/lookup", data={"csrf_token": token, "order_number": "", "contact": ""})
    assert response.status_code == 422
    assert "This field is required" in response.get_data(as_text=True)


def _wrong(client, token, number="SO-1001", addr="10.0.0.1"):
    return client.post(
        "/lookup",
        data={"csrf_token": token, "order_number": number, "contact": "bad@example.com"},
        environ_base={"REMOTE_ADDR": addr},
    )


def test_twenty_wrong_tries_from_one_address_get_429(client, order):
    token = get_csrf(client)
    statuses = [_wrong(client, token, number=f"X-{i}").status_code for i in range(20)]
    assert set(statuses) == {422}
    blocked = _wrong(client, token, number="X-99")
    assert blocked.status_code == 429
    assert "Retry-After" in blocked.headers
    assert re.search(r"paused for \d+ minutes?", blocked.get_data(as_text=True))


def test_twenty_wrong_tries_on_one_order_from_many_addresses_get_429(client, order):
    token = get_csrf(client)
    for i in range(20):
        assert _wrong(client, token, addr=f"10.1.0.{i}").status_code == 422
    assert _wrong(client, token, addr="10.2.0.1").status_code == 429
    # Another order from a fresh address is unaffected.
    assert _wrong(client, token, number="OTHER-1", addr="10.3.0.1").status_code == 422


def test_successful_lookups_do_not_count(client, order):
    for _ in range(25):
        assert login_shopper(client).status_code == 303


def test_shopper_is_let_back_in_after_the_window(client, order):
    token = get_csrf(client)
    with time_machine.travel(time.time(), tick=True) as traveller:
        for i in range(20):
            _wrong(client, token, addr=f"10.4.0.{i}")
        assert _wrong(client, token, addr="10.5.0.1").status_code == 429
        traveller.shift(16 * 60)
        assert login_shopper(client).status_code == 303


# --- the QR link ----------------------------------------------------------------------


def test_return_link_swaps_token_for_session_and_redirects(client, app, order):
    token = order["return_link"].rsplit("/", 1)[1]
    response = client.get(f"/r/{token}")
    assert response.status_code == 303
    assert response.headers["Location"] == "/order"
    assert token not in response.headers["Location"]
    assert "SO-1001" in client.get("/order").get_data(as_text=True)


def _unknown_page(client) -> str:
    token = get_csrf(client)
    return client.post(
        "/lookup", data={"csrf_token": token, "order_number": "NOPE", "contact": "a@b.example"}
    ).get_data(as_text=True)


@pytest.mark.parametrize("kind", ["tampered", "wrong-purpose", "expired", "unknown-order", "garbage"])
def test_bad_links_get_the_unknown_order_page(client, app, order, kind):
    secret = app.config["SECRET_KEY"]
    good = make_return_token(secret, "SO-1001")
    if kind == "tampered":
        token = good[:-2] + ("AA" if good[-2:] != "AA" else "BB")
    elif kind == "wrong-purpose":
        token = URLSafeTimedSerializer(secret, salt="some-other-purpose").dumps({"o": "SO-1001"})
    elif kind == "expired":
        with time_machine.travel(time.time() - 181 * 86400, tick=False):
            token = make_return_token(secret, "SO-1001")
    elif kind == "unknown-order":
        token = make_return_token(secret, "NOPE-404")
    else:
        token = "not-a-token"
    response = client.get(f"/r/{token}")
    assert response.status_code == 422
    assert strip_tokens(response.get_data(as_text=True)) == strip_tokens(_unknown_page(client))
    assert client.get("/order").status_code == 303  # no session was granted


def test_salt_is_purpose_specific():
    assert "return-link" in RETURN_LINK_SALT


def test_order_page_without_session_goes_to_start(client):
    response = client.get("/order")
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
