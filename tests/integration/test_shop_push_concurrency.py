"""The first push of the same order or product from several requests at once, on SQLite and
PostgreSQL alike: every request succeeds, exactly one creates, one row is left (a real
``INSERT ... ON CONFLICT`` upsert, not select-then-insert)."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from portal.db.models import Order, OrderLine, Product, Variant
from tests.helpers import order_payload, signed_headers

SENDERS = 8


def at_once(app, path: str, payloads: list[dict]) -> list[int]:
    start = threading.Barrier(len(payloads))

    def one(payload: dict) -> int:
        body = json.dumps(payload).encode()
        headers = signed_headers(body)
        client = app.test_client()
        start.wait()
        return client.post(path, data=body, headers=headers).status_code

    with ThreadPoolExecutor(max_workers=len(payloads)) as pool:
        return list(pool.map(one, payloads))


def test_first_push_of_one_order_from_several_requests(app, session):
    statuses = at_once(app, "/api/v1/orders", [order_payload("SO-RACE") for _ in range(SENDERS)])
    assert sorted(statuses) == [200] * (SENDERS - 1) + [201]
    assert session.scalar(select(func.count(Order.id))) == 1
    # The order's lines are there once each, not once per request.
    assert session.scalar(select(func.count(OrderLine.id))) == len(order_payload("SO-RACE")["lines"])


def test_first_push_of_one_product_from_several_requests(app, session):
    payload = {
        "products": [
            {
                "product_code": "P-RACE",
                "name": "Racing jacket",
                "category": "outerwear",
                "variants": [
                    {"sku": "RACE-M", "variant": "M", "stock": 4},
                    {"sku": "RACE-L", "variant": "L", "stock": 2},
                ],
            }
        ]
    }
    statuses = at_once(app, "/api/v1/products", [payload for _ in range(SENDERS)])
    assert statuses == [200] * SENDERS
    assert session.scalar(select(func.count(Product.id))) == 1
    assert sorted(session.scalars(select(Variant.sku))) == ["RACE-L", "RACE-M"]
