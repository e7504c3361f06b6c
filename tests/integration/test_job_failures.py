"""Jobs that keep failing are recorded (in-process backend here; Celery in test_celery_worker.py),
shown to admins and run again on request; the registry feeds the in-process ticker."""

from __future__ import annotations

import threading
from functools import partial

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from portal.cli import _ticker, main
from portal.db.models import AuditLog, JobFailure
from portal.domain.errors import Conflict, InvalidInput, NotFound
from portal.jobs import drain, kick, registry
from portal.services.job_failures import describe, record_failure, retry_failure, scrub
from portal.services.staff import create_staff
from tests.helpers import PASSWORD, csrf_token, sign_in, soup


class Flaky:
    """A job that fails until it is told the cause is fixed, and counts its successful runs."""

    def __init__(self) -> None:
        self.broken = True
        self.runs: list[int] = []

    def __call__(self, app, order: int = 0) -> None:
        if self.broken:
            raise ConnectionError(
                f"carrier API refused the call for li.wei@example.com, phone +86 138 0013 8000 ({order})"
            )
        self.runs.append(order)


@pytest.fixture
def flaky(monkeypatch):
    job = Flaky()
    monkeypatch.setitem(registry._REGISTRY, "flaky_sync", registry.Job("flaky_sync", job))
    return job


def failures(session) -> list[JobFailure]:
    session.expire_all()
    return list(session.scalars(select(JobFailure).order_by(JobFailure.id)))


def test_a_job_raising_on_the_worker_thread_is_recorded_without_personal_data(app, flaky, session):
    app.config["JOBS_MODE"] = "thread"
    kick(app, partial(flaky, order=7))
    drain()
    (row,) = failures(session)
    assert row.task == "flaky_sync" and row.args == {"order": 7}
    assert row.attempts == 1 and row.resolved_at is None
    assert row.error.startswith("ConnectionError: carrier API refused the call")
    for text in (row.error, row.traceback):
        assert "li.wei@example.com" not in text and "138 0013 8000" not in text
    assert "l***@e***.com" in row.error
    assert "in __call__" in row.traceback  # where it failed: file, line and function


def test_the_same_failure_again_counts_on_its_open_row(app, flaky, session):
    kick(app, partial(flaky, order=1))
    kick(app, partial(flaky, order=1))
    kick(app, partial(flaky, order=2))
    rows = failures(session)
    assert [(r.args, r.attempts) for r in rows] == [({"order": 1}, 2), ({"order": 2}, 1)]
    assert rows[0].last_failed_at >= rows[0].first_failed_at


def test_retry_runs_the_job_again_once_the_cause_is_fixed(app, flaky, session):
    kick(app, partial(flaky, order=3))
    (row,) = failures(session)
    flaky.broken = False
    retry_failure(session, row.id, lambda name: registry.get(name) is not None)
    assert flaky.runs == [3]  # eager mode: it ran after the retry's commit
    (row,) = failures(session)
    assert row.resolved_at is not None
    with pytest.raises(Conflict):
        retry_failure(session, row.id, lambda name: True)
    with pytest.raises(NotFound):
        retry_failure(session, 999999, lambda name: True)


def test_a_retry_that_fails_again_opens_a_new_record(app, flaky, session):
    kick(app, partial(flaky, order=4))
    (first,) = failures(session)
    retry_failure(session, first.id, lambda name: registry.get(name) is not None)
    rows = failures(session)
    assert len(rows) == 2 and rows[0].resolved_at is not None and rows[1].resolved_at is None


def test_a_job_that_no_longer_exists_cannot_be_retried(app, session):
    record_failure(session, "gone_job", {}, RuntimeError("x"))
    (row,) = failures(session)
    with pytest.raises(InvalidInput):
        retry_failure(session, row.id, lambda name: registry.get(name) is not None)
    assert failures(session)[0].resolved_at is None


@pytest.mark.parametrize(
    "message, gone",
    [
        ("refused for li.wei@example.com", "li.wei@example.com"),
        ("call +86 138-0013-8000 later", "138-0013-8000"),
        ("(psycopg.errors.X) boom\n[SQL: UPDATE t SET email=%(email)s]\n[parameters: {'email': 'a@b.cn'}]", "a@b.cn"),
        ("(sqlite3.IntegrityError) x [SQL: INSERT INTO shop_order (customer_name) VALUES (?)]", "customer_name"),
    ],
)
def test_scrub_takes_out_personal_data(message, gone):
    assert gone not in scrub(message)
    error, excerpt = describe(RuntimeError(message))
    assert gone not in error and gone not in excerpt
    assert "\n" not in error  # one line, whatever the message carried


def test_scrub_keeps_ids_and_words():
    assert scrub("request 12345 on line 7 failed") == "request 12345 on line 7 failed"


def test_admin_page_lists_failures_and_retry_needs_the_csrf_token(app, client, session, flaky):
    create_staff(session, "admin@example.com", "Ada Admin", "admin", PASSWORD)
    sign_in(client, "admin@example.com")
    kick(app, partial(flaky, order=9))
    record_failure(session, "gone_job", {"request_id": 5}, ValueError("old code"))
    page = client.get("/admin/jobs")
    assert page.status_code == 200
    html = soup(page)
    rows = html.select("#job-failures tbody tr[data-failure]")
    assert [r.select_one("code").get_text() for r in rows] == ["gone_job", "flaky_sync"]
    flaky_row = rows[1]
    assert "ConnectionError: carrier API refused" in flaky_row.get_text()
    assert flaky_row.select_one("button").get_text() == "Retry"
    assert rows[0].select_one("button") is None  # a job the code no longer has: no button
    failure_id = int(flaky_row["data-failure"])

    assert client.post(f"/admin/jobs/{failure_id}/retry").status_code == 400  # no CSRF token
    assert flaky.runs == []
    flaky.broken = False
    done = client.post(f"/admin/jobs/{failure_id}/retry", data={"csrf_token": csrf_token(page.get_data(as_text=True))})
    assert done.status_code == 303
    assert flaky.runs == [9]
    again = client.post(f"/admin/jobs/{failure_id}/retry", data={"csrf_token": csrf_token(page.get_data(as_text=True))})
    assert again.status_code == 409  # already retried: said so, nothing runs twice
    assert flaky.runs == [9]
    after = soup(client.get("/admin/jobs"))
    assert [r.select_one("code").get_text() for r in after.select("#job-failures tbody tr[data-failure]")] == [
        "gone_job"
    ]
    assert "flaky_sync" in after.select_one("#job-retried").get_text()
    audit = session.scalars(select(AuditLog).where(AuditLog.action == "retry_job")).one()
    assert audit.after == {"task": "flaky_sync", "args": {"order": 9}}


def test_admin_page_in_chinese(client, session):
    create_staff(session, "admin@example.com", "Ada Admin", "admin", PASSWORD)
    sign_in(client, "admin@example.com")
    record_failure(session, "deliver_outbox", {}, OSError("disk full"))
    page = client.get("/admin/jobs", headers={"Accept-Language": "zh-CN"})
    assert page.status_code == 200
    assert "OSError: disk full" in page.get_data(as_text=True)


def test_cli_lists_and_retries_failures(app, monkeypatch, database_url, session, flaky):
    monkeypatch.setenv("PORTAL_INSTANCE_PATH", app.config["INSTANCE_PATH"])
    monkeypatch.setenv("PORTAL_DATABASE_URL", database_url)
    monkeypatch.setenv("PORTAL_SECRET_KEY", app.config["SECRET_KEY"])
    monkeypatch.setenv("PORTAL_API_SECRET", app.config["API_SECRET"])
    kick(app, partial(flaky, order=11))
    (row,) = failures(session)
    runner = CliRunner()
    listed = runner.invoke(main, ["jobs", "failed"], catch_exceptions=False)
    assert listed.exit_code == 0
    assert f"{row.id}  flaky_sync" in listed.output and "ConnectionError" in listed.output and "1 open" in listed.output
    flaky.broken = False
    retried = runner.invoke(main, ["jobs", "retry", str(row.id)], catch_exceptions=False)
    assert retried.exit_code == 0, retried.output
    assert flaky.runs == [11]
    twice = runner.invoke(main, ["jobs", "retry", str(row.id)])
    assert twice.exit_code == 1 and "already retried" in twice.output
    assert "0 open" in runner.invoke(main, ["jobs", "failed"]).output


def test_the_ticker_runs_each_periodic_job_from_the_registry(app, monkeypatch, session):
    ran: list[str] = []
    for job in registry.periodic_jobs():
        monkeypatch.setitem(
            registry._REGISTRY, job.name, registry.Job(job.name, lambda app, n=job.name: ran.append(n), job.every)
        )
    monkeypatch.setitem(
        registry._REGISTRY, "purge_test", registry.Job("purge_test", lambda app: ran.append("purge_test"), 90.0)
    )
    stop = threading.Event()
    ticks = 0

    def wait(_interval):  # three ticks, then stop
        nonlocal ticks
        ticks += 1
        return ticks > 3

    monkeypatch.setattr(stop, "wait", wait)
    _ticker(app, 30.0, stop)
    every_tick = ["sweep_escalations", "sweep_surveys", "deliver_outbox", "score_pending_photos", "resolve_refunds"]
    assert [n for n in ran if n in every_tick] == every_tick * 3
    assert ran.count("insight_alerts") == 1  # every 15 minutes: the first tick of three
    assert ran.count("purge_test") == 1  # a job registered once runs in the ticker too
    assert session.scalar(select(func.count()).select_from(JobFailure)) == 0


def test_workers_failing_at_once_count_on_one_open_record(app, session):
    from portal.db import session_scope

    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def fail_once() -> None:
        try:
            with session_scope(app) as own:
                barrier.wait(timeout=10)
                record_failure(own, "deliver_outbox", {}, TimeoutError("smtp timed out"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=fail_once) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    (row,) = failures(session)
    assert row.attempts == 4 and row.error == "TimeoutError: smtp timed out"
