"""Lookup throttling shared through Redis, as in the scaled mode (several processes)."""

from __future__ import annotations

import os

import pytest

from portal import create_app
from portal.db import get_engine
from tests.helpers import flushed_redis, get_csrf

REDIS_URL = os.environ.get("PORTAL_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def redis_url():
    with flushed_redis(REDIS_URL):
        yield REDIS_URL


def _make(app, redis_url):
    cfg = {k: app.config[k] for k in ("INSTANCE_PATH", "DATABASE_URL", "SECRET_KEY", "API_SECRET")}
    return create_app({**cfg, "TESTING": True, "RATELIMIT_STORAGE_URI": redis_url, "JOBS_MODE": "eager"})


def test_two_processes_share_the_lookup_limit(app, order, redis_url):
    first, second = _make(app, redis_url), _make(app, redis_url)
    try:
        for n, instance in enumerate([first] * 10 + [second] * 10):
            client = instance.test_client()
            token = get_csrf(client)
            response = client.post(
                "/lookup",
                data={"csrf_token": token, "order_number": "SO-1001", "contact": "bad@example.com"},
                environ_base={"REMOTE_ADDR": f"10.9.0.{n}"},
            )
            assert response.status_code == 422
        client = first.test_client()
        token = get_csrf(client)
        blocked = client.post(
            "/lookup",
            data={"csrf_token": token, "order_number": "SO-1001", "contact": "bad@example.com"},
            environ_base={"REMOTE_ADDR": "10.9.1.1"},
        )
        assert blocked.status_code == 429
    finally:
        for instance in (first, second):
            get_engine(instance).dispose()
