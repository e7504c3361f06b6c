"""``INSERT ... ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL alike."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_if_absent(session: Session, model: type, key: str, values: dict[str, Any]) -> bool:
    """Insert one row unless a row with the same unique ``key`` exists; True when this call inserted it.

    Two requests inserting the same key at once both succeed: one inserts, the other waits for it
    (PostgreSQL's unique index, SQLite's write lock) and inserts nothing, instead of failing with an
    IntegrityError as a select-then-insert would.
    """
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(model).values(**values).on_conflict_do_nothing(index_elements=[key])
    return session.execute(statement).rowcount == 1  # type: ignore[attr-defined]  # an INSERT gives a CursorResult
