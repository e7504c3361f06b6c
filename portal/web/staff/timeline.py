"""The ticket and request timelines as sentences in the reader's language: names instead of ids,
statuses in staff words, due times in local time, wear scores as percentages. The note a person
typed is shown as their words; a note the system wrote (older rows) is kept as a detail."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask_babel import format_datetime, format_percent, gettext
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.db.models import RequestEvent, StaffUser, Team, TicketEvent
from portal.domain.actors import Actor, ActorKind
from portal.domain.lifecycle import STAFF_LABELS, Status
from portal.domain.routing import PRIORITY_LABELS
from portal.domain.text import N_

ACTOR_LABELS = {
    ActorKind.SHOPPER: N_("Shopper"),
    ActorKind.POLICY: N_("Return policy"),
    ActorKind.SYSTEM: N_("System"),
    ActorKind.SLA: N_("SLA clock"),
    ActorKind.CARRIER: N_("Courier"),
    ActorKind.SHOP: N_("Shop"),
    ActorKind.CLASSIFIER: N_("Wear model"),
    ActorKind.PAYMENT: N_("Payment provider"),
}
CLOCK_LABELS = {"first_response": N_("First response"), "resolution": N_("Resolution")}
# Kinds whose note is what a person wrote: shown as their words.
SAID = {
    "decided": N_("Recorded a decision"),
    "asked": N_("Asked the shopper"),
    "answered": N_("Answered"),
    "replied": N_("Replied to the shopper"),
    "note": N_("Added a note"),
    "message": N_("Wrote to the shopper"),
    "discrepancy": N_("Settled the discrepancy"),
    "followed_up": N_("Followed up and closed the ticket"),
}
# Kinds told in a fixed sentence, with the system's note (if any) as a detail.
TOLD = {
    "unassigned": N_("No agent was free to take it"),
    "closed": N_("Closed the ticket"),
    "reopened": N_("Reopened the ticket"),
    "escalated": N_("Escalated"),
    "step": N_("Escalation step"),
    "submitted": N_("Submitted the request"),
    "tracking": N_("Courier update"),
    "pickup": N_("Pickup"),
    "exchange": N_("Exchange stock"),
    "carrier_claim": N_("Claim against the courier"),
    "replayed": N_("Sent again"),
}
_WEAR = re.compile(r"\bwear (0(?:\.\d+)?|1(?:\.0+)?)\b")


@dataclass(frozen=True)
class Entry:
    at: datetime
    who: str
    text: str
    said: str = ""  # a person's words
    detail: str = ""  # the system's note


def _names(session: Session, events: Iterable[Any]) -> dict[int, str]:
    ids: set[int] = set()
    for ev in events:
        if ev.actor.staff_id is not None:
            ids.add(ev.actor.staff_id)
        data = getattr(ev, "data", None) or {}
        for key in ("assignee", "from_staff", "to_staff"):
            if isinstance(data.get(key), int):
                ids.add(data[key])
        if getattr(ev, "kind", "") in ("step", "escalated") and isinstance(data.get("notified"), list):
            ids.update(n for n in data["notified"] if isinstance(n, int))
    if not ids:
        return {}
    return dict(session.execute(select(StaffUser.id, StaffUser.name).where(StaffUser.id.in_(ids))).all())


def who(actor: Actor, names: dict[int, str]) -> str:
    if actor.staff_id is not None:
        return names.get(actor.staff_id) or gettext("Former staff member")
    label = gettext(ACTOR_LABELS.get(actor.kind, N_("System")))
    if actor.kind in (ActorKind.CARRIER, ActorKind.PAYMENT) and actor.id:
        return f"{label} ({actor.id})"
    return label


def wear_words(note: str) -> str:
    """'highest wear 0.71' -> 'highest wear 71%': scores read as percentages."""
    return _WEAR.sub(lambda m: "wear " + format_percent(float(m.group(1))), note)


def _when(raw: object) -> str:
    if not isinstance(raw, str) or not raw:
        return "—"
    try:
        return format_datetime(datetime.fromisoformat(raw), "short")
    except ValueError:
        return raw


def _ticket_text(ev: TicketEvent, names: dict[int, str], teams: dict[str, str]) -> tuple[str, str, str]:
    data = ev.data or {}
    kind = ev.kind
    if kind in ("routed", "rerouted"):
        team = teams.get(str(data.get("team")), str(data.get("team") or "—"))
        priority = gettext(PRIORITY_LABELS.get(str(data.get("priority")), N_("normal")))
        text = (
            gettext("Routed to %(team)s, priority %(priority)s", team=team, priority=priority)
            if kind == "routed"
            else gettext("Routed again to %(team)s, priority %(priority)s", team=team, priority=priority)
        )
        return text, "", wear_words(ev.note)
    if kind == "assigned" and "assignee" in data:
        to = data["assignee"]
        if to is None:
            return gettext("Returned it to the team queue"), "", ""
        name = names.get(to) or gettext("Former staff member")
        if ev.actor.staff_id == to:
            return gettext("Took the ticket"), "", ""
        return gettext("Assigned it to %(name)s", name=name), "", ""
    if kind == "deadline" and data.get("metric"):
        clock = gettext(CLOCK_LABELS.get(str(data["metric"]), N_("Resolution")))
        text = gettext(
            "%(clock)s due time moved from %(old)s to %(new)s",
            clock=clock,
            old=_when(data.get("old_deadline")),
            new=_when(data.get("new_deadline")),
        )
        return text, "", str(data.get("why") or "")
    if kind in ("step", "escalated") and data.get("action"):
        return _escalation_text(data, names), "", ""
    if kind == "survey" and "nps" in data:
        text = gettext(
            "Answered the satisfaction survey: recommend %(nps)s/10, satisfaction %(satisfaction)s/5",
            nps=data["nps"],
            satisfaction=data.get("satisfaction", "—"),
        )
        return text, ev.note, ""
    if kind in SAID:
        return gettext(SAID[kind]), ev.note, ""
    return gettext(TOLD.get(kind, N_("Updated"))), "", wear_words(ev.note)


def _escalation_text(data: dict[str, Any], names: dict[int, str]) -> str:
    """One escalation step (for one clock or both at once) as one sentence."""

    def name(staff_id: object) -> str:
        return names.get(staff_id, gettext("Former staff member")) if isinstance(staff_id, int) else "—"

    clocks = ", ".join(gettext(CLOCK_LABELS.get(str(m), N_("Resolution"))) for m in data.get("metrics") or [])
    told = ", ".join(name(n) for n in data.get("notified") or []) or gettext("nobody")
    action = data["action"]
    if action == "move_to_lead":
        before, after = data.get("from_staff"), data.get("to_staff")
        if after is None:
            return gettext("Escalated to level 1 (%(clocks)s breached); no team lead is set", clocks=clocks)
        if before == after:
            return gettext(
                "Escalated to level 1 (%(clocks)s breached); %(name)s already had the ticket",
                clocks=clocks,
                name=name(after),
            )
        if before is None:
            return gettext(
                "Escalated to level 1 (%(clocks)s breached): moved to %(new)s", clocks=clocks, new=name(after)
            )
        return gettext(
            "Escalated to level 1 (%(clocks)s breached): moved from %(old)s to %(new)s",
            clocks=clocks,
            old=name(before),
            new=name(after),
        )
    if action == "notify_manager":
        return gettext("Escalated to level 2 (%(clocks)s breached): told %(names)s", clocks=clocks, names=told)
    return gettext("Reminded %(names)s about the due time (%(clocks)s)", names=told, clocks=clocks)


def ticket_timeline(session: Session, events: list[TicketEvent]) -> list[Entry]:
    names = _names(session, events)
    teams = dict(session.execute(select(Team.code, Team.name)).all())
    out = []
    for ev in events:
        text, said, detail = _ticket_text(ev, names, teams)
        out.append(Entry(ev.at, who(ev.actor, names), text, said, detail))
    return out


def _status(value: str | None) -> str:
    try:
        return gettext(STAFF_LABELS[Status(value)]) if value else "—"
    except ValueError:
        return value or "—"


def request_timeline(session: Session, events: list[RequestEvent], staff_words: bool = True) -> list[Entry]:
    """``staff_words`` False: a staff member's note on a status change is left out (the ticket's
    own event already quotes it)."""
    names = _names(session, events)
    out = []
    for ev in events:
        if ev.to_status and ev.kind in ("status", "submitted"):
            text = (
                gettext("Moved from %(old)s to %(new)s", old=_status(ev.from_status), new=_status(ev.to_status))
                if ev.from_status
                else _status(ev.to_status)
            )
            if ev.actor.is_staff:
                said, detail = (ev.note if staff_words else ""), ""
            else:
                # The policy's own summary is internal; the decision section shows its trace in words.
                said, detail = "", ("" if ev.actor.kind is ActorKind.POLICY else wear_words(ev.note))
        elif ev.kind == "scored":
            text, said, detail = gettext("Scored the photos"), "", wear_words(ev.note)
        elif ev.kind in SAID:
            text, said, detail = gettext(SAID[ev.kind]), ev.note, ""
        else:
            text, said, detail = gettext(TOLD.get(ev.kind, N_("Updated"))), "", wear_words(ev.note)
        out.append(Entry(ev.at, who(ev.actor, names), text, said, detail))
    return out
