"""The real stack on loopback, started once for the suite (see ``tests/stack/stack.py``).

Runs on the PostgreSQL pass only; skips on a machine without the tools, and fails instead when
``PORTAL_REQUIRE_SERVICES=1``. ``PORTAL_STACK_LOGS=<folder>`` keeps the services' logs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.helpers import service_missing
from tests.integration.s3_server import ServerFailed, find_weed
from tests.stack.harness import REDIS_SERVER, ServiceFailed
from tests.stack.stack import running_stack

_STACKS: list = []  # the running stack, for the logs of a failed test


def celery_available() -> bool:
    """The jobs package offers the Celery backend and the command line its worker."""
    try:
        import celery  # noqa: F401

        from portal.cli import main
    except ImportError:
        return False
    commands = getattr(main, "commands", {})
    return "worker" in commands and "scheduler" in commands


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
    try:
        with running_stack(url, weed, celery=celery_available(), keep_logs=os.environ.get("PORTAL_STACK_LOGS")) as up:
            _STACKS.append(up)
            yield up
    except (ServiceFailed, ServerFailed) as exc:
        pytest.fail(f"the stack did not start: {exc}", pytrace=False)
    finally:
        _STACKS.clear()


@pytest.fixture
def celery_stack(stack):
    if not stack.celery:
        service_missing("the Celery backend (returns-portal worker / scheduler) is not installed")
    return stack


@pytest.fixture
def db(stack):
    """A session on the stack's database, to look at what the processes did."""
    from sqlalchemy.orm import Session

    from portal import crypto
    from portal.db import make_engine

    if "PORTAL_DATA_KEY" in stack.app_env:  # the stack's personal data is read and written under its key
        crypto.install(crypto.parse_keyring(stack.app_env["PORTAL_DATA_KEY"]))
    engine = make_engine(stack.database_url)
    with Session(engine) as session:
        yield session
    engine.dispose()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and _STACKS:
        report.sections.append(("stack logs", "\n".join(s.tail() for s in _STACKS[0].running)))
