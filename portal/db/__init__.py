"""Engine, sessions and schema upgrades.

Web requests get one session per request (``get_session``); services receive
that session and commit once. Jobs and CLI commands open their own with
``session_scope``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from flask import Flask, current_app, g
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from . import insight_rollups  # noqa: F401  (the rollup tables and their maintenance)
from .models import Base

MIGRATIONS = Path(__file__).with_name("migrations")

# Indexes only the migrations know (PostgreSQL trigram indexes on expressions, for the staff search):
# the models cannot describe them, so comparing the models with a database leaves them out.
MIGRATION_ONLY_INDEXES = frozenset(
    {
        "ix_shop_order_number_trgm",
        "ix_order_line_sku_trgm",
        "ix_return_request_rma_trgm",
        "ix_return_request_pickup_trgm",
    }
)


def include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Alembic's comparison hook: everything but ``MIGRATION_ONLY_INDEXES``."""
    return not (type_ == "index" and name in MIGRATION_ONLY_INDEXES)


def make_engine(url: str, **kwargs) -> Engine:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    # The portal's statements are short and read few rows through indexes: compiling them (PostgreSQL's
    # JIT, which starts from an estimated cost, not a measured one) cost more than running them.
    connect_args = {"options": "-c jit=off", **kwargs.pop("connect_args", {})}
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args, **kwargs)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to date with the Alembic migrations."""
    _migrate(engine, command.upgrade, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the schema back to ``revision`` (``"base"``: nothing) with the migrations' downgrades."""
    _migrate(engine, command.downgrade, revision)


def _migrate(engine: Engine, step: Callable[[Config, str], None], revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            step(cfg, revision)
        return
    # SQLite changes a column's type by copying the table and dropping the old one, which foreign
    # keys pointing at it forbid once it holds rows. As SQLite's own procedure says: foreign keys off
    # (only possible outside a transaction), change, check that every reference still holds, back on.
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        conn.commit()
        try:
            with conn.begin():
                cfg.attributes["connection"] = conn
                step(cfg, revision)
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"the migration left broken references: {broken[:5]}")
        finally:
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            conn.commit()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def init_app(app: Flask) -> None:
    engine = make_engine(app.config["DATABASE_URL"])
    app.extensions["portal.engine"] = engine
    # The zone new insights rollups count days in (see portal.db.insight_rollups).
    info = {"timezone": app.config.get("BABEL_DEFAULT_TIMEZONE") or "Asia/Shanghai"}
    app.extensions["portal.sessionmaker"] = sessionmaker(engine, expire_on_commit=False, info=info)
    app.teardown_appcontext(_close_session)


def get_engine(app: Flask | None = None) -> Engine:
    return (app or current_app).extensions["portal.engine"]


def get_session() -> Session:
    if "db_session" not in g:
        g.db_session = current_app.extensions["portal.sessionmaker"]()
    return g.db_session


def _close_session(_exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


@contextmanager
def session_scope(app: Flask | None = None) -> Iterator[Session]:
    """A session outside a request (jobs, CLI); closed at the end, never auto-committed."""
    session = (app or current_app).extensions["portal.sessionmaker"]()
    try:
        yield session
    finally:
        session.close()


__all__ = ["Base", "make_engine", "upgrade", "downgrade", "init_app", "get_session", "session_scope", "get_engine"]
