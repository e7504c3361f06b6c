"""Row locks that hold on SQLite too.

``SELECT ... FOR UPDATE`` is ignored on SQLite, so a read-check-write there lets two transactions
read the same state and both write. ``lock_rows`` takes the lock before anything is read: on
PostgreSQL a ``FOR UPDATE`` on the rows, on SQLite a no-op ``UPDATE`` of them, which takes the
database write lock (waiting for a busy writer) and keeps it until the caller commits or rolls back.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from portal.db.dialects import on_postgresql


def lock_rows(session: Session, model: Any, *where: ColumnElement[bool]) -> None:
    """Hold the rows of ``model`` matching ``where`` until the transaction ends."""
    if not on_postgresql(session):
        session.execute(update(model).where(*where).values(id=model.id).execution_options(synchronize_session=False))
    else:
        session.execute(select(model.id).where(*where).with_for_update())
