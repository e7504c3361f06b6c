"""Privacy rules: what counts as finished for retention, when a shopper's data request is due,
and how much of a client address an export of the audit log may show. Pure values only."""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta
from enum import StrEnum

from portal.domain.lifecycle import Status
from portal.domain.sla import LadderAction
from portal.domain.text import N_

# A request in one of these is over: after the retention period its personal data goes.
FINISHED = frozenset({Status.REFUNDED, Status.EXCHANGED, Status.CLOSED, Status.REJECTED, Status.CANCELLED})

# PIPL and GDPR both allow about a month to answer a data request; counted in calendar days.
SUBJECT_REQUEST_DAYS = 30
# Who answers data requests is reminded once when this little time is left (or it is overdue).
REMIND_BEFORE = timedelta(days=5)
# How long the shopper may download their copy once staff made it ready.
COPY_AVAILABLE_DAYS = 7
# A reveal of contact details says why, in a few words.
REASON_MAX = 200


class SubjectKind(StrEnum):
    COPY = "copy"
    ERASURE = "erasure"


class SubjectStatus(StrEnum):
    OPEN = "open"
    DONE = "done"


SUBJECT_KIND_LABELS = {
    SubjectKind.COPY: N_("A copy of my data"),
    SubjectKind.ERASURE: N_("Erase my data"),
}
SUBJECT_STATUS_LABELS = {
    SubjectStatus.OPEN: N_("Being handled"),
    SubjectStatus.DONE: N_("Done"),
}
# The badge of a data request's ticket in the staff queue and on its page.
SUBJECT_TICKET_BADGES = {
    SubjectKind.COPY: N_("Data request: copy"),
    SubjectKind.ERASURE: N_("Data request: erasure"),
}

# A data request's ticket runs on calendar days, not office hours: a calendar worked round the
# clock in UTC, the resolution due after exactly 30 days, so the clock's deadline is the due date.
ROUND_THE_CLOCK_CALENDAR = {
    "code": "round-the-clock",
    "name": "Round the clock (calendar days)",
    "timezone": "UTC",
    "weekly": {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
}
SUBJECT_TICKET_PRIORITY = "normal"
SUBJECT_RESOLUTION_MINUTES = SUBJECT_REQUEST_DAYS * 24 * 60
# Remind when REMIND_BEFORE is left, move to the team lead at the due date, tell the manager a day later.
SUBJECT_LADDER = [
    {
        "key": "remind",
        "at_fraction": 1 - REMIND_BEFORE / timedelta(days=SUBJECT_REQUEST_DAYS),
        "action": LadderAction.REMIND.value,
    },
    {"key": "lead", "after_breach_minutes": 0, "action": LadderAction.MOVE_TO_LEAD.value},
    {"key": "manager", "after_breach_minutes": 24 * 60, "action": LadderAction.NOTIFY_MANAGER.value},
]


def subject_due(asked_at: datetime) -> datetime:
    """When a data request must be answered: 30 calendar days after it was made."""
    return asked_at + timedelta(days=SUBJECT_REQUEST_DAYS)


def retention_cutoff(now: datetime, days: int) -> datetime | None:
    """Requests finished before this lose their personal data; None when retention is off (0)."""
    if days <= 0:
        return None
    return now - timedelta(days=days)


def parse_retention_days(raw: str | None, default: int = 0) -> int:
    """``PORTAL_RETENTION_DAYS``: a whole number of days, or 0 / "off" / empty for no retention."""
    if raw is None:
        return default
    text = raw.strip().lower()
    if text in {"", "0", "off", "no", "false", "none"}:
        return 0
    days = int(text)
    if days < 0:
        raise ValueError("PORTAL_RETENTION_DAYS must be 0 (off) or a positive number of days")
    return days


def address_network(address: str | None) -> str:
    """The network of a client address (IPv4 /24, IPv6 /48): enough to tell offices apart in an
    exported audit log without naming one person's connection. Non-addresses ("cli") pass as they are."""
    if not address:
        return ""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address if address.isalnum() else ""
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))
