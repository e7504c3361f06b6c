"""The shop API: signed, upserting, strict about bad input, never a 500."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from portal.db.models import Order, OrderLine, Variant
from tests.helpers import PRODUCTS, order_payload, post_json, signed_headers


def count_orders(session) -> int:
    return session.scalar(select(func.count(Order.id)))


def test_create_then_same_payload_updates(client, session):
    payload = order_payload()
    first = post_json(client, "/api/v1/orders", payload)
    assert first.status_code == 201
    body = first.get_json()
    assert body["order_number"] == "SO-1001"
    assert body["return_link"].startswith("http://localhost/r/")
    second = post_json(client, "/api/v1/orders", payload)
    assert second.status_code == 200
    assert count_orders(session) == 1
    assert session.scalar(select(func.count(OrderLine.id))) == 2


def test_later_delivered_at_updates_order(client, session):
    payload = order_payload(delivered_days_ago=None)
    assert post_json(client, "/api/v1/orders", payload).status_code == 201
    delivered = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    payload["delivered_at"] = delivered.isoformat()
    assert post_json(client, "/api/v1/orders", payload).status_code == 200
    order = session.scalars(select(Order)).one()
    assert order.delivered_at == delivered


def test_money_is_decimal_and_exact(client, session):
    post_json(client, "/api/v1/orders", order_payload())
    line = session.scalars(select(OrderLine).where(OrderLine.line_id == "1")).one()
    assert str(line.unit_price.normalize()) == "99"
    assert line.discount == line.discount.__class__("10.00")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Portal-Timestamp": "abc", "X-Portal-Signature": "sha256=00"},
        "wrong-secret",
        "stale",
        "future",
    ],
    ids=["missing", "malformed", "wrong-secret", "stale", "future"],
)
def test_bad_signatures_are_401_and_write_nothing(client, session, headers):
    body = json.dumps(order_payload()).encode()
    if headers == "wrong-secret":
        headers = signed_headers(body, secret="not-the-secret")
    elif headers == "stale":
        headers = signed_headers(
            body, timestamp=int(time.time()) - 310
        )  # well past the 300 s window (int() drops up to a second)
    elif headers == "future":
        headers = signed_headers(body, timestamp=int(time.time()) + 310)
    response = client.post("/api/v1/orders", data=body, headers=headers)
    assert response.status_code == 401
    assert response.is_json
    assert count_orders(session) == 0


def test_signature_covers_the_body(client, session):
    body = json.dumps(order_payload()).encode()
    headers = signed_headers(body)
    tampered = body.replace(b"99.00", b"1.00")
    assert client.post("/api/v1/orders", data=tampered, headers=headers).status_code == 401
    assert count_orders(session) == 0


def _with(payload: dict, path: str, value) -> dict:
    target = payload
    parts = path.split(".")
    for part in parts[:-1]:
        target = target[int(part)] if isinstance(target, list) else target[part]
    last = parts[-1]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return payload


@pytest.mark.parametrize(
    "path,value,field",
    [
        ("lines.0.quantity", -1, "lines[0].quantity"),
        ("lines.0.quantity", "two", "lines[0].quantity"),
        ("currency", "XYZ", "currency"),
        ("lines.0.discount", "500.00", "lines[0].discount"),
        ("lines.0.unit_price", 9.99, "lines[0].unit_price"),
        ("placed_at", "2026-01-01T10:00:00", "placed_at"),
        ("customer", "nobody", "customer"),
        ("gift", "yes", "gift"),
    ],
)
def test_invalid_orders_are_400_with_field_errors(client, session, path, value, field):
    response = post_json(client, "/api/v1/orders", _with(order_payload(), path, value))
    assert response.status_code == 400
    errors = response.get_json()["errors"]
    assert field in {e["field"] for e in errors}, errors
    assert count_orders(session) == 0


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b"[]", b"null", b'"text"', b"[" * 5000])
def test_unparseable_bodies_are_400(client, session, body):
    response = client.post("/api/v1/orders", data=body, headers=signed_headers(body))
    assert response.status_code == 400
    assert response.is_json
    assert count_orders(session) == 0


def test_body_over_limit_is_413(client, app, session):
    body = b"{" + b" " * (app.config["API_MAX_BYTES"] + 10) + b"}"
    response = client.post("/api/v1/orders", data=body, headers=signed_headers(body))
    assert response.status_code == 413
    assert count_orders(session) == 0


def test_products_upsert_with_stock(client, session):
    assert post_json(client, "/api/v1/products", PRODUCTS).status_code == 200
    changed = json.loads(json.dumps(PRODUCTS))
    changed["products"][0]["variants"][1]["stock"] = 7
    response = post_json(client, "/api/v1/products", changed)
    assert response.get_json() == {"created": 0, "updated": 2}
    assert session.scalars(select(Variant.stock).where(Variant.sku == "TEE-M")).one() == 7


def test_invalid_products_are_400(client, session):
    bad = {
        "products": [
            {
                "product_code": "X",
                "name": "X",
                "category": "tops",
                "variants": [{"sku": "X-1", "variant": "", "stock": -2}],
            }
        ]
    }
    response = post_json(client, "/api/v1/products", bad)
    assert response.status_code == 400
    assert session.scalar(select(func.count(Variant.id))) == 0


def test_api_needs_no_csrf_but_rejects_get(client):
    assert client.get("/api/v1/orders").status_code in (401, 405)
