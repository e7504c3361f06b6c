"""``INSERT ... ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL alike."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from portal.db.dialects import on_postgresql


def insert_if_absent(session: Session, model: Any, key: str | tuple[str, ...], values: dict[str, Any]) -> bool:
    """Insert one row unless a row with the same unique ``key`` (a column, or several) exists; True when
    this call inserted it.

    Two requests inserting the same key at once both succeed: one inserts, the other waits for it
    (PostgreSQL's unique index, SQLite's write lock) and inserts nothing, instead of failing with an
    IntegrityError as a select-then-insert would.
    """
    dialect = postgresql if on_postgresql(session) else sqlite
    table = model.__table__
    keys = [key] if isinstance(key, str) else list(key)
    statement = (
        dialect.insert(table).values(**values).on_conflict_do_nothing(index_elements=keys).returning(table.c[keys[0]])
    )
    # RETURNING, not rowcount: psycopg reports no row count for this statement.
    return session.execute(statement).first() is not None
