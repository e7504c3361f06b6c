"""Background work a change needs once it is committed (deliver the outbox, score new photos).

Services call ``defer``; the job runner, hooked to the session factory's after-commit
event, starts the work only when the transaction really committed (a rollback drops it).
Services never start jobs themselves, and views never have to remember to.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

_KEY = "portal.deferred"


def defer(session: Session, job: str, **params: Any) -> None:
    """Ask for ``job`` to run with ``params`` after this session's next commit (duplicates collapse)."""
    pending: list[tuple[str, tuple[tuple[str, Any], ...]]] = session.info.setdefault(_KEY, [])
    item = (job, tuple(sorted(params.items())))
    if item not in pending:
        pending.append(item)


def take_deferred(session: Session) -> list[tuple[str, dict[str, Any]]]:
    """The work asked for since the last commit or rollback, emptied."""
    pending = session.info.pop(_KEY, [])
    return [(job, dict(params)) for job, params in pending]


def drop_deferred(session: Session) -> None:
    session.info.pop(_KEY, None)
