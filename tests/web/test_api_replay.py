"""Replays and stale updates on the shop API: a captured signed push sent again inside the
5-minute window is refused (409) and changes nothing, and a push older than the stored version of
an order or product (its ``updated_at``) is refused too."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from portal.db.models import ApiSignature, Order, OrderLine, Product, Variant
from tests.helpers import order_payload, post_json, signed_headers


def send(client, path: str, payload, headers=None):
    body = json.dumps(payload).encode()
    headers = headers or signed_headers(body)
    return client.post(path, data=body, headers=headers), headers


def quantities(session, number: str) -> list[int]:
    session.expire_all()
    order = session.scalars(select(Order).where(Order.order_number == number)).one()
    return [line.quantity for line in order.lines]


def with_quantity(payload: dict, quantity: int, updated_at: str | None = None) -> dict:
    payload = json.loads(json.dumps(payload))
    payload["lines"][0]["quantity"] = quantity
    if updated_at is not None:
        payload["updated_at"] = updated_at
    return payload


def test_a_replayed_push_cannot_undo_a_correction(client, session):
    original = with_quantity(order_payload("SO-77"), 5)
    response, captured = send(client, "/api/v1/orders", original)
    assert response.status_code == 201
    assert send(client, "/api/v1/orders", with_quantity(original, 1))[0].status_code == 200
    assert quantities(session, "SO-77")[0] == 1

    replay, _ = send(client, "/api/v1/orders", original, headers=captured)
    assert replay.status_code == 409
    assert "replayed" in replay.get_json()["error"]
    assert quantities(session, "SO-77")[0] == 1


@pytest.mark.parametrize(
    "path, payload",
    [
        (
            "/api/v1/products",
            {
                "products": [
                    {
                        "product_code": "P1",
                        "name": "Coat",
                        "category": "outerwear",
                        "variants": [{"sku": "P1-M", "variant": "M", "stock": 3}],
                    }
                ]
            },
        ),
        (
            "/api/v1/carrier-events",
            {"pickup_code": "PU-NOPE", "event_id": "e1", "status": "picked_up", "occurred_at": "2026-01-01T00:00:00Z"},
        ),
    ],
)
def test_every_endpoint_refuses_a_replay(client, session, path, payload):
    first, captured = send(client, path, payload)
    assert first.status_code != 409
    assert send(client, path, payload, headers=captured)[0].status_code == 409


def test_a_bad_signature_is_not_remembered(client, session):
    body = json.dumps(order_payload()).encode()
    headers = signed_headers(body, secret="wrong")
    assert client.post("/api/v1/orders", data=body, headers=headers).status_code == 401
    assert session.scalar(select(func.count(ApiSignature.signature))) == 0


def test_expired_signatures_are_pruned(client, session, app):
    session.add(ApiSignature(signature="sha256=old", expires_at=datetime.now(UTC) - timedelta(minutes=1)))
    session.commit()
    assert post_json(client, "/api/v1/orders", order_payload()).status_code == 201
    session.expire_all()
    assert session.get(ApiSignature, "sha256=old") is None
    assert session.scalar(select(func.count(ApiSignature.signature))) == 1


def test_an_older_order_version_is_409_and_changes_nothing(client, session):
    newer = with_quantity(order_payload("SO-78"), 1, updated_at="2026-05-01T10:00:00+08:00")
    assert post_json(client, "/api/v1/orders", newer).status_code == 201
    older = with_quantity(order_payload("SO-78"), 5, updated_at="2026-05-01T09:59:59+08:00")
    response = post_json(client, "/api/v1/orders", older)
    assert response.status_code == 409
    body = response.get_json()
    assert body["error"] == "stale update" and body["errors"][0]["field"] == "updated_at"
    assert quantities(session, "SO-78")[0] == 1
    # The same version again, or a newer one, is applied.
    assert post_json(client, "/api/v1/orders", with_quantity(newer, 2)).status_code == 200
    assert quantities(session, "SO-78")[0] == 2
    newest = with_quantity(order_payload("SO-78"), 3, updated_at="2026-05-01T02:00:01Z")
    assert post_json(client, "/api/v1/orders", newest).status_code == 200
    assert quantities(session, "SO-78")[0] == 3
    # A push without updated_at is applied and keeps the stored version.
    assert post_json(client, "/api/v1/orders", with_quantity(order_payload("SO-78"), 4)).status_code == 200
    assert post_json(client, "/api/v1/orders", with_quantity(older, 5)).status_code == 409
    assert quantities(session, "SO-78")[0] == 4


def test_an_older_product_version_refuses_the_whole_push(client, session):
    def catalogue(stock: int, stamp: str, other_stock: int = 1) -> dict:
        return {
            "products": [
                {
                    "product_code": "P2",
                    "name": "Other",
                    "category": "tops",
                    "variants": [{"sku": "P2-S", "variant": "S", "stock": other_stock}],
                },
                {
                    "product_code": "P1",
                    "name": "Coat",
                    "category": "outerwear",
                    "updated_at": stamp,
                    "variants": [{"sku": "P1-M", "variant": "M", "stock": stock}],
                },
            ]
        }

    assert post_json(client, "/api/v1/products", catalogue(3, "2026-05-01T10:00:00Z")).status_code == 200
    response = post_json(client, "/api/v1/products", catalogue(9, "2026-05-01T09:00:00Z", other_stock=7))
    assert response.status_code == 409
    session.expire_all()
    assert {v.sku: v.stock for v in session.scalars(select(Variant))} == {"P2-S": 1, "P1-M": 3}
    assert session.scalar(select(func.count(Product.id))) == 2
    assert post_json(client, "/api/v1/products", catalogue(8, "2026-05-01T11:00:00Z")).status_code == 200
    session.expire_all()
    assert session.scalars(select(Variant.stock).where(Variant.sku == "P1-M")).one() == 8


def test_updated_at_must_be_a_timestamp(client, session):
    payload = order_payload()
    payload["updated_at"] = "yesterday"
    response = post_json(client, "/api/v1/orders", payload)
    assert response.status_code == 400
    assert [e["field"] for e in response.get_json()["errors"]] == ["updated_at"]
    assert session.scalar(select(func.count(OrderLine.id))) == 0
