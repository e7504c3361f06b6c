"""Scaled mode's jobs on a real Celery worker (`returns-portal worker`, a subprocess) over a real Redis
(a database number of its own) and a real SMTP server, sharing the test database.

Jobs queued by the web side run in the worker inside the app's context and their effect happens
once; the same task delivered again does no harm; a task that keeps failing ends in the failures
table and on the admin page, and Retry runs it again.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select, text

from portal import create_app
from portal.crypto import new_key
from portal.db import get_engine, session_scope
from portal.db.models import JobFailure, OutboxMessage, ReturnRequest
from portal.jobs import submit
from portal.jobs.celery_app import task_name
from portal.services.staff import create_staff
from tests.helpers import (
    API_SECRET,
    PASSWORD,
    PRODUCTS,
    csrf_token,
    form_for,
    free_port,
    login_shopper,
    order_payload,
    post_json,
    service_missing,
    sign_in,
    soup,
)

REDIS_URL = os.environ.get("PORTAL_TEST_CELERY_REDIS_URL", "redis://127.0.0.1:6379/11")
WORKER_START_SECONDS = 90


class Inbox:
    def __init__(self):
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"


@pytest.fixture(scope="module")
def redis_db():
    try:
        import celery  # noqa: F401
        import redis
    except ImportError:
        service_missing("celery or the redis client is not installed (the worker extra)")
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        client.close()
        service_missing(f"no Redis at {REDIS_URL}")
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture(scope="module")
def inbox():
    from aiosmtpd.controller import Controller

    box = Inbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port, box
    controller.stop()


@pytest.fixture(scope="module")
def scaled(tmp_path_factory, database_url, engine, redis_db, inbox):
    """The settings both sides share: scaled mode on Redis db 11, SMTP, fast retries for the test."""
    port, _ = inbox
    return {
        "JOBS_MODE": "celery",
        "BROKER_URL": REDIS_URL,
        "RATELIMIT_STORAGE_URI": REDIS_URL,
        "DATABASE_URL": database_url,
        "SECRET_KEY": "celery-test-secret",
        "API_SECRET": API_SECRET,
        "DATA_KEY": new_key("t1"),
        "PUBLIC_URL": "http://shop.test",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(port),
        # Photos are not touched by these tests; the setting is what scaled mode requires.
        "S3_BUCKET": "portal-photos",
        "S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "JOBS_MAX_RETRIES": "2",
        "JOBS_RETRY_BACKOFF": "1",
        "LOG_FORMAT": "json",
    }


@pytest.fixture(scope="module")
def worker(scaled, tmp_path_factory):
    """`returns-portal worker` with two processes, logging JSON lines to a file the tests read."""
    instance = tmp_path_factory.mktemp("worker-instance")
    log_path = instance / "worker.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    env.update({f"PORTAL_{k}": str(v) for k, v in scaled.items()})
    env["PORTAL_INSTANCE_PATH"] = str(instance)
    command = [str(Path(sys.executable).parent / "returns-portal"), "worker", "--concurrency=2", "--without-gossip"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + WORKER_START_SECONDS
    while "ready." not in log_path.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the worker did not start:\n{log_path.read_text(errors='replace')[-4000:]}")
        time.sleep(0.2)
    yield WorkerLog(log_path)
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class WorkerLog:
    def __init__(self, path: Path):
        self.path = path

    def lines(self) -> list[dict]:
        out = []
        for line in self.path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def started(self, job: str) -> list[dict]:
        return [line for line in self.lines() if line["message"].startswith(f"task {job} started")]

    def succeeded(self, job: str) -> int:
        return sum(f"{task_name(job)}[" in line["message"] and "succeeded" in line["message"] for line in self.lines())


@pytest.fixture
def web(app, scaled):
    """The web side in scaled mode: its jobs go to Redis, and the worker above runs them."""
    flask_app = create_app({**{k: v for k, v in app.config.items() if k.isupper()}, **scaled, "TESTING": True})
    yield flask_app
    get_engine(flask_app).dispose()


def wait_for(check, seconds: float = 45.0, what: str = "the worker", log: WorkerLog | None = None):
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = log.path.read_text(errors="replace")[-4000:] if log is not None else ""
            pytest.fail(f"waited {seconds:.0f} s for {what}\n{tail}")
        time.sleep(0.2)


def submit_return(web, request_id: str) -> str:
    api = web.test_client()
    assert post_json(api, "/api/v1/products", PRODUCTS).status_code == 200
    assert post_json(api, "/api/v1/orders", order_payload()).status_code == 201
    shopper = web.test_client()
    login_shopper(shopper)
    data = form_for(shopper, **{"0": {"quantity": "1", "reason": "size_fit"}})
    response = shopper.post("/order/request", data=data, headers={"X-Request-ID": request_id})
    assert response.status_code in (200, 303)
    with session_scope(web) as session:
        return session.scalars(select(ReturnRequest.rma)).one()


def test_a_queued_job_runs_once_in_the_worker_with_the_app_and_the_request_id(web, worker, inbox):
    _, box = inbox
    box.messages.clear()
    rma = submit_return(web, "shop-req-celery-1")
    # The confirmation went out through the worker: built with the app's templates and settings.
    wait_for(lambda: any(rma in (m["Subject"] or "") for m in box.messages), what="the confirmation email", log=worker)
    (mail,) = [m for m in box.messages if rma in m["Subject"]]
    body = mail.get_body(("plain",)).get_content()
    assert "http://shop.test/" in body  # the worker's app context: PUBLIC_URL and url building
    with session_scope(web) as session:
        emails = session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "email")).all()
        assert emails and all(m.sent_at is not None and m.attempts == 1 for m in emails)
    ran = [line for line in worker.started("deliver_outbox") if line["request_id"] == "shop-req-celery-1"]
    assert ran, worker.path.read_text(errors="replace")[-4000:]  # logged under the id of the request that queued it
    time.sleep(2)  # anything else queued by the submission has run by now
    subjects = [m["Subject"] for m in box.messages]
    assert len([s for s in subjects if rma in s]) == 1, subjects


def test_the_same_task_delivered_again_does_no_harm(web, worker, inbox):
    _, box = inbox
    box.messages.clear()
    rma = submit_return(web, "shop-req-celery-2")
    wait_for(lambda: any(rma in (m["Subject"] or "") for m in box.messages), what="the confirmation email", log=worker)
    celery = web.extensions["portal.celery"]
    before = worker.succeeded("deliver_outbox")
    # The broker hands the same message out again (a worker died before acknowledging it), several
    # times and to both worker processes at once.
    for _ in range(4):
        celery.send_task(task_name("deliver_outbox"), kwargs={}, task_id="redelivered-deliver-outbox")
    wait_for(lambda: worker.succeeded("deliver_outbox") >= before + 4, what="the redelivered tasks", log=worker)
    assert len([m for m in box.messages if rma in m["Subject"]]) == 1
    with session_scope(web) as session:
        assert session.scalar(select(JobFailure.id)) is None


def test_a_task_that_keeps_failing_is_recorded_shown_and_retried(web, worker, engine):
    rma = submit_return(web, "shop-req-celery-3")
    with session_scope(web) as session:
        request = session.scalars(select(ReturnRequest).where(ReturnRequest.rma == rma)).one()
        request_id = request.id
        create_staff(session, "admin@example.com", "Ada Admin", "admin", PASSWORD)
    # The workers' database is behind the code (a table they need is not there yet).
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE photo RENAME TO photo_not_yet"))
    try:
        submit(web, "score_photos", request_id=request_id)

        def recorded():
            with session_scope(web) as session:
                return session.scalars(select(JobFailure).where(JobFailure.task == "score_photos")).first()

        failure = wait_for(recorded, what="the failure record", log=worker)

        # A periodic job is not retried (its next run is): each failed run counts on one open record.
        submit(web, "score_pending_photos")
        submit(web, "score_pending_photos")

        def periodic_recorded():
            with session_scope(web) as session:
                row = session.scalars(select(JobFailure).where(JobFailure.task == "score_pending_photos")).first()
                return row if row is not None and row.attempts == 2 else None

        periodic = wait_for(periodic_recorded, what="the periodic job's failure record", log=worker)
    finally:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE photo_not_yet RENAME TO photo"))
    assert failure.args == {"request_id": request_id}
    assert failure.attempts == 3  # the first run and JOBS_MAX_RETRIES=2 retries with backoff
    assert "photo" in failure.error and failure.resolved_at is None
    assert "[SQL:" not in failure.error and "[parameters:" not in failure.traceback
    assert periodic.args == {} and "photo" in periodic.error
    assert [line["message"] for line in worker.started("score_pending_photos")] == [
        "task score_pending_photos started (attempt 1)"
    ] * 2
    assert [line["message"] for line in worker.started("score_photos")][-3:] == [
        "task score_photos started (attempt 1)",
        "task score_photos started (attempt 2)",
        "task score_photos started (attempt 3)",
    ]

    admin = web.test_client()
    sign_in(admin, "admin@example.com")
    page = admin.get("/admin/jobs")
    row = soup(page).select_one(f'#job-failures tr[data-failure="{failure.id}"]')
    assert row is not None and "score_photos" in row.get_text() and f"request_id={request_id}" in row.get_text()
    before = worker.succeeded("score_photos")
    done = admin.post(f"/admin/jobs/{failure.id}/retry", data={"csrf_token": csrf_token(page.get_data(as_text=True))})
    assert done.status_code == 303
    wait_for(lambda: worker.succeeded("score_photos") > before, what="the retried task", log=worker)
    with session_scope(web) as session:
        rows = session.scalars(select(JobFailure).where(JobFailure.task == "score_photos")).all()
        assert [(r.id, r.resolved_at is not None) for r in rows] == [(failure.id, True)]  # and no new failure


def test_a_job_that_cannot_be_queued_is_recorded(app, scaled):
    broker_down = create_app(
        {
            **{k: v for k, v in app.config.items() if k.isupper()},
            **scaled,
            "BROKER_URL": f"redis://127.0.0.1:{free_port()}/0",
            "CELERY": {"broker_connection_timeout": 0.5, "broker_connection_max_retries": 0},
        }
    )
    broker_down.extensions["portal.celery"].conf.task_publish_retry = False
    try:
        submit(broker_down, "deliver_outbox")
        with session_scope(broker_down) as session:
            (row,) = session.scalars(select(JobFailure)).all()
        assert row.task == "deliver_outbox" and row.resolved_at is None
        assert "Error" in row.error
    finally:
        get_engine(broker_down).dispose()


def test_the_beat_schedule_holds_every_periodic_job(web):
    schedule = web.extensions["portal.celery"].conf.beat_schedule
    every = {name: entry["schedule"] for name, entry in schedule.items()}
    assert every["sweep_escalations"] == 30.0
    for name in ("sweep_surveys", "deliver_outbox", "score_pending_photos", "resolve_refunds"):
        assert every[name] == 30.0, name
    assert every["insight_alerts"] == 900.0
    for name, entry in schedule.items():
        assert entry["task"] == task_name(name)
        assert entry["options"]["expires"] == entry["schedule"]  # a missed run does not pile up
    assert "score_photos" not in every and "fetch_product_images" not in every  # asked for, not timed


def test_the_scheduler_command_starts_beat_with_the_schedule(scaled, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    env.update({f"PORTAL_{k}": str(v) for k, v in scaled.items()})
    env["PORTAL_INSTANCE_PATH"] = str(tmp_path)
    command = [str(Path(sys.executable).parent / "returns-portal"), "scheduler"]
    log_path = tmp_path / "beat.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: "beat: Starting" in log_path.read_text(errors="replace"), 90, "beat to start")
        output = log_path.read_text(errors="replace")
        assert "every     30 s  sweep_escalations" in output
        assert "every    900 s  insight_alerts" in output
        assert f"db -> {tmp_path / 'celerybeat-schedule'}" in output  # its state in the instance folder
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
