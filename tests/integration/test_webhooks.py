"""Webhook delivery through a real HTTP server on loopback."""

from __future__ import annotations

import collections
import hashlib
import hmac
import json
import socket
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from portal.adapters.webhooks import REFUND_SUCCEEDED, RETURN_APPROVED, webhook_sender_from_config
from portal.db import session_scope
from portal.db.models import OutboxMessage
from portal.jobs import deliver_outbox
from portal.services.outbox import backoff, deliver_pending, enqueue_webhook
from tests.helpers import API_SECRET

Seen = collections.namedtuple("Seen", "path headers body")


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() waits for every handler thread


class Receiver:
    """Records every request; answers with the queued statuses (then 200)."""

    def __init__(self):
        self.requests: list[Seen] = []
        self.statuses: collections.deque[int] = collections.deque()
        self.location: str | None = None
        self.delay = 0.0
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append(Seen(self.path, dict(self.headers), body))
                if receiver.delay:
                    receiver.release.wait(receiver.delay)
                status = receiver.statuses.popleft() if receiver.statuses else 200
                try:
                    self.send_response(status)
                    if receiver.location and 300 <= status < 400:
                        self.send_header("Location", receiver.location)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the client gave up (timeout test)

            def log_message(self, format, *args):
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks/returns"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def make_receiver():
    started: list[Receiver] = []

    def make() -> Receiver:
        receiver = Receiver()
        receiver.thread.start()
        started.append(receiver)
        return receiver

    yield make
    for receiver in started:
        receiver.stop()


@pytest.fixture
def receiver(make_receiver):
    return make_receiver()


@pytest.fixture
def hook_app(app, receiver):
    # Delivery is driven by each test, not by the after-commit hook.
    app.config.update(WEBHOOK_URL=receiver.url, WEBHOOK_TIMEOUT=2, JOBS_MODE="off")
    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def queue_event(app, topic: str = RETURN_APPROVED, data: dict | None = None) -> str:
    with session_scope(app) as session:
        message = enqueue_webhook(session, topic, data if data is not None else {"rma": "R-0001"})
        session.commit()
        return message.event_id


def row(app, event_id: str) -> OutboxMessage:
    with session_scope(app) as session:
        message = session.scalars(select(OutboxMessage).where(OutboxMessage.event_id == event_id)).one()
        session.expunge(message)
        return message


def expected_signature(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def test_event_is_delivered_signed(hook_app, receiver):
    data = {"rma": "R-0001", "order_number": "SO-1001", "note": "尺码不合适"}
    event_id = queue_event(hook_app, RETURN_APPROVED, data)

    assert deliver_outbox(hook_app) == (1, 0)

    assert len(receiver.requests) == 1
    seen = receiver.requests[0]
    assert seen.path == "/hooks/returns"
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["User-Agent"] == "returns-portal"
    assert seen.headers["X-Portal-Event-Id"] == event_id
    timestamp = seen.headers["X-Portal-Timestamp"]
    assert timestamp.isdigit() and abs(time.time() - int(timestamp)) < 60
    assert hook_app.config["WEBHOOK_SECRET"] == API_SECRET  # defaults to the API secret
    assert hmac.compare_digest(seen.headers["X-Portal-Signature"], expected_signature(API_SECRET, timestamp, seen.body))

    event = json.loads(seen.body.decode("utf-8"))
    message = row(hook_app, event_id)
    assert event == {
        "id": event_id,
        "type": RETURN_APPROVED,
        "created_at": message.created_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "data": data,
    }
    assert datetime.fromisoformat(event["created_at"]).tzinfo == UTC
    assert seen.body == json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")  # compact UTF-8
    assert message.sent_at is not None and message.attempts == 1 and message.last_error is None


def test_own_secret_is_used_when_configured(hook_app, receiver):
    hook_app.config["WEBHOOK_SECRET"] = "receiver-secret"
    queue_event(hook_app)
    assert deliver_outbox(hook_app) == (1, 0)
    seen = receiver.requests[0]
    assert seen.headers["X-Portal-Signature"] == expected_signature(
        "receiver-secret", seen.headers["X-Portal-Timestamp"], seen.body
    )


def test_server_error_is_retried_with_the_same_event_id(hook_app, receiver):
    receiver.statuses.extend([500, 200])
    event_id = queue_event(hook_app, REFUND_SUCCEEDED, {"rma": "R-0002", "amount": "89.00", "currency": "CNY"})
    sender = webhook_sender_from_config(hook_app.config)
    now = datetime.now(UTC)

    with session_scope(hook_app) as session:
        assert deliver_pending(session, sender.send, now=now) == (0, 1)
    first = row(hook_app, event_id)
    assert first.sent_at is None and first.attempts == 1
    assert "HTTP 500" in first.last_error
    assert first.available_at == now + backoff(1)

    with session_scope(hook_app) as session:
        assert deliver_pending(session, sender.send, now=now) == (0, 0)  # not due yet
        assert deliver_pending(session, sender.send, now=now + backoff(1)) == (1, 0)
    second = row(hook_app, event_id)
    assert second.sent_at is not None and second.attempts == 2 and second.last_error is None

    # At least once: the receiver saw the same event twice and drops the repeat by its id.
    assert [seen.headers["X-Portal-Event-Id"] for seen in receiver.requests] == [event_id, event_id]
    assert receiver.requests[0].body == receiver.requests[1].body
    assert {json.loads(seen.body)["id"] for seen in receiver.requests} == {event_id}


@pytest.mark.parametrize("status", [400, 404, 410, 503])
def test_non_2xx_answers_are_failures(hook_app, receiver, status):
    receiver.statuses.append(status)
    event_id = queue_event(hook_app)
    assert deliver_outbox(hook_app) == (0, 1)
    message = row(hook_app, event_id)
    assert message.sent_at is None and message.attempts == 1
    assert f"HTTP {status}" in message.last_error
    assert message.available_at > message.created_at  # retried later, 410 included


def test_connection_refused_is_recorded(app):
    app.config.update(
        WEBHOOK_URL=f"http://127.0.0.1:{free_port()}/hooks", WEBHOOK_TIMEOUT=2, JOBS_MODE="off"
    )  # nothing listens
    event_id = queue_event(app)
    assert deliver_outbox(app) == (0, 1)
    message = row(app, event_id)
    assert message.sent_at is None and message.attempts == 1
    assert message.last_error.startswith("WebhookError: request failed")
    assert message.available_at > message.created_at


def test_slow_receiver_times_out(hook_app, receiver):
    hook_app.config["WEBHOOK_TIMEOUT"] = 0.2
    receiver.delay = 3
    event_id = queue_event(hook_app)
    started = time.monotonic()
    assert deliver_outbox(hook_app) == (0, 1)
    assert time.monotonic() - started < 2
    message = row(hook_app, event_id)
    assert message.sent_at is None and message.attempts == 1
    assert "0.2 s" in message.last_error or "timed out" in message.last_error


def test_no_url_leaves_events_pending_untouched(app, receiver):
    app.config["WEBHOOK_URL"] = None
    event_id = queue_event(app)
    assert deliver_outbox(app) == (0, 0)
    message = row(app, event_id)
    assert message.sent_at is None and message.attempts == 0 and message.last_error is None
    assert receiver.requests == []

    app.config["WEBHOOK_URL"] = receiver.url  # configured later: the waiting event goes out
    assert deliver_outbox(app) == (1, 0)
    assert [seen.headers["X-Portal-Event-Id"] for seen in receiver.requests] == [event_id]


@pytest.mark.parametrize("status", [302, 307, 308])
def test_redirect_to_another_host_is_not_followed(hook_app, receiver, make_receiver, status):
    other = make_receiver()
    receiver.statuses.append(status)
    receiver.location = f"http://localhost:{other.port}/stolen"
    event_id = queue_event(hook_app)
    assert deliver_outbox(hook_app) == (0, 1)
    assert len(receiver.requests) == 1
    assert other.requests == []
    message = row(hook_app, event_id)
    assert message.sent_at is None and message.attempts == 1
    assert f"redirect not followed (HTTP {status})" in message.last_error


def test_unknown_event_type_is_refused(app):
    with session_scope(app) as session:
        with pytest.raises(ValueError):
            enqueue_webhook(session, "return.approvd", {})
        message = enqueue_webhook(session, RETURN_APPROVED, {"rma": "R-1"})
        assert (message.channel, message.topic, message.payload) == (
            "webhook",
            RETURN_APPROVED,
            {"topic": RETURN_APPROVED, "data": {"rma": "R-1"}},
        )
