"""Who else has a ticket open: each open ticket page says "still here" every few seconds, and the
page names the other staff members seen on it lately, before anyone acts twice."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from portal.db.models import StaffUser, TicketViewer
from portal.db.upsert import insert_if_absent

STILL_HERE = timedelta(seconds=60)  # the page says so every 20 seconds; a closed page drops out after this


def mark_seen(session: Session, ticket_id: int, staff_id: int, now: datetime) -> None:
    """Record that ``staff_id`` has the ticket open now (commits)."""
    values = {"ticket_id": ticket_id, "staff_id": staff_id, "seen_at": now}
    if not insert_if_absent(session, TicketViewer, ("ticket_id", "staff_id"), values):
        session.execute(
            update(TicketViewer)
            .where(TicketViewer.ticket_id == ticket_id, TicketViewer.staff_id == staff_id)
            .values(seen_at=now)
        )
    session.commit()


def others_here(session: Session, ticket_id: int, staff_id: int, now: datetime) -> list[str]:
    """Names of the other staff members seen on the ticket within ``STILL_HERE``."""
    return list(
        session.scalars(
            select(StaffUser.name)
            .join(TicketViewer, TicketViewer.staff_id == StaffUser.id)
            .where(
                TicketViewer.ticket_id == ticket_id,
                TicketViewer.staff_id != staff_id,
                TicketViewer.seen_at >= now - STILL_HERE,
            )
            .order_by(StaffUser.name)
        )
    )
