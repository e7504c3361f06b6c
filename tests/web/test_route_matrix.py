"""Every route against anonymous, a shopper of another order, the owning shopper and a staff agent.

The table lives here; a new route that is not in it fails ``test_every_route_is_listed``.
Staff routes are covered role by role in test_staff.py (the table is tests/helpers.py STAFF_ROUTES).
"""

from __future__ import annotations

import pytest

from portal.services.staff import create_staff
from tests.helpers import PASSWORD, STAFF_ROUTES, form_for, get_csrf, login_shopper, order_payload, post_json, sign_in

CALLERS = ("anonymous", "other_shopper", "owner", "agent")
R = "{rma}"
# (method, path, {caller: status}). POSTs carry a valid CSRF token and an empty or minimal form.
MATRIX = [
    ("GET", "/", dict(anonymous=200, other_shopper=200, owner=200, agent=200)),
    ("POST", "/lookup", dict(anonymous=422, other_shopper=422, owner=422, agent=422)),
    ("GET", "/r/not-a-token", dict(anonymous=422, other_shopper=422, owner=422, agent=422)),
    ("POST", "/leave", dict(anonymous=303, other_shopper=303, owner=303, agent=303)),
    ("GET", "/order", dict(anonymous=303, other_shopper=200, owner=200, agent=303)),
    ("POST", "/order/step", dict(anonymous=303, other_shopper=422, owner=422, agent=303)),
    ("GET", "/order/photos/0123456789abcdef", dict(anonymous=303, other_shopper=404, owner=404, agent=303)),
    ("POST", "/order/photos", dict(anonymous=303, other_shopper=400, owner=400, agent=303)),
    ("POST", "/order/request", dict(anonymous=303, other_shopper=422, owner=422, agent=303)),
    ("GET", f"/requests/{R}", dict(anonymous=303, other_shopper=404, owner=200, agent=303)),
    ("POST", f"/requests/{R}/answer", dict(anonymous=303, other_shopper=404, owner=422, agent=303)),
    ("GET", f"/requests/{R}/label", dict(anonymous=303, other_shopper=404, owner=200, agent=303)),
    ("GET", f"/requests/{R}/label.pdf", dict(anonymous=303, other_shopper=404, owner=200, agent=303)),
    # Cancelling comes after the label rows: a cancelled return's label answers 410.
    ("GET", f"/requests/{R}/cancel", dict(anonymous=303, other_shopper=404, owner=200, agent=303)),
    ("POST", f"/requests/{R}/cancel", dict(anonymous=303, other_shopper=404, owner=303, agent=303)),
    ("GET", f"/requests/{R}/photos/1", dict(anonymous=303, other_shopper=404, owner=404, agent=303)),
    # The shopper's own data: ask for a copy or erasure; the copy only for this order's shopper.
    ("GET", f"/requests/{R}/privacy", dict(anonymous=303, other_shopper=404, owner=200, agent=303)),
    ("POST", f"/requests/{R}/privacy", dict(anonymous=303, other_shopper=404, owner=422, agent=303)),
    ("GET", f"/requests/{R}/privacy/999999/copy.json", dict(anonymous=303, other_shopper=404, owner=404, agent=303)),
    ("POST", "/lang", dict(anonymous=303, other_shopper=303, owner=303, agent=303)),
    # The satisfaction survey opens from its signed link alone: a bad link is 404 for everyone.
    ("GET", "/survey/not-a-token", dict(anonymous=404, other_shopper=404, owner=404, agent=404)),
    ("POST", "/survey/not-a-token", dict(anonymous=404, other_shopper=404, owner=404, agent=404)),
    ("GET", "/survey/unsubscribe/not-a-token", dict(anonymous=404, other_shopper=404, owner=404, agent=404)),
    ("POST", "/survey/unsubscribe/not-a-token", dict(anonymous=404, other_shopper=404, owner=404, agent=404)),
    ("POST", "/staff/login", dict(anonymous=422, other_shopper=422, owner=422, agent=422)),
    ("GET", "/healthz", dict(anonymous=200, other_shopper=200, owner=200, agent=200)),
    ("GET", "/readyz", dict(anonymous=200, other_shopper=200, owner=200, agent=200)),
    # Metrics answer loopback (the test client) by default, whoever is signed in.
    ("GET", "/metrics", dict(anonymous=200, other_shopper=200, owner=200, agent=200)),
    ("GET", "/brand.css", dict(anonymous=200, other_shopper=200, owner=200, agent=200)),
    ("GET", "/images/sku/TEE-S", dict(anonymous=302, other_shopper=302, owner=302, agent=302)),
    ("GET", "/brand/logo", dict(anonymous=404, other_shopper=404, owner=404, agent=404)),
    ("POST", "/api/v1/orders", dict(anonymous=401, other_shopper=401, owner=401, agent=401)),
    ("POST", "/api/v1/products", dict(anonymous=401, other_shopper=401, owner=401, agent=401)),
    ("POST", "/api/v1/carrier-events", dict(anonymous=401, other_shopper=401, owner=401, agent=401)),
    ("POST", "/api/v1/store-credit/redeem", dict(anonymous=401, other_shopper=401, owner=401, agent=401)),
    ("GET", "/static/vendor/htmx-2.0.11.min.js", dict(anonymous=200, other_shopper=200, owner=200, agent=200)),
]


@pytest.fixture
def rma(client, order, session):
    create_staff(session, "agent@example.com", "Agent", "agent", PASSWORD)
    post_json(client, "/api/v1/orders", order_payload("SO-2002", email="other@example.com"))
    owner = client.application.test_client()
    login_shopper(owner)
    response = owner.post(
        "/order/request", data=form_for(owner, **{"0": {"quantity": "1", "reason": "size_fit", "outcome": "refund"}})
    )
    return response.headers["Location"].rsplit("/", 1)[1]


def as_caller(app, caller):
    client = app.test_client()
    if caller == "other_shopper":
        login_shopper(client, number="SO-2002", contact="other@example.com")
    elif caller == "owner":
        login_shopper(client)
    elif caller == "agent":
        sign_in(client, "agent@example.com")
    return client


@pytest.mark.parametrize("caller", CALLERS)
def test_route_matrix(app, rma, caller):
    """Every route for one caller; each request from a fresh client signed in as that caller."""
    wrong = []
    for method, path, expected in MATRIX:
        client = as_caller(app, caller)
        url = path.replace(R, rma)
        if method == "POST":
            data = {"csrf_token": get_csrf(client)} if not path.startswith("/api/") else None
            response = client.post(url, data=data)
        else:
            response = client.get(url)
        with response:
            if response.status_code != expected[caller]:
                wrong.append(f"{method} {path}: {response.status_code}, expected {expected[caller]}")
    assert not wrong, wrong


def test_every_route_is_listed(app):
    listed = {(m, p.split("{")[0].rstrip("/")) for m, p, _ in MATRIX} | {
        (m, p.split("R-")[0].split("999999")[0].rstrip("/")) for m, p, _ in STAFF_ROUTES
    }
    for rule in app.url_map.iter_rules():
        prefix = rule.rule.split("<")[0].rstrip("/")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert any(
                m == method and (p == prefix or p.startswith(prefix) or prefix.startswith(p) and p) for m, p in listed
            ), (method, rule.rule)
