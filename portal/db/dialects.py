"""Which database a session talks to, for the few statements written differently on each."""

from __future__ import annotations

from sqlalchemy.orm import Session


def on_postgresql(session: Session) -> bool:
    """True on PostgreSQL; False on SQLite, the embedded default."""
    return session.get_bind().dialect.name == "postgresql"
