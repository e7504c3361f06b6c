"""The admin-kept list of rejection reasons: staff pick one (and may add their own words), and
reports count rejections by reason."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.db.models import RejectionReason, ReturnRequest, StaffUser
from portal.domain.errors import InvalidInput
from portal.domain.lifecycle import Status
from portal.domain.text import N_
from portal.services.admin import record_change


def active_reasons(session: Session) -> list[RejectionReason]:
    return list(
        session.scalars(
            select(RejectionReason)
            .where(RejectionReason.active.is_(True))
            .order_by(RejectionReason.position, RejectionReason.id)
        )
    )


def all_reasons(session: Session) -> list[RejectionReason]:
    return list(session.scalars(select(RejectionReason).order_by(RejectionReason.position, RejectionReason.id)))


def _data(row: RejectionReason) -> dict[str, object]:
    return {"label": row.label, "position": row.position, "active": row.active}


def save_reason(
    session: Session, actor: StaffUser, row: RejectionReason | None, label: str, position: int, active: bool
) -> RejectionReason:
    """Add a reason (``row`` None) or change one; recorded in the audit log (commits)."""
    label = " ".join((label or "").split())
    if not label:
        raise InvalidInput(N_("Write the reason."))
    before = _data(row) if row is not None else None
    target = row or RejectionReason()
    target.label, target.position, target.active = label[:200], position, active
    if row is None:
        session.add(target)
    session.flush()
    record_change(
        session,
        actor,
        "update_rejection_reason" if row else "create_rejection_reason",
        f"rejection_reason:{target.id}",
        before,
        _data(target),
    )
    session.commit()
    return target


def rejections_by_reason(session: Session, since: datetime) -> list[tuple[str, int]]:
    """How many returns were rejected under each reason since ``since`` (free-text-only ones as "")."""
    rows = session.execute(
        select(RejectionReason.label, func.count(ReturnRequest.id))
        .select_from(ReturnRequest)
        .outerjoin(RejectionReason, RejectionReason.id == ReturnRequest.rejection_reason_id)
        .where(ReturnRequest.status == Status.REJECTED.value, ReturnRequest.updated_at >= since)
        .group_by(RejectionReason.label)
        .order_by(func.count(ReturnRequest.id).desc())
    )
    return [(label or "", int(n)) for label, n in rows]
