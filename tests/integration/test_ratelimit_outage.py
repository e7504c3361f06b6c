"""Lookup throttling while the shared rate-limit storage (Redis) cannot be reached: the shopper gets
an answer, never a 500, and the limit still holds within the process."""

from __future__ import annotations

import logging

import pytest

from portal import create_app
from portal.db import get_engine
from tests.helpers import free_port, get_csrf


@pytest.fixture
def unreachable_store_app(app):
    pytest.importorskip("redis")
    cfg = {k: app.config[k] for k in ("INSTANCE_PATH", "DATABASE_URL", "SECRET_KEY", "API_SECRET")}
    down = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    other = create_app({**cfg, "TESTING": True, "RATELIMIT_STORAGE_URI": down, "JOBS_MODE": "eager"})
    yield other
    get_engine(other).dispose()


def lookup(client, contact: str, n: int):
    token = get_csrf(client)
    return client.post(
        "/lookup",
        data={"csrf_token": token, "order_number": "SO-1001", "contact": contact},
        environ_base={"REMOTE_ADDR": f"10.8.0.{n}"},
    )


def test_lookups_are_answered_and_still_limited_while_the_store_is_down(unreachable_store_app, order, caplog):
    client = unreachable_store_app.test_client()
    with caplog.at_level(logging.WARNING, logger="portal.throttle"):
        assert lookup(client, "li.wei@example.com", 0).status_code == 303  # the owner gets in
        statuses = [lookup(client, "bad@example.com", n).status_code for n in range(1, 21)]
    assert statuses == [422] * 20
    assert lookup(client, "bad@example.com", 99).status_code == 429  # counted in this process meanwhile
    assert "rate-limit storage unreachable (ConnectionError)" in caplog.text
