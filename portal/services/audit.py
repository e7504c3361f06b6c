"""The audit log as a record of access: who, when, from where, why and about which order.

Every ``AuditLog`` row written while a web request (or a command) is bound gets its client
address from ``bind_client_address``; reveals, exports and data requests are written here.
"""

from __future__ import annotations

import io
from contextvars import ContextVar, Token
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from portal.db.models import AuditLog, StaffUser
from portal.domain.privacy import address_network
from portal.exports import write_rows

_client_address: ContextVar[str | None] = ContextVar("portal_client_address", default=None)
CLI = "cli"


def bind_client_address(address: str | None) -> Token[str | None]:
    """Stamp every audit row written in this context with ``address`` until ``unbind_client_address``."""
    return _client_address.set((address or "")[:64] or None)


def unbind_client_address(token: Token[str | None]) -> None:
    try:
        _client_address.reset(token)
    except ValueError:  # reset from another context: just clear it
        _client_address.set(None)


def current_client_address() -> str | None:
    return _client_address.get()


@event.listens_for(AuditLog, "before_insert")
def _stamp_address(_mapper: Any, _connection: Any, target: AuditLog) -> None:
    if target.address is None:
        target.address = current_client_address()


def record_access(
    session: Session,
    actor_id: int | None,
    action: str,
    target: str,
    *,
    order_number: str | None = None,
    reason: str | None = None,
    detail: str = "",
    address: str | None = None,
) -> AuditLog:
    """Add the audit row for a look at (or a copy of) data; the caller commits it."""
    entry = AuditLog(
        actor_id=actor_id,
        action=action,
        target=target[:128],
        order_number=order_number,
        reason=(reason or None) and reason[:255],
        detail=detail,
        address=address,
    )
    session.add(entry)
    return entry


def record_export(
    session: Session, actor_id: int | None, what: str, detail: str = "", address: str | None = None
) -> None:
    """An export was made (by a person on the web, or from the command line with no person): recorded and committed."""
    record_access(session, actor_id, "export", f"export:{what}", detail=detail, address=address)
    session.commit()


CSV_COLUMNS = ("id", "at_utc", "actor_id", "actor_role", "action", "target", "order_number", "network", "has_reason")


def audit_csv(session: Session, entries: list[AuditLog], actor_id: int, description: str) -> str:
    """The given audit entries as CSV without personal data (no names, emails, free text, values
    before/after, or full client addresses), and the export itself recorded."""
    ids = {e.actor_id for e in entries if e.actor_id is not None}
    roles = {
        row.id: row.role for row in session.execute(select(StaffUser.id, StaffUser.role).where(StaffUser.id.in_(ids)))
    }
    out = io.StringIO()
    write_rows(
        out,
        CSV_COLUMNS,
        (
            (
                e.id,
                e.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                e.actor_id or "",
                roles.get(e.actor_id, "") if e.actor_id else "",
                e.action,
                e.target,
                e.order_number or "",
                address_network(e.address),
                "yes" if e.reason else "no",
            )
            for e in entries
        ),
    )
    record_export(session, actor_id, "audit_log", f"{len(entries)} entries; {description}"[:500])
    return out.getvalue()
