"""The real stack on loopback, started once for the suite.

A throwaway PostgreSQL database (migrated), a redis-server of its own (append-only, so a restart
keeps the queue), SeaweedFS with its S3 gateway, an aiosmtpd SMTP server, gunicorn with two
workers on ``wsgi:app``, two Celery workers and beat. Runs on the PostgreSQL pass only; skips on
a machine without the tools, fails instead when ``PORTAL_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.helpers import API_SECRET, free_port, http_get, service_missing
from tests.integration.s3_server import S3Server, SeaweedS3, ServerFailed, find_weed
from tests.stack.harness import (
    BIN,
    REDIS_SERVER,
    HoldingProxy,
    Inbox,
    Service,
    ServiceFailed,
    redis_ready,
    redis_service,
)

_RUNNING: list[Service] = []  # for the logs of a failed test


@dataclass
class Stack:
    workdir: Path
    database_url: str
    redis_port: int
    s3: S3Server
    s3_proxy: HoldingProxy
    smtp_port: int
    inbox: Inbox
    base_url: str
    app_env: dict[str, str]
    redis: Service
    web: Service
    workers: list[Service] = field(default_factory=list)
    schedulers: list[Service] = field(default_factory=list)
    celery: bool = False

    @property
    def broker_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def services(self) -> list[Service]:
        return [self.redis, self.web, *self.workers, *self.schedulers]

    def start_workers(self, *names: str) -> list[Service]:
        """Celery workers of one process each; they read photos through the holding proxy."""
        env = {**self.app_env, "PORTAL_S3_ENDPOINT_URL": f"http://127.0.0.1:{self.s3_proxy.port}"}
        started = []
        for name in names:
            argv = [str(BIN / "returns-portal"), "worker", "--concurrency", "1", "--hostname", f"{name}@%h"]
            worker = Service(name, argv, env, self.workdir)
            _RUNNING.append(worker.start())
            self.workers.append(worker)
            started.append(worker)
        for worker in started:
            worker.wait_until(lambda w=worker: " ready." in w.log_path.read_text(errors="replace"), "worker ready", 90)
        return started

    def start_scheduler(self, name: str) -> Service:
        argv = [str(BIN / "returns-portal"), "scheduler", "--schedule", str(self.workdir / f"{name}-schedule")]
        beat = Service(name, argv, self.app_env, self.workdir)
        _RUNNING.append(beat.start())
        self.schedulers.append(beat)
        beat.wait_until(lambda: "beat: Starting" in beat.log_path.read_text(errors="replace"), "beat started", 60)
        return beat

    def stop_jobs(self) -> None:
        """Workers and beats at once, without waiting for running tasks (a cold shutdown)."""
        for service in self.workers + self.schedulers:
            service.send(signal.SIGQUIT)
        for service in self.workers + self.schedulers:
            service.stop(signal.SIGQUIT, grace=5)

    def restart_redis(self) -> None:
        """A clean stop (the append-only file is complete) and a start on the same port and folder."""
        self.redis.stop()
        self.redis.start()
        self.redis.wait_until(lambda: redis_ready(self.broker_url), "PING answered", 30)

    def logs(self) -> str:
        return "\n".join(s.tail() for s in self.services)


def _create_database(url: str) -> str:
    import psycopg

    name = f"stack_{secrets.token_hex(6)}"
    parsed = make_url(url)
    with psycopg.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        dbname="postgres",
        autocommit=True,
    ) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return parsed.set(database=name).render_as_string(hide_password=False)


def _drop_database(url: str) -> None:
    import psycopg

    parsed = make_url(url)
    with psycopg.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        dbname="postgres",
        autocommit=True,
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')


def celery_available() -> bool:
    """The jobs package offers the Celery backend and the command line its worker."""
    try:
        import celery  # noqa: F401

        from portal.cli import main
    except ImportError:
        return False
    commands = getattr(main, "commands", {})
    return "worker" in commands and "scheduler" in commands


def _base_env(workdir: Path) -> dict[str, str]:
    """The caller's environment without its portal and AWS settings (those of the test run)."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("PORTAL_", "AWS_", "PROMETHEUS_"))}
    return {
        **keep,
        "AWS_CONFIG_FILE": str(workdir / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(workdir / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture(scope="session")
def stack():
    url = os.environ.get("PORTAL_DATABASE_URL", "")
    if not url.startswith("postgresql"):
        pytest.skip("the stack suite runs against PostgreSQL (set PORTAL_DATABASE_URL)")
    try:
        import aiosmtpd  # noqa: F401
        import boto3  # noqa: F401
        import gunicorn  # noqa: F401
        import psycopg  # noqa: F401
        import redis  # noqa: F401
    except ImportError as exc:
        service_missing(f"{exc.name} not installed (the test extra)")
    weed = find_weed()
    if weed is None:
        service_missing("SeaweedFS (weed) not installed")
    if not Path(REDIS_SERVER).exists():
        service_missing(f"no {REDIS_SERVER} (Debian: redis-server)")
    if not sys.platform.startswith("linux"):
        pytest.skip("the stack suite reads /proc to find which process holds a task")

    from aiosmtpd.controller import Controller

    from portal.db import make_engine, upgrade

    workdir = Path(tempfile.mkdtemp(prefix="portal-stack-"))
    cleanups = []
    try:
        database_url = _create_database(url)
        cleanups.append(lambda: _drop_database(database_url))
        engine = make_engine(database_url)
        upgrade(engine)
        engine.dispose()

        redis_port = free_port()
        redis = redis_service(redis_port, workdir)
        _RUNNING.append(redis.start())
        cleanups.append(redis.stop)
        redis.wait_until(lambda: redis_ready(f"redis://127.0.0.1:{redis_port}/0"), "PING answered", 30)

        weed_server = SeaweedS3(weed, bucket="stack-photos")
        cleanups.append(weed_server.stop)
        try:
            s3 = weed_server.start()
        except ServerFailed as exc:
            pytest.fail(f"SeaweedFS did not start: {exc}", pytrace=False)
        proxy = HoldingProxy(int(s3.endpoint_url.rsplit(":", 1)[1]))
        cleanups.append(proxy.close)

        inbox = Inbox()
        smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
        smtp.start()
        cleanups.append(smtp.stop)

        web_port = free_port()
        celery = celery_available()
        app_env = {
            **_base_env(workdir),
            "PORTAL_INSTANCE_PATH": str(workdir / "instance"),
            "PORTAL_DATABASE_URL": database_url,
            "PORTAL_SECRET_KEY": secrets.token_urlsafe(32),
            "PORTAL_API_SECRET": API_SECRET,
            "PORTAL_PUBLIC_URL": f"http://127.0.0.1:{web_port}",
            "PORTAL_BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
            "PORTAL_RATELIMIT_STORAGE_URI": f"redis://127.0.0.1:{redis_port}/1",
            "PORTAL_LOOKUP_LIMIT": "1000 per minute",
            "PORTAL_S3_BUCKET": s3.bucket,
            "PORTAL_S3_ENDPOINT_URL": s3.endpoint_url,
            "PORTAL_S3_REGION": s3.region,
            "AWS_ACCESS_KEY_ID": s3.access_key,
            "AWS_SECRET_ACCESS_KEY": s3.secret_key,
            "PORTAL_SMTP_HOST": "127.0.0.1",
            "PORTAL_SMTP_PORT": str(smtp.port),
            "PORTAL_MAIL_FROM": "Returns <returns@example.com>",
        }
        if celery:
            app_env["PORTAL_JOBS_MODE"] = "celery"
            try:
                from portal.crypto import new_key
            except ImportError:  # no encryption of personal data in this version
                pass
            else:
                app_env["PORTAL_DATA_KEY"] = new_key()

        argv = [sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{web_port}"]
        web = Service(
            "gunicorn", [*argv, "--graceful-timeout", "5", "--no-control-socket", "wsgi:app"], app_env, workdir
        )
        _RUNNING.append(web.start())
        cleanups.append(lambda: web.stop(signal.SIGQUIT, grace=5))  # the tests are over: no graceful wait
        base_url = f"http://127.0.0.1:{web_port}"
        web.wait_until(lambda: http_get(f"{base_url}/readyz")[0] == 200, "200 from /readyz", 120)

        running = Stack(
            workdir=workdir,
            database_url=database_url,
            redis_port=redis_port,
            s3=s3,
            s3_proxy=proxy,
            smtp_port=smtp.port,
            inbox=inbox,
            base_url=base_url,
            app_env=app_env,
            redis=redis,
            web=web,
            celery=celery,
        )
        cleanups.append(running.stop_jobs)
        if celery:
            running.start_workers("worker-1", "worker-2")
            running.start_scheduler("beat-1")
        yield running
    except ServiceFailed as exc:
        pytest.fail(str(exc), pytrace=False)
    finally:
        errors = []
        for cleanup in reversed(cleanups):
            try:
                cleanup()
            except Exception as exc:  # every step runs; the first error is reported
                errors.append(exc)
        _RUNNING.clear()
        keep = os.environ.get("PORTAL_STACK_LOGS")  # a folder to keep the services' logs in
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            for log in workdir.glob("*.log"):
                shutil.copy(log, Path(keep) / log.name)
        shutil.rmtree(workdir, ignore_errors=True)
        if errors:
            raise errors[0]


@pytest.fixture
def celery_stack(stack):
    if not stack.celery:
        service_missing("the Celery backend (returns-portal worker / scheduler) is not installed")
    return stack


@pytest.fixture
def db(stack):
    """A session on the stack's database, to look at what the processes did."""
    from sqlalchemy.orm import Session

    from portal.db import make_engine

    engine = make_engine(stack.database_url)
    with Session(engine) as session:
        yield session
    engine.dispose()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and _RUNNING:
        report.sections.append(("stack logs", "\n".join(s.tail() for s in _RUNNING if s.log_path.exists())))
