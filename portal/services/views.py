"""Queue views a staff member saves for themselves: a name and the queue's address query."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.db.models import SavedView
from portal.domain.errors import InvalidInput, NotFound
from portal.domain.text import N_

# Only the queue's own parameters are kept (never a page number or anything else in the address).
QUEUE_PARAMS = ("view", "q", "priority", "team", "sort", "dir", "status", "channel", "category", "reason")
MAX_VIEWS = 20


def clean_query(query: str) -> str:
    pairs = [(k, v[:100]) for k, v in parse_qsl(query.lstrip("?"), keep_blank_values=False) if k in QUEUE_PARAMS]
    return urlencode(dict(pairs))


def saved_views(session: Session, staff_id: int) -> list[SavedView]:
    return list(session.scalars(select(SavedView).where(SavedView.staff_id == staff_id).order_by(SavedView.name)))


def save_view(session: Session, staff_id: int, name: str, query: str) -> SavedView:
    """Save (or overwrite, by name) a view for ``staff_id`` (commits)."""
    name = " ".join((name or "").split())[:64]
    if not name:
        raise InvalidInput(N_("Give the view a name."))
    mine = {v.name: v for v in saved_views(session, staff_id)}
    row = mine.get(name)
    if row is None:
        if len(mine) >= MAX_VIEWS:
            raise InvalidInput(N_("You can keep up to %(n)d views; delete one first."), n=MAX_VIEWS)
        row = SavedView(staff_id=staff_id, name=name, query="")
        session.add(row)
    row.query = clean_query(query)
    session.commit()
    return row


def delete_view(session: Session, staff_id: int, view_id: int) -> None:
    row = session.get(SavedView, view_id)
    if row is None or row.staff_id != staff_id:
        raise NotFound()
    session.delete(row)
    session.commit()
