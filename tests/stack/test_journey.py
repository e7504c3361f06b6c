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


def test_an_agent_approves_over_http_and_the_shopper_is_told_once(stack, db):
    """The staff side on the same stack: an agent signs in on gunicorn and approves; a worker sends
    the approval (with its label) once."""
    from portal.services.staff import create_staff
    from tests.helpers import PASSWORD, csrf_token, order_payload
    from tests.stack.harness import Browser
    from tests.stack.shopper import request_row

    # Worth more than the policy's review line: an agent decides.
    lines = order_payload()["lines"][:1]
    lines[0]["unit_price"] = "1500.00"
    number, address = push_order(stack.base_url, lines=lines)
    rma = request_with_photos(stack.base_url, number, address, photos=1)
    assert request_row(db, rma).status == "pending_review"
    agent_email = f"agent-{rma.lower()}@example.com"
    create_staff(db, agent_email, "Stack Agent", "agent", PASSWORD)

    agent = Browser(stack.base_url)
    login = agent.get("/staff/login")
    signed_in = agent.post(
        "/staff/login", {"csrf_token": csrf_token(login.text), "email": agent_email, "password": PASSWORD}
    )
    assert signed_in.status == 303, signed_in.text
    page = agent.get(f"/staff/requests/{rma}")
    assert page.status == 200, page.text
    decided = agent.post(
        f"/staff/requests/{rma}/decide",
        {"csrf_token": csrf_token(page.text), "status": "pending_review", "action": "approve", "note": ""},
    )
    assert decided.status == 303, decided.text

    def approvals():
        return [m for m in stack.inbox.to(address) if "approved" in m["Subject"]]

    wait_for(approvals, "approval email", 60, stack.services)
    time.sleep(QUIET_SECONDS)
    assert len(approvals()) == 1
    assert request_row(db, rma).status not in ("pending_review", "submitted")
