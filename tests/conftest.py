"""Shared fixtures: a real database (SQLite, or PostgreSQL via PORTAL_DATABASE_URL) and the app.

The schema is built once per session by the Alembic migrations; every test
starts from empty tables.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import time
from datetime import datetime, timedelta, timezone

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import text

from portal import create_app
from portal.db import get_engine, make_engine, upgrade
from portal.db.models import Base

REQUIRE_SERVICES = os.environ.get("PORTAL_REQUIRE_SERVICES") == "1"
API_SECRET = "test-api-secret"


def service_missing(reason: str):
    """Skip on a machine without the service; fail when the services are required (CI)."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service unavailable: {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def quick_password_hashing(monkeypatch):
    """Argon2 with small parameters in tests; the production default is tested on its own."""
    from argon2 import PasswordHasher

    from portal.services import staff

    monkeypatch.setattr(staff, "hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    url = os.environ.get("PORTAL_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"


@pytest.fixture(scope="session")
def engine(database_url):
    engine = make_engine(database_url)
    with engine.begin() as conn:
        Base.metadata.drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    upgrade(engine)
    yield engine
    engine.dispose()


def _empty_tables(engine) -> None:
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture
def app(tmp_path, database_url, engine):
    app = create_app(
        {
            "TESTING": True,
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "DATABASE_URL": database_url,
            "SECRET_KEY": "test-secret-key",
            "API_SECRET": API_SECRET,
            "JOBS_MODE": "eager",
            "PUBLIC_URL": "http://localhost",
            "RATELIMIT_STORAGE_URI": "memory://",
        }
    )
    yield app
    get_engine(app).dispose()
    _empty_tables(engine)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def session(app):
    from portal.db import session_scope

    # No app context here: requests made meanwhile must get their own (and their own ``g``).
    with session_scope(app) as s:
        yield s


# --- helpers --------------------------------------------------------------------

def signed_headers(body: bytes, secret: str = API_SECRET, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    mac = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-Portal-Timestamp": ts, "X-Portal-Signature": f"sha256={mac}", "Content-Type": "application/json"}


def post_json(client, path: str, payload, **kw):
    body = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
    return client.post(path, data=body, headers=signed_headers(body, **kw))


CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


def form_values(html: str) -> dict[str, str]:
    """What the page's forms would post as they stand: every named field's current value (a checkbox
    only when checked, a select its selected option, or the first one as a browser would)."""
    values: dict[str, str] = {}
    for tag in BeautifulSoup(html, "html.parser").find_all(["input", "select", "textarea"]):
        name = tag.get("name")
        if not name or tag.get("type") == "file":
            continue
        if tag.name == "select":
            option = tag.find("option", selected=True) or tag.find("option")
            values[name] = option.get("value", option.get_text()) if option else ""
        elif tag.name == "textarea":
            text = tag.get_text()  # a browser drops the one newline that may open a textarea
            values[name] = text[2:] if text.startswith("\r\n") else text[1:] if text.startswith("\n") else text
        elif tag.get("type") == "checkbox":
            if tag.has_attr("checked"):
                values[name] = tag.get("value", "on")
        else:
            values[name] = tag.get("value", "")
    return values


def field_errors(html: str, field_id: str) -> list[str]:
    """The error messages shown beside one field (inside the same ``.field`` block or table cell)."""
    tag = BeautifulSoup(html, "html.parser").find(id=field_id)
    assert tag is not None, f"no field {field_id} on the page"
    box = tag.find_parent(class_="field") or tag.find_parent("td")
    return [e.get_text(strip=True) for e in box.find_all(class_="error")]


def get_csrf(client, path: str = "/") -> str:
    return csrf_from(client.get(path).get_data(as_text=True))


def order_payload(number: str = "SO-1001", *, delivered_days_ago: float | None = 2, email: str = "li.wei@example.com",
                  postcode: str = "200001", gift: bool = False, lines=None, currency: str = "CNY") -> dict:
    now = datetime.now(timezone.utc)
    delivered = None if delivered_days_ago is None else (now - timedelta(days=delivered_days_ago)).isoformat()
    return {
        "order_number": number,
        "placed_at": (now - timedelta(days=10)).isoformat(),
        "delivered_at": delivered,
        "currency": currency,
        "channel": "web",
        "customer": {"name": "Li Wei", "email": email, "phone": "+86 138 0000 0000", "postcode": postcode},
        "payment": {"method": "alipay", "reference": "PAY-1"},
        "shipping_paid": "10.00",
        "gift": gift,
        "lines": lines
        or [
            {"line_id": "1", "sku": "TEE-S", "product_name": "T-shirt", "variant": "S", "category": "tops",
             "quantity": 2, "unit_price": "99.00", "discount": "10.00", "tax": "0", "final_sale": False},
            {"line_id": "2", "sku": "SCARF-RED", "product_name": "Silk scarf", "variant": "Red", "category": "accessories",
             "quantity": 1, "unit_price": "259.00", "discount": "0", "tax": "0", "final_sale": False},
        ],
    }


PRODUCTS = {
    "products": [
        {"product_code": "TEE", "name": "T-shirt", "category": "tops",
         "variants": [{"sku": "TEE-S", "variant": "S", "stock": 5}, {"sku": "TEE-M", "variant": "M", "stock": 0},
                      {"sku": "TEE-L", "variant": "L", "stock": 3}]},
        {"product_code": "SCARF", "name": "Silk scarf", "category": "accessories",
         "variants": [{"sku": "SCARF-RED", "variant": "Red", "stock": 1}]},
    ]
}


@pytest.fixture
def order(client):
    """One delivered two-line order with its products, pushed through the API."""
    assert post_json(client, "/api/v1/products", PRODUCTS).status_code == 200
    response = post_json(client, "/api/v1/orders", order_payload())
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def login_shopper(client, number: str = "SO-1001", contact: str = "li.wei@example.com"):
    token = get_csrf(client)
    return client.post("/lookup", data={"csrf_token": token, "order_number": number, "contact": contact})
