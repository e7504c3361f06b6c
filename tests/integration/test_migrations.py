"""The Alembic migrations build exactly the schema the models describe, and unwind cleanly.

Runs on SQLite always and on PostgreSQL when PORTAL_DATABASE_URL points at one, each
in a database of its own (the session's schema is left alone).
"""

from __future__ import annotations

import os
import uuid
from contextlib import ExitStack, contextmanager

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from portal.db import MIGRATION_ONLY_INDEXES, MIGRATIONS, current_revision, include_object, make_engine, upgrade
from portal.db.models import Base
from tests.helpers import service_missing


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def downgrade(engine, revision: str = "base") -> None:
    """The counterpart of ``portal.db.upgrade``: same configuration, on the engine's connection."""
    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def drift(engine) -> list:
    """What autogenerate would write to bring the database to the models: empty when they agree."""
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True, "include_object": include_object}
        )
        return compare_metadata(context, Base.metadata)


@contextmanager
def _postgres_database():
    """A throwaway PostgreSQL database next to the configured one; dropped afterwards."""
    configured = os.environ.get("PORTAL_DATABASE_URL", "")
    if not configured.startswith("postgresql"):
        pytest.skip("PostgreSQL is not configured (PORTAL_DATABASE_URL)")
    import psycopg

    admin = make_url(configured).set(drivername="postgresql")
    admin_dsn = admin.render_as_string(hide_password=False)
    name = f"portal_migrations_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        service_missing(f"PostgreSQL unavailable: {exc}")
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_engine(request, tmp_path):
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / 'migrations.sqlite3'}"
        else:
            url = stack.enter_context(_postgres_database())
        engine = make_engine(url)
        stack.callback(engine.dispose)  # before the database is dropped
        yield engine


def test_upgrade_matches_models_and_downgrade_unwinds(empty_engine):
    head = ScriptDirectory.from_config(_config()).get_current_head()

    upgrade(empty_engine)
    assert current_revision(empty_engine) == head
    assert drift(empty_engine) == []
    # The indexes left out of the comparison are there, on PostgreSQL only.
    found = {
        ix["name"]
        for table in inspect(empty_engine).get_table_names()
        for ix in inspect(empty_engine).get_indexes(table)
    }
    expected = MIGRATION_ONLY_INDEXES if empty_engine.dialect.name == "postgresql" else frozenset()
    assert found & MIGRATION_ONLY_INDEXES == expected

    downgrade(empty_engine)
    assert current_revision(empty_engine) is None
    assert set(inspect(empty_engine).get_table_names()) <= {"alembic_version"}

    upgrade(empty_engine)
    assert current_revision(empty_engine) == head
    assert drift(empty_engine) == []
