"""Operators' endpoints: /healthz, /readyz, /metrics; request ids and JSON log lines."""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from portal import create_app
from portal.db import get_engine
from portal.db.models import OutboxMessage, Refund
from portal.health import readiness
from portal.jobs import kick
from portal.logs import JSON_HANDLER, accept_request_id, configure_logging
from tests.helpers import finance_user, form_for, inspected, login_shopper, order_payload, post_json

GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def make_app(app):
    """Another app on the same database and instance folder, with some settings changed."""
    made = []

    def make(**overrides):
        config = {**{k: v for k, v in app.config.items() if k.isupper()}, **overrides}
        other = create_app(config)
        made.append(other)
        return other

    yield make
    for other in made:
        get_engine(other).dispose()
    configure_logging("plain")  # the JSON handler goes with the app that asked for it


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(client, **kw) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", **kw)
    assert response.status_code == 200, response.status_code
    assert response.content_type.startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# --- liveness and readiness -------------------------------------------------------------------


def test_healthz_answers_without_session_cookie_or_csrf(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}
    assert "Set-Cookie" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"
    assert GENERATED.fullmatch(response.headers["X-Request-ID"])
    assert client.post("/healthz").status_code == 405  # GET only: nothing to change, nothing to protect


def test_health_endpoints_are_not_rate_limited(client):
    for _ in range(60):
        assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_readyz_lists_every_part_when_ready(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ready" and body["failing"] == []
    assert body["checks"]["database"]["state"] == "ok"
    assert body["checks"]["photo_store"]["state"] == "ok"
    assert body["checks"]["broker"] == {"state": "not configured"}
    assert "Set-Cookie" not in response.headers


def test_readyz_names_an_unwritable_photo_store(make_app, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    client = make_app(PHOTO_PATH=str(blocker / "photos")).test_client()
    started = time.monotonic()
    response = client.get("/readyz")
    assert time.monotonic() - started < 3
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "not ready" and body["failing"] == ["photo_store"]
    assert body["checks"]["photo_store"] == {
        "state": "failed",
        "error": "StorageError",
        "ms": pytest.approx(0, abs=3000),
    }
    assert body["checks"]["database"]["state"] == "ok"
    assert str(tmp_path) not in response.get_data(as_text=True)


def test_readyz_names_an_unreachable_broker_without_its_address_or_password(make_app):
    url = f"redis://:hunter2-secret@127.0.0.1:{closed_port()}/0"
    client = make_app(BROKER_URL=url).test_client()
    started = time.monotonic()
    response = client.get("/readyz")
    assert time.monotonic() - started < 3
    assert response.status_code == 503
    body = response.get_json()
    assert body["failing"] == ["broker"]
    assert body["checks"]["broker"]["state"] == "failed"
    text = response.get_data(as_text=True)
    assert "hunter2" not in text and "127.0.0.1" not in text and "redis://" not in text


def test_readyz_names_an_unreachable_database_without_its_password(make_app):
    client = make_app(
        DATABASE_URL=f"postgresql://portal:hunter3-secret@127.0.0.1:{closed_port()}/returns"
    ).test_client()
    started = time.monotonic()
    response = client.get("/readyz")
    assert time.monotonic() - started < 3
    assert response.status_code == 503
    body = response.get_json()
    assert body["failing"] == ["database"] and body["checks"]["database"]["state"] == "failed"
    assert body["checks"]["photo_store"]["state"] == "ok"
    text = response.get_data(as_text=True)
    assert "hunter3" not in text and "postgresql" not in text and "127.0.0.1" not in text


def test_readiness_gives_up_on_a_hanging_part(app, monkeypatch):
    import portal.health

    monkeypatch.setattr(portal.health, "ping_database", lambda engine: time.sleep(5))
    started = time.monotonic()
    ready, checks = readiness(get_engine(app), app.config, timeout=0.3)
    assert time.monotonic() - started < 1.5
    assert not ready
    assert {c.name: c.state for c in checks} == {"database": "timeout", "photo_store": "ok", "broker": "not configured"}


# --- metrics: who may read them ---------------------------------------------------------------


def test_metrics_only_from_loopback_by_default(client):
    assert client.get("/metrics").status_code == 200
    refused = client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.7"})
    assert refused.status_code == 404
    assert "portal_" not in refused.get_data(as_text=True)
    assert "Set-Cookie" not in refused.headers


def test_metrics_token_is_required_once_set(make_app):
    client = make_app(METRICS_TOKEN="scrape-me-please").test_client()
    far = {"REMOTE_ADDR": "198.51.100.20"}  # with only a token set, the token is the gate
    assert client.get("/metrics", environ_base=far).status_code == 403
    wrong = {"Authorization": "Bearer scrape-me-not"}
    assert client.get("/metrics", headers=wrong, environ_base=far).status_code == 403
    basic = {"Authorization": "Basic c2NyYXBlLW1lLXBsZWFzZQ=="}
    assert client.get("/metrics", headers=basic, environ_base=far).status_code == 403
    allowed = client.get("/metrics", headers={"Authorization": "Bearer scrape-me-please"}, environ_base=far)
    assert allowed.status_code == 200 and b"portal_http_request_duration_seconds" in allowed.data
    assert "Set-Cookie" not in allowed.headers


def test_metrics_token_and_address_list_both_hold(make_app):
    client = make_app(METRICS_TOKEN="tok-123", METRICS_ALLOW="10.0.0.0/8, 192.0.2.5").test_client()
    bearer = {"Authorization": "Bearer tok-123"}
    assert client.get("/metrics", headers=bearer, environ_base={"REMOTE_ADDR": "10.2.3.4"}).status_code == 200
    assert client.get("/metrics", headers=bearer, environ_base={"REMOTE_ADDR": "192.0.2.5"}).status_code == 200
    assert client.get("/metrics", headers=bearer, environ_base={"REMOTE_ADDR": "192.0.2.6"}).status_code == 404
    assert client.get("/metrics", headers=bearer).status_code == 404  # loopback is not in this list
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.2.3.4"}).status_code == 403


def test_a_wrong_address_list_stops_the_start(app):
    config = {**{k: v for k, v in app.config.items() if k.isupper()}, "METRICS_ALLOW": "127.0.0.1, not-an-ip"}
    with pytest.raises(RuntimeError, match="METRICS_ALLOW"):
        create_app(config)


# --- metrics: what they say -------------------------------------------------------------------


def test_request_latency_by_endpoint_name_method_and_status_class(client):
    before = scrape(client)
    for _ in range(3):
        client.get("/healthz")
    client.get("/no/such/page-with-a-secret-9f8e")
    client.post("/healthz")
    after = scrape(client)
    name = "portal_http_request_duration_seconds_count"
    ok = dict(endpoint="ops.healthz", method="GET", status="2xx")
    assert value(after, name, **ok) - value(before, name, **ok) == 3
    assert value(after, "portal_http_request_duration_seconds_bucket", le="+Inf", **ok) >= 3
    missing = dict(endpoint="unmatched", method="GET", status="4xx")
    assert value(after, name, **missing) - value(before, name, **missing) == 1
    refused = dict(endpoint="unmatched", method="POST", status="4xx")  # 405: no rule matched this method
    assert value(after, name, **refused) - value(before, name, **refused) == 1
    assert not any("page-with-a-secret" in str(labels) for _, labels in after)


def test_job_runs_failures_and_latency_by_task(app, client, order):
    before = scrape(client)
    shopper = app.test_client()
    login_shopper(shopper)
    shopper.post("/order/request", data=form_for(shopper, **{"0": {"quantity": "1", "reason": "size_fit"}}))

    def broken_job(app):
        raise RuntimeError("boom")

    kick(app, broken_job)
    after = scrape(client)
    runs, fails = "portal_job_runs_total", "portal_job_failures_total"
    assert value(after, runs, task="deliver_outbox") > value(before, runs, task="deliver_outbox")
    assert value(after, fails, task="deliver_outbox") == value(before, fails, task="deliver_outbox")
    assert value(after, "portal_job_duration_seconds_count", task="deliver_outbox") > value(
        before, "portal_job_duration_seconds_count", task="deliver_outbox"
    )
    assert value(after, runs, task="broken_job") - value(before, runs, task="broken_job") == 1
    assert value(after, fails, task="broken_job") - value(before, fails, task="broken_job") == 1


def test_outbox_backlog_is_the_count_of_unsent_messages(client, session):
    now = datetime.now(UTC)
    for i, sent in enumerate([None, None, now, None]):
        session.add(
            OutboxMessage(
                event_id=f"evt-obs-{i}",
                channel="email",
                topic="test",
                payload={},
                available_at=now + timedelta(hours=1),
                sent_at=sent,
            )
        )
    session.commit()
    unsent = session.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.sent_at.is_(None)))
    assert unsent >= 3
    samples = scrape(client)
    assert value(samples, "portal_outbox_backlog") == unsent
    assert value(samples, "portal_metrics_data_up") == 1


def test_refunds_by_state(app, client, order, session):
    from portal.adapters.payments import SandboxGateway
    from portal.services.refunds import approve_refund, execute_refund, preview_refund

    factory = app.extensions["portal.sessionmaker"]
    paid = inspected(app, client, session, number="RF-1")
    preview = preview_refund(session, paid)
    refund = approve_refund(session, paid, finance_user(session, "fay"), preview.basis_hash, "sandbox", Decimal(1000))
    execute_refund(factory, refund.id, SandboxGateway(factory))
    waiting = inspected(app, client, session, number="RF-2")
    preview = preview_refund(session, waiting)
    approve_refund(session, waiting, finance_user(session, "sam"), preview.basis_hash, "sandbox", Decimal(10))

    samples = scrape(client)
    counted = dict(session.execute(select(Refund.status, func.count()).group_by(Refund.status)).all())
    assert counted == {"succeeded": 1, "awaiting_second": 1}
    for state in ("approved", "awaiting_second", "processing", "succeeded", "failed"):
        assert value(samples, "portal_refunds", state=state) == counted.get(state, 0), state


def test_data_gauges_say_so_when_the_database_is_gone(make_app, tmp_path):
    client = make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'missing' / 'no.sqlite3'}").test_client()
    samples = scrape(client)
    assert value(samples, "portal_metrics_data_up") == 0
    assert ("portal_outbox_backlog", ()) not in samples


# --- request ids and JSON logs ----------------------------------------------------------------


@pytest.mark.parametrize(
    "sent, kept",
    [
        ("abc-123", True),
        ("7f3c2a9e-4b1d-4e8a-9c55-0d6f1e2b3a4c", True),
        ("lb.edge:42_x", True),
        ("x" * 64, True),
        ("x" * 65, False),
        ("abc\ndef", False),
        ("abc\r\nX-Forged: 1", False),
        ("<script>", False),
        ("id with spaces", False),
        ("", False),
        (None, False),
    ],
)
def test_request_id_is_kept_only_when_short_and_safe(sent, kept):
    got = accept_request_id(sent)
    assert (got == sent) is kept
    if not kept:
        assert GENERATED.fullmatch(got)


def test_request_id_is_echoed_and_a_hostile_one_replaced(client):
    assert client.get("/healthz", headers={"X-Request-ID": "edge-7781"}).headers["X-Request-ID"] == "edge-7781"
    long = client.get("/healthz", headers={"X-Request-ID": "a" * 300}).headers["X-Request-ID"]
    assert GENERATED.fullmatch(long)
    # A raw newline cannot pass a client library, so it goes straight into the WSGI environment.
    forged = client.get("/healthz", environ_base={"HTTP_X_REQUEST_ID": "abc\nlevel=ERROR forged"})
    assert GENERATED.fullmatch(forged.headers["X-Request-ID"])
    fresh = {client.get("/healthz").headers["X-Request-ID"] for _ in range(3)}
    assert len(fresh) == 3


def json_lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_json_logs_carry_the_request_id_into_the_jobs_it_starts(make_app, caplog):
    json_app = make_app(LOG_FORMAT="json")
    (handler,) = [h for h in logging.getLogger().handlers if h.get_name() == JSON_HANDLER]
    stream = io.StringIO()
    handler.setStream(stream)
    caplog.set_level(logging.DEBUG, logger="portal.jobs")

    api = json_app.test_client()
    assert post_json(api, "/api/v1/orders", order_payload()).status_code == 201
    shopper = json_app.test_client()
    login_shopper(shopper)
    data = form_for(shopper, **{"0": {"quantity": "1", "reason": "size_fit"}})
    response = shopper.post("/order/request", data=data, headers={"X-Request-ID": "shop-req-0042"})
    assert response.status_code in (200, 303)
    assert response.headers["X-Request-ID"] == "shop-req-0042"

    lines = json_lines(stream)
    assert lines, "nothing was logged as JSON"
    assert {"time", "level", "logger", "message", "request_id"} <= set(lines[0])
    ours = [line for line in lines if line["request_id"] == "shop-req-0042"]
    opened = [line for line in ours if line["logger"] == "portal.returns" and "opened for order" in line["message"]]
    assert opened, lines
    job = [line for line in ours if line["logger"] == "portal.jobs" and "deliver_outbox" in line["message"]]
    assert job, lines  # the outbox job the submission started logs under the request's id
    assert "li.wei@example.com" not in stream.getvalue()  # no shopper's address in the logs


def test_a_log_message_cannot_break_the_json_line(make_app):
    make_app(LOG_FORMAT="json")
    (handler,) = [h for h in logging.getLogger().handlers if h.get_name() == JSON_HANDLER]
    stream = io.StringIO()
    handler.setStream(stream)
    logging.getLogger("portal.test").warning("line one\nline two %s", '\r\n{"level": "forged"}')
    (line,) = json_lines(stream)
    assert line["level"] == "WARNING" and line["message"].startswith("line one\nline two")
    assert line["request_id"] is None


def test_plain_logs_stay_the_default(app):
    assert app.config["LOG_FORMAT"] == "plain"
    assert not [h for h in logging.getLogger().handlers if h.get_name() == JSON_HANDLER]


def test_escalations_fired_by_action(app, client, session):
    from portal.db import session_scope
    from portal.db.models import EscalationDue
    from portal.domain.orders import parse_order
    from portal.domain.policy import load_policy
    from portal.services.filing import LineRequest, open_return
    from portal.services.orders import upsert_order
    from portal.services.policies import default_policy_text
    from portal.services.sla import sweep
    from portal.storage import LocalPhotoStore
    from tests.helpers import COAT, shanghai_desk_with_policy

    shanghai_desk_with_policy(session)
    monday_10 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
    with session_scope(app) as s:
        order, _ = upsert_order(s, parse_order(order_payload("SLA-1", lines=COAT)))
        order.delivered_at = monday_10 - timedelta(days=1)
        s.commit()
        line = LineRequest("1", 1, "size_fit", outcome="refund")
        store = LocalPhotoStore(app.config["PHOTO_PATH"])
        open_return(s, order, [line], load_policy(default_policy_text()), monday_10, "en", store)

    name = "portal_escalations_fired_total"
    assert value(scrape(client), name, action="remind") == 0
    # 90 of 120 business minutes gone: the first-response reminder fires.
    assert sweep(app.extensions["portal.sessionmaker"], now=datetime(2026, 11, 23, 3, 31, tzinfo=UTC)).fired
    # Past the resolution deadline: the lead step fires for both clocks.
    sweep(app.extensions["portal.sessionmaker"], now=datetime(2026, 11, 23, 7, 1, tzinfo=UTC))
    samples = scrape(client)
    done = dict(
        session.execute(
            select(EscalationDue.action, func.count())
            .where(EscalationDue.status == "done")
            .group_by(EscalationDue.action)
        ).all()
    )
    assert done.get("remind", 0) >= 1 and done.get("move_to_lead", 0) >= 1
    for action, count in done.items():
        assert value(samples, name, action=action) == count, action


def test_a_thread_job_logs_under_the_id_of_the_request_that_started_it(make_app):
    from portal.jobs import drain
    from portal.logs import bind_request_id, current_request_id, unbind_request_id

    threaded = make_app(JOBS_MODE="thread")
    seen: list[str | None] = []

    def note_id(app):
        seen.append(current_request_id())

    token = bind_request_id("req-thread-1")
    try:
        kick(threaded, note_id)
    finally:
        unbind_request_id(token)
    kick(threaded, note_id)  # started outside any request: no id, and none left over from before
    drain()
    assert seen == ["req-thread-1", None]
