"""The scaled stack on loopback, started by one context manager (for the suite and the bench).

A throwaway PostgreSQL database (migrated), a redis-server of its own (append-only, so a restart
keeps the queue), SeaweedFS with its S3 gateway, an aiosmtpd SMTP server, gunicorn on
``wsgi:app``, Celery workers and beat. Whatever was started is stopped on the way out, also after
a failure.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.helpers import API_SECRET, free_port, http_get
from tests.integration.s3_server import S3Server, SeaweedS3
from tests.stack.harness import BIN, HoldingProxy, Inbox, Service, redis_ready, redis_service


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
    web: Service | None = None
    workers: list[Service] = field(default_factory=list)
    schedulers: list[Service] = field(default_factory=list)
    celery: bool = False
    running: list[Service] = field(default_factory=list)  # every process started, for their logs

    @property
    def broker_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def services(self) -> list[Service]:
        return [s for s in (self.redis, self.web, *self.workers, *self.schedulers) if s is not None]

    def start_workers(self, *names: str, **settings: str) -> list[Service]:
        """Celery workers of one process each (``settings`` on top of the stack's); they read photos
        through the holding proxy."""
        env = {**self.app_env, "PORTAL_S3_ENDPOINT_URL": f"http://127.0.0.1:{self.s3_proxy.port}", **settings}
        started = []
        for name in names:
            argv = [str(BIN / "returns-portal"), "worker", "--concurrency", "1", "--hostname", f"{name}@%h"]
            worker = Service(name, argv, env, self.workdir)
            self.running.append(worker.start())
            self.workers.append(worker)
            started.append(worker)
        for worker in started:
            worker.wait_until(lambda w=worker: " ready." in w.log_path.read_text(errors="replace"), "worker ready", 90)
        return started

    def start_web(self, workers: int = 2, **env: str) -> Service:
        """gunicorn on ``wsgi:app`` (the stack's settings, ``env`` on top), ready when /readyz says so."""
        port = int(self.base_url.rsplit(":", 1)[1])
        argv = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--bind", f"127.0.0.1:{port}"]
        argv += ["--graceful-timeout", "5", "--no-control-socket", "wsgi:app"]
        self.web = Service("gunicorn", argv, {**self.app_env, **env}, self.workdir)
        self.running.append(self.web.start())
        self.web.wait_until(lambda: http_get(f"{self.base_url}/readyz")[0] == 200, "200 from /readyz", 120)
        return self.web

    def stop_web(self) -> None:
        if self.web is not None:
            self.web.stop(signal.SIGQUIT, grace=5)  # no graceful wait: nothing is in flight

    def start_scheduler(self, name: str) -> Service:
        argv = [str(BIN / "returns-portal"), "scheduler", "--schedule", str(self.workdir / f"{name}-schedule")]
        beat = Service(name, argv, self.app_env, self.workdir)
        self.running.append(beat.start())
        self.schedulers.append(beat)
        beat.wait_until(lambda: "beat: Starting" in beat.log_path.read_text(errors="replace"), "beat started", 60)
        return beat

    def stop_jobs(self) -> None:
        """Workers and beats at once, without waiting for running tasks (a cold shutdown)."""
        for service in self.workers + self.schedulers:
            service.send(signal.SIGQUIT)
        for service in self.workers + self.schedulers:
            service.stop(signal.SIGQUIT, grace=5)

    def stop_redis(self) -> None:
        """A clean stop: the append-only file is complete."""
        self.redis.stop()

    def start_redis(self) -> None:
        """Start again on the same port and folder, with what the append-only file kept."""
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


@contextmanager
def running_stack(
    server_url: str,
    weed: str,
    *,
    web_workers: int = 2,
    workers: tuple[str, ...] = ("worker-1", "worker-2"),
    schedulers: tuple[str, ...] = ("beat-1",),
    celery: bool = True,
    keep_logs: str | None = None,
) -> Iterator[Stack]:
    """Start the stack on a fresh database of the PostgreSQL server of ``server_url``; stop it all
    and drop the database on the way out (``keep_logs``: a folder to copy the logs to first).
    Raises ``ServiceFailed`` (or ``ServerFailed`` for SeaweedFS) with the log when a part does not start."""
    from aiosmtpd.controller import Controller

    from portal.db import make_engine, upgrade

    workdir = Path(tempfile.mkdtemp(prefix="portal-stack-"))
    cleanups = []
    running: Stack | None = None
    try:
        database_url = _create_database(server_url)
        cleanups.append(lambda: _drop_database(database_url))
        engine = make_engine(database_url)
        upgrade(engine)
        engine.dispose()

        redis_port = free_port()
        redis = redis_service(redis_port, workdir)
        redis.start()
        cleanups.append(redis.stop)
        redis.wait_until(lambda: redis_ready(f"redis://127.0.0.1:{redis_port}/0"), "PING answered", 30)

        weed_server = SeaweedS3(weed, bucket="stack-photos")
        cleanups.append(weed_server.stop)
        s3 = weed_server.start()
        proxy = HoldingProxy(int(s3.endpoint_url.rsplit(":", 1)[1]))
        cleanups.append(proxy.close)

        inbox = Inbox()
        smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
        smtp.start()
        cleanups.append(smtp.stop)

        web_port = free_port()
        app_env = {
            **_base_env(workdir),
            "PORTAL_INSTANCE_PATH": str(workdir / "instance"),
            "PORTAL_DATABASE_URL": database_url,
            "PORTAL_SECRET_KEY": secrets.token_urlsafe(32),
            "PORTAL_API_SECRET": API_SECRET,
            "PORTAL_PUBLIC_URL": f"http://127.0.0.1:{web_port}",
            "PORTAL_BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
            "PORTAL_RATELIMIT_STORAGE_URI": f"redis://127.0.0.1:{redis_port}/1",
            "PORTAL_LOOKUP_LIMIT": "100000 per minute",
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

        running = Stack(
            workdir=workdir,
            database_url=database_url,
            redis_port=redis_port,
            s3=s3,
            s3_proxy=proxy,
            smtp_port=smtp.port,
            inbox=inbox,
            base_url=f"http://127.0.0.1:{web_port}",
            app_env=app_env,
            redis=redis,
            celery=celery,
        )
        running.running.append(redis)
        cleanups.append(running.stop_web)
        cleanups.append(running.stop_jobs)
        running.start_web(web_workers)
        if celery:
            if workers:
                running.start_workers(*workers)
            for name in schedulers:
                running.start_scheduler(name)
        yield running
    finally:
        errors = []
        for cleanup in reversed(cleanups):
            try:
                cleanup()
            except Exception as exc:  # every step runs; the first error is raised
                errors.append(exc)
        if keep_logs:
            Path(keep_logs).mkdir(parents=True, exist_ok=True)
            for log in workdir.glob("*.log"):
                shutil.copy(log, Path(keep_logs) / log.name)
        shutil.rmtree(workdir, ignore_errors=True)
        if errors:
            raise errors[0]
