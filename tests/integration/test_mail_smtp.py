"""Outbox delivery through a real SMTP server (aiosmtpd on loopback)."""

from __future__ import annotations

import email
import socket

import pytest
from sqlalchemy import select

from portal.db.models import OutboxMessage
from tests.helpers import form_for, login_shopper


class Inbox:
    def __init__(self):
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server():
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


@pytest.fixture
def smtp_app(app, smtp_server):
    controller, _ = smtp_server
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=controller.port)
    return app


def test_confirmation_email_is_sent_by_smtp(smtp_app, smtp_server, order, session):
    _, inbox = smtp_server
    client = smtp_app.test_client()
    assert login_shopper(client).status_code == 303
    data = form_for(client, **{"0": {"quantity": "1", "reason": "size_fit", "outcome": "refund"}})
    assert client.post("/order/request", data=data).status_code == 303
    assert len(inbox.messages) == 1
    message = inbox.messages[0]
    outbox = session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "email")).one()
    assert message["To"] == "li.wei@example.com"
    assert message["X-Portal-Event-Id"] == outbox.event_id
    assert "R-" in message["Subject"]
    assert outbox.sent_at is not None and outbox.attempts == 1


def test_smtp_down_keeps_message_for_retry(app, order, session):
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=free_port())  # nothing listens there
    client = app.test_client()
    assert login_shopper(client).status_code == 303
    data = form_for(client, **{"0": {"quantity": "1", "reason": "size_fit", "outcome": "refund"}})
    response = client.post("/order/request", data=data)
    assert response.status_code == 303  # the shopper's request does not fail with the mail server
    outbox = session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "email")).one()
    assert outbox.sent_at is None and outbox.attempts == 1 and outbox.last_error
    assert outbox.available_at > outbox.created_at
