"""Scaled mode (PORTAL_JOBS_MODE=celery) refuses to start, saying what is missing, unless nothing
rests on one machine: secrets from the environment, SMTP mail, S3 photos, rate limits in Redis."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from portal import create_app
from portal.cli import main
from portal.config import ConfigError
from portal.crypto import new_key
from portal.db import get_engine

SCALED_ENV = {
    "PORTAL_JOBS_MODE": "celery",
    "PORTAL_BROKER_URL": "redis://127.0.0.1:6379/11",
    "PORTAL_SECRET_KEY": "scaled-secret",
    "PORTAL_API_SECRET": "scaled-api-secret",
    "PORTAL_SMTP_HOST": "smtp.internal",
    "PORTAL_S3_BUCKET": "portal-photos",
    "PORTAL_RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/11",
}


@pytest.fixture
def scaled_env(monkeypatch, tmp_path, database_url):
    for name in list(os.environ):
        if name.startswith("PORTAL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PORTAL_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("PORTAL_DATABASE_URL", database_url)
    monkeypatch.setenv("PORTAL_DATA_KEY", new_key("s1"))
    for name, value in SCALED_ENV.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_everything_set_starts_in_celery_mode(scaled_env):
    app = create_app()
    try:
        assert app.config["JOBS_MODE"] == "celery"
        celery = app.extensions["portal.celery"]
        assert celery.conf.broker_url == SCALED_ENV["PORTAL_BROKER_URL"]
        assert celery.conf.task_acks_late is True
        assert celery.conf.task_reject_on_worker_lost is True
        assert celery.conf.worker_prefetch_multiplier == 1
        # A dead worker's task is looked for every tenth of the visibility timeout (3600 s: every minute).
        assert celery.conf.broker_transport_options == {
            "visibility_timeout": 3600,
            "unacked_restore_interval": 60,
            "unacked_restore_throttle": 1,
        }
        task = celery.tasks["portal.jobs.deliver_outbox"]
        assert task.max_retries == 0 and task.autoretry_for == (Exception,)  # periodic: its next run is the retry
        task = celery.tasks["portal.jobs.score_photos"]
        assert task.max_retries == 5 and task.retry_backoff == 10 and task.autoretry_for == (Exception,)
        assert task.acks_late is True
    finally:
        get_engine(app).dispose()


@pytest.mark.parametrize(
    "unset, named",
    [
        ("PORTAL_BROKER_URL", "PORTAL_BROKER_URL"),
        ("PORTAL_SECRET_KEY", "PORTAL_SECRET_KEY"),
        ("PORTAL_API_SECRET", "PORTAL_API_SECRET"),
        ("PORTAL_SMTP_HOST", "PORTAL_SMTP_HOST"),
        ("PORTAL_S3_BUCKET", "PORTAL_S3_BUCKET"),
        ("PORTAL_RATELIMIT_STORAGE_URI", "PORTAL_RATELIMIT_STORAGE_URI"),
        ("PORTAL_DATA_KEY", "PORTAL_DATA_KEY"),
    ],
)
def test_each_missing_setting_is_refused_by_name(scaled_env, unset, named):
    scaled_env.delenv(unset)
    with pytest.raises(ConfigError) as refused:
        create_app()
    message = str(refused.value)
    assert "PORTAL_JOBS_MODE=celery" in message and named in message
    others = [name for name in SCALED_ENV if name not in (unset, "PORTAL_JOBS_MODE")]
    assert not any(f"  {name} " in message for name in others)  # only what is really missing


@pytest.mark.parametrize(
    "name, value",
    [
        ("PORTAL_RATELIMIT_STORAGE_URI", "memory://"),  # per process: limits would not add up
        ("PORTAL_BROKER_URL", "amqp://guest@localhost//"),  # the workers run on Redis
    ],
)
def test_a_setting_that_cannot_work_at_scale_is_refused(scaled_env, name, value):
    scaled_env.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        create_app()


def test_generated_secrets_in_the_instance_folder_do_not_count(scaled_env, tmp_path):
    # One machine's generated secrets would differ from the next machine's.
    instance = tmp_path / "instance"
    instance.mkdir(parents=True, exist_ok=True)
    (instance / "secret_key").write_text("generated-here")
    (instance / "api_secret").write_text("generated-here-too")
    scaled_env.delenv("PORTAL_SECRET_KEY")
    scaled_env.delenv("PORTAL_API_SECRET")
    with pytest.raises(ConfigError) as refused:
        create_app()
    assert "PORTAL_SECRET_KEY" in str(refused.value) and "PORTAL_API_SECRET" in str(refused.value)


def test_the_commands_refuse_with_the_message_not_a_traceback(scaled_env):
    scaled_env.delenv("PORTAL_SMTP_HOST")
    result = CliRunner().invoke(main, ["worker"])
    assert result.exit_code == 1
    assert "PORTAL_SMTP_HOST" in result.output and "Traceback" not in result.output


def test_worker_and_scheduler_say_when_jobs_run_in_process(scaled_env):
    scaled_env.setenv("PORTAL_JOBS_MODE", "thread")
    for command in ("worker", "scheduler"):
        result = CliRunner().invoke(main, [command])
        assert result.exit_code == 1 and "PORTAL_JOBS_MODE=celery" in result.output, command


def test_an_unknown_jobs_mode_is_refused(scaled_env):
    scaled_env.setenv("PORTAL_JOBS_MODE", "celeryy")
    with pytest.raises(RuntimeError, match="PORTAL_JOBS_MODE must be one of"):
        create_app()


def test_embedded_mode_needs_none_of_it(monkeypatch, tmp_path, database_url):
    for name in list(os.environ):
        if name.startswith("PORTAL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PORTAL_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("PORTAL_DATABASE_URL", database_url)
    app = create_app()
    try:
        assert app.config["JOBS_MODE"] == "eager" and "portal.celery" not in app.extensions
    finally:
        get_engine(app).dispose()


def test_the_procfile_starts_web_worker_and_scheduler():
    root = Path(__file__).resolve().parents[2]
    entries = dict(
        line.split(":", 1) for line in (root / "Procfile").read_text().splitlines() if line and not line.startswith("#")
    )
    assert set(entries) == {"web", "worker", "scheduler"}
    web = entries["web"].split()
    assert web[0] == "gunicorn" and web[-1] == "wsgi:app" and web[web.index("--workers") + 1] == "2"
    for name in ("worker", "scheduler"):
        program, command, *_ = entries[name].split()
        assert program == "returns-portal" and command in main.commands, name
