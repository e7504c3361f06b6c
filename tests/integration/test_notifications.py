"""Staff notifications: marking read is one person's, commits, and is safe to repeat."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from portal.db.models import StaffNotification
from portal.services.notifications import mark_notifications_read, recent_notifications, unread_count
from portal.services.staff import create_staff


def test_marking_read_touches_only_ones_own_unread_notifications(session):
    ann = create_staff(session, "ann@example.com", "Ann", "agent", "a long enough password")
    bob = create_staff(session, "bob@example.com", "Bob", "lead", "a long enough password")
    earlier = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    session.add_all(
        [
            StaffNotification(staff_id=ann.id, kind="reminder", message="one"),
            StaffNotification(staff_id=ann.id, kind="reminder", message="two"),
            StaffNotification(staff_id=ann.id, kind="reminder", message="old", read_at=earlier),
            StaffNotification(staff_id=bob.id, kind="escalated", message="bob's"),
        ]
    )
    session.commit()
    assert (unread_count(session, ann.id), unread_count(session, bob.id)) == (2, 1)

    assert mark_notifications_read(session, ann.id) == 2
    session.rollback()  # the service committed: nothing is left to undo
    assert (unread_count(session, ann.id), unread_count(session, bob.id)) == (0, 1)
    old = session.scalars(select(StaffNotification).where(StaffNotification.message == "old")).one()
    assert old.read_at.replace(tzinfo=UTC) == earlier  # the first reading is kept
    assert mark_notifications_read(session, ann.id) == 0
    assert [n.message for n in recent_notifications(session, ann.id)] == ["old", "two", "one"]
