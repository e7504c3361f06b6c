"""The Alembic migrations build exactly the schema the models describe, and unwind cleanly.

Runs on SQLite always and on PostgreSQL when PORTAL_DATABASE_URL points at one, each
in a database of its own (the session's schema is left alone).
"""

from __future__ import annotations

from contextlib import ExitStack

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from portal.db import (
    MIGRATION_ONLY_INDEXES,
    MIGRATIONS,
    current_revision,
    downgrade,
    include_object,
    make_engine,
    upgrade,
)
from portal.db.models import Base
from tests.helpers import scratch_database


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def drift(engine) -> list:
    """What autogenerate would write to bring the database to the models: empty when they agree."""
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True, "include_object": include_object}
        )
        return compare_metadata(context, Base.metadata)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_engine(request, tmp_path):
    with ExitStack() as stack:
        url = stack.enter_context(scratch_database(request.param, tmp_path, "portal_migrations"))
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

    downgrade(empty_engine, "base")
    assert current_revision(empty_engine) is None
    assert set(inspect(empty_engine).get_table_names()) <= {"alembic_version"}

    upgrade(empty_engine)
    assert current_revision(empty_engine) == head
    assert drift(empty_engine) == []


def test_postgresql_connections_run_without_jit(empty_engine):
    """The portal's short indexed statements were compiled by PostgreSQL's JIT (its cost estimate, not
    the work, decides), which took longer than running them: the engine turns it off per connection."""
    with empty_engine.connect() as conn:
        if empty_engine.dialect.name == "postgresql":
            assert conn.exec_driver_sql("SHOW jit").scalar() == "off"
        else:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # SQLite's own settings hold
