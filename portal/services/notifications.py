"""Staff notifications (escalations tell people here): list them, count the unread, mark them read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from portal.db.models import StaffNotification


def recent_notifications(session: Session, staff_id: int, limit: int = 100) -> list[StaffNotification]:
    """One person's notifications, newest first."""
    stmt = (
        select(StaffNotification)
        .where(StaffNotification.staff_id == staff_id)
        .order_by(StaffNotification.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def unread_count(session: Session, staff_id: int) -> int:
    return (
        session.scalar(
            select(func.count(StaffNotification.id)).where(
                StaffNotification.staff_id == staff_id, StaffNotification.read_at.is_(None)
            )
        )
        or 0
    )


def mark_notifications_read(session: Session, staff_id: int, now: datetime | None = None) -> int:
    """Mark every unread notification of one person read (others' stay as they are); returns how many.

    Marking twice is harmless: already-read notifications keep the time they were first read.
    """
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]  # an UPDATE gives a CursorResult
        update(StaffNotification)
        .where(StaffNotification.staff_id == staff_id, StaffNotification.read_at.is_(None))
        .values(read_at=now or datetime.now(UTC))
    )
    session.commit()
    return result.rowcount
