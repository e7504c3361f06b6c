"""The shopper's journey over HTTP against gunicorn, with the background work done elsewhere."""

from __future__ import annotations

import time

from tests.helpers import http_get
from tests.stack.harness import wait_for
from tests.stack.shopper import order_exists, photo_states, push_order, request_with_photos, scored_events

QUIET_SECONDS = 3  # after the first email: long enough for a duplicate to show up


def test_readyz_sees_every_service(stack):
    status, body = http_get(f"{stack.base_url}/readyz")
    assert status == 200, body
    for part in ("database", "broker", "photo_store"):
        assert f'"{part}"' in body


def test_order_push_lookup_and_photos_scored_with_one_email(stack, db):
    number, address = push_order(stack.base_url)
    assert order_exists(db, number)
    rma = request_with_photos(stack.base_url, number, address, photos=3)

    states = wait_for(
        lambda: (s := photo_states(db, rma)) and all(x != "pending" for x in s) and s,
        "photos scored",
        60,
        stack.services,
    )
    assert states == ["scored"] * 3
    assert scored_events(db, rma) == 1
    mails = wait_for(lambda: stack.inbox.to(address), "confirmation email", 60, stack.services)
    time.sleep(QUIET_SECONDS)
    mails = stack.inbox.to(address)
    assert len(mails) == 1, [m["Subject"] for m in mails]
    assert rma in mails[0]["Subject"]
    assert mails[0]["X-Portal-Event-Id"]
