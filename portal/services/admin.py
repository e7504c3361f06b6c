"""Admin changes: routing rules, suggested replies, SLA policies, business calendars, teams and members.

Every change writes one ``AuditLog`` row with the values before and after (plain JSON data; ``None``
before a creation and after a deletion) in the same transaction as the change itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from portal.db.models import (
    AuditLog,
    BusinessCalendarRow,
    CannedReplyRow,
    RoutingRuleRow,
    SlaPolicy,
    StaffUser,
    Team,
    TeamMember,
)
from portal.domain import sla
from portal.domain.actors import Actor
from portal.domain.errors import InvalidInput
from portal.domain.roles import CAN_LEAD_TEAM, CAN_MANAGE_TEAM, CAN_WORK_TICKETS
from portal.domain.routing import Conditions
from portal.domain.text import N_
from portal.services import audit as _audit  # noqa: F401  (stamps every audit row with the client address)
from portal.services.sla import retarget_policy_clocks, update_calendar

Data = dict[str, Any]


def record_change(
    session: Session,
    actor: StaffUser,
    action: str,
    target: str,
    before: Data | None,
    after: Data | None,
    detail: str = "",
) -> AuditLog:
    """Add the audit row for a change (the caller commits it with the change)."""
    entry = AuditLog(actor_id=actor.id, action=action, target=target, detail=detail, before=before, after=after)
    session.add(entry)
    return entry


# --- snapshots (JSON-safe) ---------------------------------------------------------------


def staff_data(user: StaffUser) -> Data:
    return {"email": user.email, "name": user.name, "role": user.role, "active": bool(user.active)}


def rule_data(rule: RoutingRuleRow) -> Data:
    return {
        "name": rule.name,
        "position": rule.position,
        "active": bool(rule.active),
        "team_id": rule.team_id,
        "priority": rule.priority,
        "ticket_class": rule.ticket_class,
        "conditions": dict(rule.conditions or {}),
    }


def reply_data(row: CannedReplyRow) -> Data:
    return {
        "name": row.name,
        "locale": row.locale,
        "body": row.body,
        "active": bool(row.active),
        "reasons": list(row.reasons or []),
        "keywords": list(row.keywords or []),
        "decision": row.decision,
    }


def policy_data(policy: SlaPolicy) -> Data:
    return {
        "first_response_minutes": policy.first_response_minutes,
        "resolution_minutes": policy.resolution_minutes,
        "ladder": list(policy.ladder or []),
    }


def calendar_data(calendar: BusinessCalendarRow) -> Data:
    return {
        "weekly": {day: list(hours) for day, hours in (calendar.weekly or {}).items()},
        "exceptions": {e.day.isoformat(): {"hours": list(e.hours), "note": e.note} for e in calendar.exceptions},
    }


def team_data(team: Team) -> Data:
    return {"lead_id": team.lead_id, "manager_id": team.manager_id}


def member_data(member: TeamMember) -> Data:
    return {
        "team_id": member.team_id,
        "staff_id": member.staff_id,
        "cap": member.cap,
        "available": bool(member.available),
    }


# --- routing rules -------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleInput:
    name: str
    position: int
    active: bool
    team_id: int
    priority: str
    ticket_class: str
    conditions: Mapping[str, Any]


def save_routing_rule(
    session: Session, actor: StaffUser, rule: RoutingRuleRow | None, data: RuleInput
) -> RoutingRuleRow:
    """Add a rule (``rule`` None) or change one; the conditions must be valid routing conditions."""
    conditions = Conditions.from_dict(dict(data.conditions)).to_dict()  # a RuleError is a translatable InvalidInput
    if session.get(Team, data.team_id) is None:
        raise InvalidInput(N_("Choose a team."))
    before = rule_data(rule) if rule is not None else None
    target = rule or RoutingRuleRow()
    target.name, target.position, target.active = data.name.strip(), data.position, data.active
    target.team_id, target.priority, target.ticket_class, target.conditions = (
        data.team_id,
        data.priority,
        data.ticket_class,
        conditions,
    )
    if rule is None:
        session.add(target)
    session.flush()
    record_change(
        session, actor, "update_rule" if rule else "create_rule", f"routing_rule:{target.id}", before, rule_data(target)
    )
    session.commit()
    return target


# --- suggested replies ---------------------------------------------------------------------


@dataclass(frozen=True)
class ReplyInput:
    name: str
    locale: str
    body: str
    active: bool
    reasons: Sequence[str]
    keywords: Sequence[str]
    decision: str | None = None  # a macro: "approve", "reject" or "ask"


def save_canned_reply(
    session: Session, actor: StaffUser, row: CannedReplyRow | None, data: ReplyInput
) -> CannedReplyRow:
    """Add a suggested reply (``row`` None) or change one."""
    before = reply_data(row) if row is not None else None
    target = row or CannedReplyRow()
    target.name, target.locale, target.body, target.active = (
        data.name.strip(),
        data.locale,
        data.body.strip(),
        data.active,
    )
    target.reasons, target.keywords = list(data.reasons), list(data.keywords)
    target.decision = data.decision or None
    if row is None:
        session.add(target)
    session.flush()
    record_change(
        session,
        actor,
        "update_reply" if row else "create_reply",
        f"canned_reply:{target.id}",
        before,
        reply_data(target),
    )
    session.commit()
    return target


# --- SLA policies and calendars -------------------------------------------------------------


def update_sla_policy(
    session: Session,
    actor: StaffUser,
    policy: SlaPolicy,
    first_response_minutes: int,
    resolution_minutes: int,
    ladder: Sequence[sla.LadderRow],
    at: datetime,
) -> int:
    """New targets and ladder (the rows of the ladder form); re-targets the policy's live clocks and
    returns how many. A bad row raises ``LadderInputError`` naming it and changes nothing; the ladder
    is stored in the form ``sla.parse_ladder`` reads."""
    steps = sla.parse_ladder_rows(ladder)
    if first_response_minutes < 1 or resolution_minutes < 1:
        raise InvalidInput(N_("Targets are at least one business minute."))
    before = policy_data(policy)
    policy.first_response_minutes, policy.resolution_minutes = first_response_minutes, resolution_minutes
    policy.ladder = sla.ladder_data(steps)
    record_change(session, actor, "update_sla_policy", f"sla_policy:{policy.id}", before, policy_data(policy))
    session.flush()
    count = retarget_policy_clocks(session, policy, at, Actor.staff(actor.id))
    session.commit()
    return count


def update_business_calendar(
    session: Session,
    actor: StaffUser,
    calendar: BusinessCalendarRow,
    weekly: Mapping[str, str | None],
    exceptions: str | None,
    at: datetime,
) -> int:
    """New weekly hours and exception days, as typed (see ``sla.parse_calendar_input``); re-targets the
    calendar's live clocks and returns how many. Bad input raises ``CalendarInputError`` and changes nothing."""
    parsed = sla.parse_calendar_input(calendar.timezone, weekly, exceptions)
    before = calendar_data(calendar)
    spec = sla.BusinessCalendar.from_spec(
        {"timezone": calendar.timezone, "weekly": parsed.weekly, "exceptions": parsed.exceptions}
    ).to_spec()
    after = {
        "weekly": spec["weekly"],
        "exceptions": {
            day: {"hours": parsed.exceptions[day], "note": parsed.notes.get(day, "")}
            for day in sorted(parsed.exceptions)
        },
    }
    record_change(session, actor, "update_calendar", f"business_calendar:{calendar.id}", before, after)
    try:
        count = update_calendar(
            session, calendar, parsed.weekly, parsed.exceptions, parsed.notes, at, Actor.staff(actor.id)
        )
    except sla.CalendarError:
        session.rollback()
        raise sla.CalendarInputError(
            "exceptions",
            N_(
                "With these hours the running clocks would never reach their deadlines; "
                "give the calendar some working time."
            ),
        ) from None
    session.commit()
    return count


# --- teams ---------------------------------------------------------------------------------


def _staff_in(session: Session, staff_id: int | None, roles: frozenset[str], message: str) -> int | None:
    if staff_id is None:
        return None
    user = session.get(StaffUser, staff_id)
    if user is None or not user.active or user.role not in roles:
        raise InvalidInput(message)
    return user.id


def update_team(session: Session, actor: StaffUser, team: Team, lead_id: int | None, manager_id: int | None) -> None:
    """Set (or clear) a team's lead and manager; each must be an active account of a role that may hold the post."""
    lead_id = _staff_in(
        session, lead_id, CAN_LEAD_TEAM, N_("The team lead must be an active lead, manager or administrator.")
    )
    manager_id = _staff_in(
        session, manager_id, CAN_MANAGE_TEAM, N_("The manager must be an active manager or administrator.")
    )
    before = team_data(team)
    team.lead_id, team.manager_id = lead_id, manager_id
    record_change(session, actor, "update_team", f"team:{team.id}", before, team_data(team))
    session.commit()


def add_team_member(session: Session, actor: StaffUser, team: Team, staff_id: int, cap: int) -> TeamMember:
    """Add an account that works tickets to a team, available, with a cap; adding a member twice changes nothing."""
    existing = session.scalars(
        select(TeamMember).where(TeamMember.team_id == team.id, TeamMember.staff_id == staff_id)
    ).first()
    if existing is not None:
        return existing
    _staff_in(session, staff_id, CAN_WORK_TICKETS, N_("Team members must be active accounts that work tickets."))
    if cap < 1:
        raise InvalidInput(N_("The cap is at least one open ticket."))
    member = TeamMember(team_id=team.id, staff_id=staff_id, cap=cap, available=True)
    session.add(member)
    session.flush()
    record_change(session, actor, "add_member", f"team_member:{member.id}", None, member_data(member))
    session.commit()
    return member


def update_team_member(session: Session, actor: StaffUser, member: TeamMember, cap: int, available: bool) -> None:
    """Change a member's cap of open tickets and whether new tickets may go to them."""
    if cap < 1:
        raise InvalidInput(N_("The cap is at least one open ticket."))
    before = member_data(member)
    member.cap, member.available = cap, available
    record_change(session, actor, "update_member", f"team_member:{member.id}", before, member_data(member))
    session.commit()


# --- reading -------------------------------------------------------------------------------


# What each kind of audit entry is called on the audit page (the stored ``action`` stays a code).
AUDIT_ACTIONS: dict[str, str] = {
    "reveal_contact": N_("Revealed a shopper's contact details"),
    "export": N_("Exported data"),
    "privacy_asked": N_("A shopper asked about their data"),
    "privacy_copy_ready": N_("Made a shopper's data copy ready"),
    "privacy_copy_downloaded": N_("A shopper downloaded their data copy"),
    "privacy_erased": N_("Erased a shopper's personal data"),
    "retention_purge": N_("Removed personal data past the retention period"),
    "create_staff": N_("Created a staff account"),
    "change_role": N_("Changed a role"),
    "disable": N_("Disabled an account"),
    "enable": N_("Enabled an account"),
    "password_reset_link": N_("Made a password link"),
    "password_reset_asked": N_("Password link asked for by email"),
    "password_reset": N_("Set a password through a link"),
    "change_password": N_("Changed own password"),
    "login_throttled": N_("Sign-in paused after wrong passwords"),
    "update_team": N_("Changed a team's lead or manager"),
    "add_member": N_("Added a team member"),
    "update_member": N_("Changed a team member"),
    "create_rule": N_("Added a routing rule"),
    "update_rule": N_("Changed a routing rule"),
    "create_reply": N_("Added a suggested reply"),
    "update_reply": N_("Changed a suggested reply"),
    "update_sla_policy": N_("Changed an SLA policy"),
    "update_calendar": N_("Changed a business calendar"),
    "create_policy_version": N_("Saved a return policy version"),
    "publish_policy": N_("Published a return policy version"),
    "rollback_policy": N_("Rolled the return policy back"),
    "retry_job": N_("Ran a failed background job again"),
}


@dataclass(frozen=True)
class AuditFilter:
    """Which entries the audit page shows: by whom (a staff id), of which kind (an action code), in
    which order."""

    actor_id: int | None = None
    action: str | None = None
    oldest_first: bool = False
    order_number: str | None = None
    since: datetime | None = None  # entries at or after (UTC)
    before: datetime | None = None  # entries before (UTC)


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditLog]
    actors: dict[int, StaffUser]
    total: int
    people: list[StaffUser]  # everyone who appears as the actor of some entry, by name
    actions: list[str]  # every kind of entry recorded, known kinds first in their page order


def audit_query(where: AuditFilter) -> Select[AuditLog]:
    """The audit entries matching ``where``, in its order."""
    stmt = select(AuditLog)
    if where.actor_id is not None:
        stmt = stmt.where(AuditLog.actor_id == where.actor_id)
    if where.action:
        stmt = stmt.where(AuditLog.action == where.action)
    if where.order_number:
        stmt = stmt.where(AuditLog.order_number == where.order_number)
    if where.since is not None:
        stmt = stmt.where(AuditLog.at >= where.since)
    if where.before is not None:
        stmt = stmt.where(AuditLog.at < where.before)
    order = (AuditLog.at.asc(), AuditLog.id.asc()) if where.oldest_first else (AuditLog.at.desc(), AuditLog.id.desc())
    return stmt.order_by(*order)


def audit_page(session: Session, page: int, page_size: int, where: AuditFilter | None = None) -> AuditPage:
    """One page of the audit log (newest first unless asked otherwise), filtered by who acted and
    the kind of entry, with the accounts that acted, the number of matching entries and the choices
    for the filters."""
    where = where or AuditFilter()
    stmt = audit_query(where)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    entries = list(session.scalars(stmt.limit(page_size).offset((page - 1) * page_size)))
    ids = {e.actor_id for e in entries if e.actor_id is not None}
    actors = {u.id: u for u in session.scalars(select(StaffUser).where(StaffUser.id.in_(ids)))} if ids else {}
    acting = select(AuditLog.actor_id).where(AuditLog.actor_id.is_not(None)).distinct()
    people = list(session.scalars(select(StaffUser).where(StaffUser.id.in_(acting)).order_by(StaffUser.name)))
    recorded = set(session.scalars(select(AuditLog.action).distinct()))
    actions = [a for a in AUDIT_ACTIONS if a in recorded] + sorted(recorded - set(AUDIT_ACTIONS))
    return AuditPage(entries, actors, total, people, actions)
